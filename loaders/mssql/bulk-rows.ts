import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { parse } from 'csv-parse';
import type { Column, Stream } from '../../catalog/types.js';
import { IntegrityError, WharfError } from '../../core/errors.js';
import type { WindowFile } from '../warehouse.js';
import { stagingLength } from './mssql-dialect.js';

/**
 * Turning one decoded CSV record (PostgreSQL `COPY … (FORMAT csv)` text, session time zone UTC, DateStyle
 * ISO) into the row bulk-loaded into a SQL Server staging table.
 *
 * Staging columns are `NVARCHAR`: every value travels as text and the MERGE converts it with `CONVERT`.
 * That path is exact, where tedious' typed encoders are not (its `Decimal` goes through a JS number, so
 * 18 significant digits would be rounded; a `Date` holds milliseconds only). Before a value is sent it is
 * checked against what the final column can hold, and normalised to the form `CONVERT` reads:
 *
 * | logical type | staged text | check |
 * |---|---|---|
 * | bigint | `-123` | 64-bit range |
 * | numeric(p,s) | `12.3400` | at most p−s integer and s fraction digits; no NaN / Infinity |
 * | timestamptz | `2026-11-23T09:20:00.123456` (UTC, µs) | year 0001…9999 after conversion to UTC |
 * | date | `2026-11-23` | year 0001…9999 |
 * | uuid | as is | 8-4-4-4-12 hex |
 * | boolean | `1` / `0` | `t` / `f` |
 * | char(n), text(n) | as is | at most n UTF-16 code units (`NCHAR(n)` / `NVARCHAR(n)` count byte pairs) |
 * | jsonb | as is | valid JSON, an object or an array (what `ISJSON(x) = 1` accepts) |
 *
 * A value that fails becomes a `QuarantinedValue`; the row is not loaded but written to the quarantine table.
 */

/** A value SQL Server cannot hold, with the reason. */
export interface QuarantinedValue {
  readonly column: string;
  readonly reason: string;
  readonly raw: string | null;
}

export type EncodedRow =
  | { readonly ok: true; readonly values: (string | null)[] }
  | {
      readonly ok: false;
      readonly primaryKey: string | null;
      readonly problems: readonly QuarantinedValue[];
    };

/** The staged text of one value, or why it cannot be stored. */
export type StagedValue =
  | { readonly ok: true; readonly value: string | null }
  | { readonly ok: false; readonly reason: string };

const BIGINT_MIN = -(2n ** 63n);
const BIGINT_MAX = 2n ** 63n - 1n;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NUMERIC = /^([+-]?)(\d*)(?:\.(\d*))?$/;
const DATE = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/;
const TIMESTAMP =
  /^(\d{4,})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?)?( BC)?$/;

const ok = (value: string | null): StagedValue => ({ ok: true, value });
const bad = (reason: string): StagedValue => ({ ok: false, reason });
const pad = (n: number, width: number): string => String(n).padStart(width, '0');

function stageBigint(raw: string): StagedValue {
  if (!/^[+-]?\d+$/.test(raw)) return bad('not an integer');
  const n = BigInt(raw);
  if (n < BIGINT_MIN || n > BIGINT_MAX) return bad('outside the BIGINT range');
  return ok(n.toString());
}

function stageNumeric(column: Column, raw: string): StagedValue {
  const precision = column.precision ?? 18;
  const scale = column.scale ?? 4;
  const type = `DECIMAL(${precision},${scale})`;
  const m = NUMERIC.exec(raw);
  if (!m || (m[2] === '' && (m[3] ?? '') === ''))
    return bad(`not a number ${type} can hold (NaN and Infinity have no SQL Server form)`);
  const integer = m[2]!.replace(/^0+/, '');
  const fraction = m[3] ?? '';
  if (integer.length > precision - scale)
    return bad(`more than ${precision - scale} integer digits: too large for ${type}`);
  if (fraction.replace(/0+$/, '').length > scale)
    return bad(`more than ${scale} decimal places: ${type} would round it`);
  // digits past the scale are zeros (checked above): dropping them changes nothing
  const kept = fraction.slice(0, scale);
  const negative = m[1] === '-' && /[1-9]/.test(integer + kept);
  return ok(`${negative ? '-' : ''}${integer || '0'}${kept === '' ? '' : `.${kept}`}`);
}

/** Days in a month of the proleptic Gregorian calendar (what PostgreSQL and SQL Server both use). */
function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function stageDate(raw: string): StagedValue {
  if (raw === 'infinity' || raw === '-infinity') return bad('SQL Server DATE has no infinity');
  const m = DATE.exec(raw);
  if (!m) return bad('not a date (YYYY-MM-DD)');
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (m[4] || year < 1) return bad('before 0001-01-01, the first day SQL Server DATE holds');
  if (year > 9999) return bad('after 9999-12-31, the last day SQL Server DATE holds');
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month))
    return bad('not a valid calendar date');
  return ok(`${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`);
}

/**
 * A `timestamptz` text → UTC `YYYY-MM-DDTHH:MM:SS.ffffff`. The offset (always `+00` from a UTC session, but
 * any offset is honoured) is applied with whole seconds; the microseconds are carried as digits, never
 * through a float, so they survive exactly.
 */
export function stageTimestamp(raw: string): StagedValue {
  if (raw === 'infinity' || raw === '-infinity') return bad('SQL Server DATETIME2 has no infinity');
  const m = TIMESTAMP.exec(raw);
  if (!m) return bad('not a timestamp with time zone (YYYY-MM-DD HH:MM:SS[.ffffff]+HH)');
  if (!m[8] && !m[9]) return bad('the timestamp has no time zone offset');
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  if (m[13] || year! < 1) return bad('before 0001-01-01, the first day SQL Server DATETIME2 holds');
  if (month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth(year!, month!))
    return bad('not a valid calendar date');
  if (hour! > 23 || minute! > 59 || second! > 59) return bad('not a valid time of day');
  const micros = (m[7] ?? '').padEnd(6, '0');
  const sign = m[9] === '-' ? -1 : 1;
  const offset = m[9] ? sign * (Number(m[10]) * 3600 + Number(m[11] ?? 0) * 60 + Number(m[12] ?? 0)) : 0;
  // Whole seconds since the epoch, in the proleptic Gregorian calendar; setUTCFullYear keeps years 0…99 as given.
  const d = new Date(0);
  d.setUTCFullYear(year!, month! - 1, day!);
  d.setUTCHours(hour!, minute!, second! - offset, 0);
  const y = d.getUTCFullYear();
  if (y < 1) return bad('before 0001-01-01 00:00 UTC, the first moment SQL Server DATETIME2 holds');
  if (y > 9999)
    return bad('after 9999-12-31 23:59:59.999999 UTC, the last moment SQL Server DATETIME2 holds');
  return ok(
    `${pad(y, 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T` +
      `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${micros}`,
  );
}

function stageText(column: Column, raw: string): StagedValue {
  const length = stagingLength(column);
  // PostgreSQL pads char(n) to n characters; NCHAR pads again, so the pad spaces are not part of the value
  if (column.type === 'char') raw = raw.replace(/ +$/, '');
  if (length !== 'MAX' && raw.length > length) {
    const type = column.type === 'char' ? `NCHAR(${length})` : `NVARCHAR(${length})`;
    return bad(`${raw.length} UTF-16 code units: longer than ${type} holds (it would be truncated)`);
  }
  return ok(raw);
}

function stageJson(raw: string): StagedValue {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return bad('not valid JSON (the column has CHECK (ISJSON(…) = 1))');
  }
  if (parsed === null || typeof parsed !== 'object') {
    return bad('a top-level JSON scalar: ISJSON(…) = 1 accepts objects and arrays only');
  }
  return ok(raw);
}

/** The staged text of one field of a column, or why SQL Server cannot hold it. `null` is SQL NULL. */
export function stageValue(column: Column, raw: string | null): StagedValue {
  if (raw === null) return column.nullable ? ok(null) : bad('NULL in a NOT NULL column');
  switch (column.type) {
    case 'bigint':
      return stageBigint(raw);
    case 'numeric':
      return stageNumeric(column, raw);
    case 'timestamptz':
      return stageTimestamp(raw);
    case 'date':
      return stageDate(raw);
    case 'uuid':
      return UUID.test(raw) ? ok(raw.toLowerCase()) : bad('not a UUID');
    case 'boolean':
      if (raw === 't' || raw === 'true') return ok('1');
      if (raw === 'f' || raw === 'false') return ok('0');
      return bad('not a boolean (t / f)');
    case 'char':
    case 'text':
      return stageText(column, raw);
    case 'jsonb':
      return stageJson(raw);
  }
}

/**
 * Encodes the records of one file: `header` is the file's column list (its header line), which may lack
 * columns a newer catalog added (they are staged as NULL). The row has the stream's columns in catalog
 * order, then the window id.
 */
export function rowEncoder(
  stream: Stream,
  header: readonly string[],
): (fields: readonly (string | null)[], windowId: string) => EncodedRow {
  const positions = stream.columns.map((c) => header.indexOf(c.name));
  const unknown = header.filter((h) => !stream.columns.some((c) => c.name === h));
  if (unknown.length > 0) {
    throw new WharfError(`the file has columns the catalog does not know: ${unknown.join(', ')}`, {
      context: { stream: stream.name },
      hint: 'upgrade Wharf to the version that exported this window',
    });
  }
  const keys = stream.primaryKey.map((k) => header.indexOf(k));
  const columns = stream.columns;
  return (fields, windowId) => {
    if (fields.length !== header.length) {
      throw new WharfError(`a record has ${fields.length} fields where the header has ${header.length}`, {
        context: { stream: stream.name, window: windowId },
        hint: 'the staged file is damaged; export the window again as a new revision',
      });
    }
    const values: (string | null)[] = new Array(columns.length + 1);
    let problems: QuarantinedValue[] | undefined;
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i]!;
      const at = positions[i]!;
      const raw = at < 0 ? null : fields[at]!;
      const staged = at < 0 && column.nullable ? ok(null) : stageValue(column, raw);
      if (staged.ok) values[i] = staged.value;
      else (problems ??= []).push({ column: column.name, reason: staged.reason, raw });
    }
    values[columns.length] = windowId;
    if (!problems) return { ok: true, values };
    const key = keys.map((k) => (k < 0 ? null : fields[k]!));
    return { ok: false, primaryKey: key.length === 1 ? (key[0] ?? null) : JSON.stringify(key), problems };
  };
}

/**
 * Streams one staged `csv.gz` file as encoded rows: gunzip → csv-parse → `rowEncoder`, one record at a time
 * (memory stays flat; the consumer's pace is the reading pace). An unquoted empty field is NULL, `""` is
 * the empty string. The header line must be the manifest's column list, and the record count its row count.
 */
export async function* decodeFile(stream: Stream, file: WindowFile): AsyncGenerator<EncodedRow> {
  const context = { stream: stream.name, window: file.windowId, key: file.key };
  const encode = rowEncoder(stream, file.columns);
  const parser = parse({
    cast: (value, info) => (info.quoting || value !== '' ? value : null),
  });
  pipeline(await file.open(), createGunzip(), parser, () => {
    // errors reach the reader through the parser, which pipeline destroys with them
  });
  let header: readonly (string | null)[] | undefined;
  let rows = 0;
  for await (const record of parser as AsyncIterable<(string | null)[]>) {
    if (header === undefined) {
      header = record;
      if (record.length !== file.columns.length || record.some((name, i) => name !== file.columns[i])) {
        throw new IntegrityError(
          `the file's header (${record.join(', ')}) differs from its manifest's columns`,
          {
            context,
            hint: 'the staged file does not belong to this manifest; export the window again as a new revision',
          },
        );
      }
      continue;
    }
    rows++;
    yield encode(record, file.windowId);
  }
  if (header === undefined) {
    throw new IntegrityError('the file has no header line', { context, hint: 'the staged file is damaged' });
  }
  if (rows !== file.rows) {
    throw new IntegrityError(`the file holds ${rows} rows where its manifest says ${file.rows}`, {
      context,
      hint: 'the staged file is damaged; export the window again as a new revision',
    });
  }
}
