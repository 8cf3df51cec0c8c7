import { parse as parseArray } from 'postgres-array';
import type { JsonValue } from './warehouse-rows.js';

/** Turns the text PostgreSQL prints for a value (never NULL) into its JSON value. */
export type PgValueDecoder = (text: string) => JsonValue;

const asText: PgValueDecoder = (text) => text;
const asBoolean: PgValueDecoder = (text) => text === 't' || text === 'true';
const asSmallInteger: PgValueDecoder = (text) => Number(text);

/** bigint: a number while it is a safe integer, else its digits as a string. */
const asBigint: PgValueDecoder = (text) => {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
};

/** float: a number; NaN and ±Infinity (which JSON cannot hold) as PostgreSQL's text. */
const asFloat: PgValueDecoder = (text) => {
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
};

/** numeric: a number when a double holds it exactly, else the exact digits as a string. */
export const asNumeric: PgValueDecoder = (text) => {
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  // the common cases without the general comparison: the same text, or the same text less trailing zeros
  const back = String(n);
  if (back === text || back === trimFraction(text)) return n;
  return sameDecimal(text, back) ? n : text;
};

/** `19.90` → `19.9`, `5.00` → `5`; any other text as it is. */
function trimFraction(text: string): string {
  if (text.indexOf('.') < 0 || text.indexOf('e') >= 0 || text.indexOf('E') >= 0) return text;
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 48) end--;
  if (text.charCodeAt(end - 1) === 46) end--;
  return text.slice(0, end);
}

/** `2026-01-02 03:04:05.123456+00` (TimeZone UTC, DateStyle ISO) → `2026-01-02T03:04:05.123456Z`. */
export const asTimestamptz: PgValueDecoder = (text) => {
  // the usual shape, `YYYY-MM-DD HH:MM:SS[.ffffff][+00]`, without a regular expression
  const n = text.length;
  if (
    n >= 19 &&
    n <= 29 &&
    text.charCodeAt(4) === 45 &&
    text.charCodeAt(10) === 32 &&
    text.charCodeAt(13) === 58
  ) {
    if (text.endsWith('+00')) return `${text.slice(0, 10)}T${text.slice(11, n - 3)}Z`;
    if (n <= 26 && text.indexOf('+', 19) < 0 && text.indexOf('-', 19) < 0 && text.indexOf(' ', 11) < 0) {
      return `${text.slice(0, 10)}T${text.slice(11)}Z`;
    }
  }
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)(?:\+00(?::00)?)?$/.exec(text);
  return m === null ? text : `${m[1]}T${m[2]}Z`;
};

const asJson: PgValueDecoder = (text) => JSON.parse(text) as JsonValue;

const SCALARS: ReadonlyMap<number, PgValueDecoder> = new Map([
  [16, asBoolean],
  [20, asBigint],
  [21, asSmallInteger],
  [23, asSmallInteger],
  [26, asSmallInteger],
  [700, asFloat],
  [701, asFloat],
  [1700, asNumeric],
  [114, asJson],
  [3802, asJson],
  [1114, asTimestamptz], // timestamp without time zone: read as UTC
  [1184, asTimestamptz],
]);

/** Array type OIDs → their element's decoder. */
const ARRAYS: ReadonlyMap<number, PgValueDecoder> = new Map([
  [1000, asBoolean],
  [1016, asBigint],
  [1005, asSmallInteger],
  [1007, asSmallInteger],
  [1021, asFloat],
  [1022, asFloat],
  [1231, asNumeric],
  [199, asJson],
  [3807, asJson],
  [1115, asTimestamptz],
  [1185, asTimestamptz],
  [1182, asText], // date[]
  [1009, asText], // text[]
  [1015, asText], // varchar[]
  [1014, asText], // bpchar[]
  [1002, asText], // "char"[]
  [1003, asText], // name[]
  [2951, asText], // uuid[]
]);

/**
 * The decoder for a column of type `oid`: booleans, numbers (bigint and numeric exact: a string when a
 * double would lose digits), timestamps as ISO-8601 UTC with microseconds, json/jsonb as values, arrays of
 * these as arrays; anything else (text, date, uuid, interval, enums, …) as PostgreSQL's text.
 */
export function pgValueDecoder(oid: number): PgValueDecoder {
  const scalar = SCALARS.get(oid);
  if (scalar !== undefined) return scalar;
  const element = ARRAYS.get(oid);
  if (element !== undefined) return (text) => parseArray(text, element) as JsonValue;
  return asText;
}

/** True when two decimal texts (`1.50`, `1.5`, `1e+21`, `-0.001`) are the same number. */
export function sameDecimal(a: string, b: string): boolean {
  const x = canonicalDecimal(a);
  return x !== undefined && x === canonicalDecimal(b);
}

/** `[-]digits e exponent` with no leading or trailing zeros in the digits; `0` for zero. */
function canonicalDecimal(text: string): string | undefined {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text.trim());
  if (m === null) return undefined;
  const whole = m[2] ?? '';
  const fraction = m[3] ?? '';
  let digits = whole + fraction;
  let exponent = Number(m[4] ?? '0') - fraction.length;
  const lead = /^0*/.exec(digits)![0].length;
  digits = digits.slice(lead);
  if (digits === '') return '0';
  const trail = /0*$/.exec(digits)![0].length;
  digits = digits.slice(0, digits.length - trail);
  exponent += trail;
  return `${m[1] === '-' ? '-' : ''}${digits}e${exponent}`;
}
