import { WharfError } from '../../../core/errors.js';

/**
 * PostgreSQL's own text of `timestamptz` (in UTC: `2026-11-23 09:20:00.123456+00`) and `date` (`2026-11-23`)
 * read from a CSV field's bytes into Parquet's numbers: microseconds and days since 1970-01-01. Used when the
 * writer reads staged csv.gz text instead of the numbers its select expressions make PostgreSQL print.
 */

const COMMA = 0x2c;
const NL = 0x0a;
const QUOTE = 0x22;
const DASH = 0x2d;
const SPACE = 0x20;
const COLON = 0x3a;
const DOT = 0x2e;
const PLUS = 0x2b;
const ZERO = 0x30;
const TWO_53 = 9007199254740992;
const POW10 = [1, 10, 100, 1000, 10000, 100000, 1000000];

/** The value of the last field read: a number when exact (below 2^53), else `big`. */
export const parsedTemporal = { exact: true, value: 0, big: 0n };

/** Days from 1970-01-01 to a proleptic Gregorian date (year 0 is 1 BC). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** `n` ASCII digits at `raw[p]` as a number, or -1. */
function digits(raw: Buffer, p: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = raw[p + i]! - ZERO;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

const isDelimiter = (b: number | undefined): boolean => b === COMMA || b === NL;

/** The text of the field at `raw[p]` and the position of the delimiter after it. */
function fieldText(raw: Buffer, p: number): { text: string; end: number } {
  if (raw[p] === QUOTE) {
    const q = raw.indexOf(QUOTE, p + 1);
    const close = q < 0 ? raw.length : q;
    return { text: raw.toString('utf8', p + 1, close), end: close + 1 };
  }
  let e = p;
  while (e < raw.length && !isDelimiter(raw[e])) e++;
  return { text: raw.toString('utf8', p, e), end: e };
}

function noParquetValue(kind: string, text: string, column: string): WharfError {
  const infinite = /^-?infinity$/.test(text);
  return new WharfError(
    infinite
      ? `${kind} ${text} of column ${column} has no Parquet representation`
      : `value ${JSON.stringify(text.slice(0, 60))} of column ${column} is not PostgreSQL ${kind} text`,
    {
      kind: 'terminal',
      hint: infinite ? 'use the csv or json format for this data' : 'the staged file is not what Wharf wrote',
    },
  );
}

function setMicros(micros: bigint): void {
  const small = micros > -BigInt(TWO_53) && micros < BigInt(TWO_53);
  parsedTemporal.exact = small;
  parsedTemporal.value = small ? Number(micros) : 0;
  parsedTemporal.big = micros;
}

const TIMESTAMP_RE =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?( BC)?$/;

/** Any timestamptz text PostgreSQL prints (other offsets, years past 9999, BC) → microseconds. */
export function timestampTextMicros(text: string, column: string): bigint {
  const m = TIMESTAMP_RE.exec(text);
  if (!m) throw noParquetValue('timestamp', text, column);
  const year = m[12] ? 1 - Number(m[1]) : Number(m[1]);
  const days = daysFromCivil(year, Number(m[2]), Number(m[3]));
  const offset =
    (Number(m[9] ?? 0) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0)) * (m[8] === '-' ? -1 : 1);
  const seconds =
    BigInt(days) * 86400n + BigInt(Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]) - offset);
  return seconds * 1_000_000n + BigInt((m[7] ?? '').padEnd(6, '0'));
}

/**
 * Reads the timestamptz field at `raw[p]` (`YYYY-MM-DD HH:MI:SS[.ffffff]+00` on the fast path) into
 * `parsedTemporal` as microseconds since the epoch; returns the position of the delimiter after it.
 */
export function readTimestampText(raw: Buffer, p: number, column: string): number {
  const year = digits(raw, p, 4);
  const month = digits(raw, p + 5, 2);
  const day = digits(raw, p + 8, 2);
  const hour = digits(raw, p + 11, 2);
  const minute = digits(raw, p + 14, 2);
  const second = digits(raw, p + 17, 2);
  if (
    year >= 0 &&
    month > 0 &&
    day > 0 &&
    hour >= 0 &&
    minute >= 0 &&
    second >= 0 &&
    raw[p + 4] === DASH &&
    raw[p + 7] === DASH &&
    raw[p + 10] === SPACE &&
    raw[p + 13] === COLON &&
    raw[p + 16] === COLON
  ) {
    let q = p + 19;
    let fraction = 0;
    if (raw[q] === DOT) {
      const first = ++q;
      let b = raw[q]! - ZERO;
      while (b >= 0 && b <= 9 && q - first < 6) {
        fraction = fraction * 10 + b;
        b = raw[++q]! - ZERO;
      }
      fraction *= POW10[6 - (q - first)]!;
      if (q === first) q = -1;
    }
    if (q > 0 && raw[q] === PLUS && raw[q + 1] === ZERO && raw[q + 2] === ZERO && isDelimiter(raw[q + 3])) {
      const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
      // |seconds| below 9e9: seconds × 10^6 + fraction stays below 2^53, exact in a double
      if (seconds > -9e9 && seconds < 9e9) {
        parsedTemporal.exact = true;
        parsedTemporal.value = seconds * 1_000_000 + fraction;
      } else {
        setMicros(BigInt(seconds) * 1_000_000n + BigInt(fraction));
      }
      return q + 3;
    }
  }
  const field = fieldText(raw, p);
  setMicros(timestampTextMicros(field.text, column));
  return field.end;
}

/** Any date text PostgreSQL prints in the ISO DateStyle (`2026-11-23`, `0044-03-15 BC`) → days. */
export function dateTextDays(text: string, column: string): number {
  const m = /^(\d{4,})-(\d\d)-(\d\d)( BC)?$/.exec(text);
  if (!m) throw noParquetValue('date', text, column);
  const year = m[4] ? 1 - Number(m[1]) : Number(m[1]);
  return daysFromCivil(year, Number(m[2]), Number(m[3]));
}

/** Reads the date field at `raw[p]` into `parsedTemporal.value` (days); returns the delimiter's position. */
export function readDateText(raw: Buffer, p: number, column: string): number {
  const year = digits(raw, p, 4);
  const month = digits(raw, p + 5, 2);
  const day = digits(raw, p + 8, 2);
  if (
    year >= 0 &&
    month > 0 &&
    day > 0 &&
    raw[p + 4] === DASH &&
    raw[p + 7] === DASH &&
    isDelimiter(raw[p + 10])
  ) {
    parsedTemporal.exact = true;
    parsedTemporal.value = daysFromCivil(year, month, day);
    return p + 10;
  }
  const field = fieldText(raw, p);
  parsedTemporal.exact = true;
  parsedTemporal.value = dateTextDays(field.text, column);
  return field.end;
}
