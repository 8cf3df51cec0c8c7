import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import type { ColumnChunk, FileMetaData } from 'hyparquet';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Column, Stream } from '../catalog/types.js';
import { WharfError } from '../core/errors.js';
import { readCopyRecords } from '../exporter/copy-records.js';
import { csvGzFormat } from '../exporter/writers/csv-gz-format.js';
import type { FileFormat } from '../exporter/writers/file-format.js';
import { formatByName, formats } from '../exporter/writers/formats.js';
import { isoTimestamp, ndjsonGzFormat } from '../exporter/writers/ndjson-gz-format.js';
import {
  createParquetFormat,
  PARQUET_CREATED_BY,
  parquetFormat,
  unscaledDecimal,
} from '../exporter/writers/parquet-format.js';
import { createDatabase } from './helpers/databases.js';

/** A stream with every logical type, nullable and not. */
const stream: Stream = {
  name: 'every_type',
  columns: [
    { name: 'account_id', type: 'bigint', nullable: false },
    { name: 'id', type: 'bigint', nullable: false },
    { name: 'updated_at', type: 'timestamptz', nullable: false },
    { name: 'label', type: 'text', nullable: true },
    { name: 'code', type: 'char', nullable: true, length: 3 },
    { name: 'amount', type: 'numeric', nullable: true, precision: 18, scale: 4 },
    { name: 'happened_at', type: 'timestamptz', nullable: true },
    { name: 'day', type: 'date', nullable: true },
    { name: 'event_id', type: 'uuid', nullable: true },
    { name: 'flag', type: 'boolean', nullable: true },
    { name: 'doc', type: 'jsonb', nullable: true },
    { name: 'big', type: 'bigint', nullable: true },
    { name: 'price', type: 'numeric', nullable: false, precision: 18, scale: 4 },
    { name: 'note', type: 'text', nullable: false },
    { name: 'period', type: 'date', nullable: false },
    { name: 'key', type: 'uuid', nullable: false },
    { name: 'seen', type: 'boolean', nullable: false },
    { name: 'country', type: 'char', nullable: false, length: 2 },
    { name: 'body', type: 'jsonb', nullable: false },
  ],
  primaryKey: ['id'],
  changeColumn: 'updated_at',
  tenantColumn: 'account_id',
  parents: [],
  since: 1,
};

const texts = [
  null,
  '',
  'plain',
  'quote " inside',
  '"',
  '""',
  'a,b',
  ',',
  'cr\rx',
  'lf\nx',
  'crlf\r\nx',
  '\n',
  '\r\n',
  'back\\slash',
  '\\N',
  '\\.',
  'NULL',
  ' padded ',
  'emoji 😀 𝄞 and ü',
  'x'.repeat(200_000),
  '"a","b"\n"c",',
];
const codes = [null, 'ab', 'é😀x', '', ',"\n'];
const amounts = [
  null,
  '99999999999999.9999',
  '-99999999999999.9999',
  '0.0001',
  '-0.0001',
  '0',
  '12.5',
  '-1',
  '1234567890.1234',
];
const times = [
  null,
  '2026-11-23 09:20:00.123456+00',
  '2026-11-23 09:20:00+00',
  '2026-11-23 09:20:00.5+00',
  '1969-12-31 23:59:59.999999+00',
  '1900-01-01 00:00:00.000001+00',
  '0001-01-01 00:00:00+00',
  '1970-01-01 00:00:00+00',
  '2000-02-29 12:00:00.25+02:00',
  '9999-12-31 23:59:59.999999+00',
  '20000-06-01 01:02:03.456789+00',
];
const days = [null, '1970-01-01', '1969-12-31', '2026-11-23', '0001-01-01', '9999-12-31', '2000-02-29'];
const uuids = [
  null,
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '0190b3e4-7c2d-7b4a-9f3e-1a2b3c4d5e6f',
];
const flags = [null, true, false];
const docs = [
  null,
  'null',
  '"null"',
  '""',
  '{}',
  '[]',
  '{"a": "ü😀𝄞", "nested": {"list": [1, 2.50, null, true, "x\\"y"]}, "s": "line\\nbreak, comma"}',
  '123456789012345678901234567890.000000001',
  '"\\\\N"',
];
const bigs = [null, '9223372036854775807', '-9223372036854775808', '0', '9007199254740993', '-1'];

const ROWS = 60;
let url: string;
let client: pg.Client;
let dir: string;

/** Every column's text as PostgreSQL prints it (session: UTC, ISO), plus ISO-8601 forms of timestamps. */
interface SourceRow {
  readonly text: (string | null)[];
  readonly isoUpdatedAt: string;
  readonly isoHappenedAt: string | null;
}
let source: SourceRow[];

beforeAll(async () => {
  url = await createDatabase('wharf_writers');
  client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(
    "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; set extra_float_digits = 3; set intervalstyle = 'iso_8601'",
  );
  await client.query(`create table every_type (
    account_id bigint not null, id bigint not null primary key, updated_at timestamptz not null,
    label text, code char(3), amount numeric(18,4), happened_at timestamptz, day date, event_id uuid,
    flag boolean, doc jsonb, big bigint, price numeric(18,4) not null, note text not null,
    period date not null, key uuid not null, seen boolean not null, country char(2) not null, body jsonb not null)`);
  const pick = <T>(values: readonly T[], i: number): T => values[i % values.length]!;
  for (let i = 0; i < ROWS; i++) {
    await client.query(
      `insert into every_type values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
        $15, $16, $17, $18, $19)`,
      [
        i < ROWS / 2 ? 1 : 2,
        i + 1,
        pick(times.slice(1), i),
        pick(texts, i),
        pick(codes, i + 1),
        pick(amounts, i),
        pick(times, i + 3),
        pick(days, i),
        pick(uuids, i),
        pick(flags, i),
        pick(docs, i),
        pick(bigs, i),
        pick(amounts.slice(1), i + 2),
        pick(texts.slice(1), i + 5),
        pick(days.slice(1), i + 1),
        pick(uuids.slice(1), i + 1),
        i % 2 === 0,
        pick(['DE', 'ü', '😀', ''], i),
        pick(docs.slice(1), i + 2),
      ],
    );
  }
  // the values as PostgreSQL prints them: the text protocol, no client-side parsing
  const raw = await client.query({
    text: `select *, to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as iso_u,
      to_char(happened_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as iso_h
      from every_type order by id`,
    rowMode: 'array',
    types: { getTypeParser: () => (value: string) => value },
  });
  source = raw.rows.map((r: (string | null)[]) => ({
    text: r.slice(0, stream.columns.length),
    isoUpdatedAt: r[stream.columns.length]!,
    isoHappenedAt: r[stream.columns.length + 1] ?? null,
  }));
  dir = mkdtempSync(join(tmpdir(), 'wharf-writers-'));
});

afterAll(async () => {
  await client?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function copySql(format: FileFormat): string {
  const exprs = stream.columns.map((c) => `${format.selectExpression(c, `"${c.name}"`)} as "${c.name}"`);
  return `copy (select ${exprs.join(', ')} from every_type order by id) to stdout (format csv)`;
}

/** Runs the real COPY through the splitter and `format` into a file; returns its path. */
async function writeFile(format: FileFormat, name: string): Promise<string> {
  const path = join(dir, `${name}.${format.extension}`);
  const out = createWriteStream(path);
  const sink = format.open(stream, out);
  let rows = 0;
  for await (const batch of readCopyRecords(client.query(copyTo(copySql(format))))) {
    for (const record of batch) {
      expect(record.account).toBe(record.head(1)[0]);
      rows++;
      const wait = sink.write(record);
      if (wait) await wait;
    }
  }
  await sink.end();
  expect(rows).toBe(ROWS);
  return path;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const column = (name: string): number => stream.columns.findIndex((c) => c.name === name);

/** An unscaled DECIMAL at `scale` as PostgreSQL prints numeric(…, scale). */
function decimalText(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** Epoch microseconds → `YYYY-MM-DDTHH:MI:SS.ffffffZ`, with integer arithmetic. */
function isoFromMicros(micros: bigint): string {
  const millis = micros >= 0n ? micros / 1000n : -((-micros + 999n) / 1000n);
  const rest = micros - millis * 1000n;
  const iso = new Date(Number(millis)).toISOString().replace(/^\+0*/, '');
  return `${iso.slice(0, -1)}${rest.toString().padStart(3, '0')}Z`;
}

describe('file formats against real COPY output', () => {
  it('has all three formats by name', () => {
    expect(formatByName('csv')).toBe(csvGzFormat);
    expect(formatByName('parquet')).toBe(parquetFormat);
    expect(formatByName('json')).toBe(ndjsonGzFormat);
    expect(Object.keys(formats).sort()).toEqual(['csv', 'json', 'parquet']);
    expect(() => formatByName('xml' as 'csv')).toThrow(/unknown file format/);
  });

  it('csv.gz keeps every value, NULL apart from empty text', async () => {
    const path = await writeFile(csvGzFormat, 'roundtrip');
    const records: (string | null)[][] = parse(gunzipSync(readFileSync(path)), {
      cast: (value, context) => (context.quoting ? value : value === '' ? null : value),
      relax_column_count: false,
    });
    expect(records[0]).toEqual(stream.columns.map((c) => c.name));
    const rows = records.slice(1);
    expect(rows).toHaveLength(ROWS);
    rows.forEach((row, i) => {
      expect(row).toEqual(source[i]!.text);
    });
    // the awkward ones are really there
    const labels = rows.map((r) => r[column('label')]);
    expect(labels).toContain(null);
    expect(labels).toContain('');
    expect(labels).toContain('\\N');
    expect(labels).toContain('crlf\r\nx');
    expect(labels).toContain('emoji 😀 𝄞 and ü');
  });

  it('parquet keeps every value with its type (DECIMAL exact, micros UTC, UUID, DATE, JSON text)', async () => {
    const path = await writeFile(parquetFormat, 'roundtrip');
    const bytes = readFileSync(path);
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const metadata = parquetMetadata(file);
    expect(metadata.created_by).toBe(PARQUET_CREATED_BY);
    const element = (name: string) => metadata.schema.find((e) => e.name === name)!;
    expect(element('amount')).toMatchObject({
      type: 'INT64',
      converted_type: 'DECIMAL',
      scale: 4,
      precision: 18,
      repetition_type: 'OPTIONAL',
    });
    for (const c of stream.columns) {
      expect(element(c.name).repetition_type, c.name).toBe(c.nullable ? 'OPTIONAL' : 'REQUIRED');
    }
    expect(element('updated_at')).toMatchObject({
      type: 'INT64',
      repetition_type: 'REQUIRED',
      logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
    });
    expect(element('event_id')).toMatchObject({ type: 'FIXED_LEN_BYTE_ARRAY', type_length: 16 });
    expect(element('event_id').logical_type?.type).toBe('UUID');
    expect(element('day')).toMatchObject({ type: 'INT32', converted_type: 'DATE' });
    expect(element('doc')).toMatchObject({ type: 'BYTE_ARRAY', converted_type: 'JSON' });
    expect(element('label')).toMatchObject({ type: 'BYTE_ARRAY', converted_type: 'UTF8' });
    expect(element('flag').type).toBe('BOOLEAN');
    expect(element('big').type).toBe('INT64');

    // read the unscaled DECIMAL integers themselves (hyparquet would turn them into floats)
    const rawMetadata: FileMetaData = {
      ...metadata,
      schema: metadata.schema.map((e) =>
        e.converted_type === 'DECIMAL' ? { ...e, converted_type: undefined, logical_type: undefined } : e,
      ),
    };
    const decoder = new TextDecoder();
    const rows = await parquetReadObjects({
      file,
      metadata: rawMetadata,
      parsers: {
        timestampFromMicroseconds: (micros: bigint) => micros,
        dateFromDays: (days: number) => days,
        jsonFromBytes: (b: Uint8Array) => decoder.decode(b),
      },
    });
    expect(rows).toHaveLength(ROWS);
    rows.forEach((row, i) => {
      const expected = source[i]!;
      const got = stream.columns.map((c) => {
        const value = row[c.name];
        if (value === null || value === undefined) return null;
        switch (c.type) {
          case 'bigint':
            expect(typeof value).toBe('bigint');
            return (value as bigint).toString();
          case 'numeric':
            return decimalText(value as bigint, 4);
          case 'timestamptz':
            return isoFromMicros(value as bigint);
          case 'date':
            return new Date((value as number) * 86_400_000).toISOString().slice(0, 10);
          case 'boolean':
            return value ? 't' : 'f';
          default:
            return value as string;
        }
      });
      const want = expected.text.map((t, j) => {
        const c = stream.columns[j]!;
        if (c.name === 'updated_at') return expected.isoUpdatedAt;
        if (c.name === 'happened_at') return expected.isoHappenedAt;
        return t;
      });
      expect(got).toEqual(want);
    });
  });

  it('ndjson.gz keeps every value: exact bigint and numeric strings, ISO UTC micros, jsonb text', async () => {
    const path = await writeFile(ndjsonGzFormat, 'roundtrip');
    const lines = gunzipSync(readFileSync(path)).toString('utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(ROWS);
    lines.forEach((line, i) => {
      const object = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(object)).toEqual(stream.columns.map((c) => c.name));
      const expected = source[i]!;
      stream.columns.forEach((c, j) => {
        const text = expected.text[j]!;
        const value = object[c.name];
        if (text === null) {
          expect(value).toBeNull();
          return;
        }
        if (c.type === 'boolean') expect(value).toBe(text === 't');
        else if (c.name === 'updated_at') expect(value).toBe(expected.isoUpdatedAt);
        else if (c.name === 'happened_at') expect(value).toBe(expected.isoHappenedAt);
        else expect(value).toBe(text);
        if (c.type === 'jsonb') expect(() => JSON.parse(value as string)).not.toThrow();
      });
    });
    // SQL NULL and JSON null stay apart
    const docs = lines.map((l) => (JSON.parse(l) as { doc: unknown }).doc);
    expect(docs).toContain(null);
    expect(docs).toContain('null');
  });

  it('csv.gz and ndjson.gz load back into PostgreSQL as the same rows (the ways docs/formats.md shows)', async () => {
    const sameRows = async (table: string) => {
      const diff = await client.query<{ n: string }>(
        `select (select count(*) from (select * from every_type except all select * from ${table}) a)
              + (select count(*) from (select * from ${table} except all select * from every_type) b) as n`,
      );
      expect(Number(diff.rows[0]!.n), table).toBe(0);
      const count = await client.query<{ n: string }>(`select count(*) as n from ${table}`);
      expect(Number(count.rows[0]!.n)).toBe(ROWS);
    };

    const csv = await writeFile(csvGzFormat, 'reload');
    await client.query('create temp table csv_back (like every_type)');
    await pipeline(
      Readable.from([gunzipSync(readFileSync(csv))]),
      client.query(copyFrom('copy csv_back from stdin (format csv, header match)')),
    );
    await sameRows('csv_back');

    const ndjson = await writeFile(ndjsonGzFormat, 'reload');
    await client.query('create temp table lines (n serial, line jsonb)');
    await pipeline(
      Readable.from([gunzipSync(readFileSync(ndjson))]),
      client.query(copyFrom(`copy lines (line) from stdin (format csv, quote e'\\x01', delimiter e'\\x02')`)),
    );
    const pgType = (c: Column) =>
      c.type === 'numeric' ? 'numeric(18,4)' : c.type === 'char' ? `char(${c.length})` : c.type;
    const casts = stream.columns.map((c) => `(line->>'${c.name}')::${pgType(c)} as "${c.name}"`);
    await client.query(`create temp table json_back as select ${casts.join(', ')} from lines order by n`);
    await sameRows('json_back');
  });

  it('writes byte-identical files for the same input, in every format', async () => {
    for (const format of [csvGzFormat, parquetFormat, ndjsonGzFormat]) {
      const a = await writeFile(format, 'first');
      const b = await writeFile(format, 'second');
      expect(sha256(a), format.name).toBe(sha256(b));
    }
  });
});

/** Columns that exercise each encoding choice: constant, few and many distinct values, all NULL, no NULL. */
const cases: Stream = {
  name: 'encoding_cases',
  columns: [
    { name: 'account_id', type: 'bigint', nullable: false },
    { name: 'id', type: 'bigint', nullable: false },
    { name: 'big', type: 'bigint', nullable: true },
    { name: 'amount', type: 'numeric', nullable: true, precision: 18, scale: 4 },
    { name: 'link_id', type: 'bigint', nullable: false },
    { name: 'country', type: 'char', nullable: false, length: 2 },
    { name: 'label', type: 'text', nullable: true },
    { name: 'status', type: 'text', nullable: true },
    { name: 'nothing', type: 'text', nullable: true },
    { name: 'always', type: 'bigint', nullable: true },
    { name: 'at', type: 'timestamptz', nullable: false },
    { name: 'day', type: 'date', nullable: true },
    { name: 'ref', type: 'uuid', nullable: true },
    { name: 'flag', type: 'boolean', nullable: true },
    { name: 'doc', type: 'jsonb', nullable: true },
  ],
  primaryKey: ['id'],
  changeColumn: 'at',
  tenantColumn: 'account_id',
  parents: [],
  since: 1,
};
const CASE_ROWS = 9000;

/** Writes `of`'s table (ordered by id) through `format` into a file; returns its bytes. */
async function writeTable(format: FileFormat, of: Stream, name: string): Promise<ArrayBuffer> {
  const path = join(dir, `${name}.${format.extension}`);
  const exprs = of.columns.map((c) => `${format.selectExpression(c, `"${c.name}"`)} as "${c.name}"`);
  const sql = `copy (select ${exprs.join(', ')} from ${of.name} order by id) to stdout (format csv)`;
  const sink = format.open(of, createWriteStream(path));
  for await (const batch of readCopyRecords(client.query(copyTo(sql)))) {
    for (const record of batch) {
      const wait = sink.write(record);
      if (wait) await wait;
    }
  }
  await sink.end();
  const bytes = readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/** Every row of a parquet file as PostgreSQL prints the values (DECIMAL read as its unscaled integer). */
async function parquetAsText(file: ArrayBuffer, of: Stream): Promise<(string | null)[][]> {
  const metadata = parquetMetadata(file);
  const decoder = new TextDecoder();
  const rows = await parquetReadObjects({
    file,
    metadata: {
      ...metadata,
      schema: metadata.schema.map((e) =>
        e.converted_type === 'DECIMAL' ? { ...e, converted_type: undefined, logical_type: undefined } : e,
      ),
    },
    parsers: {
      timestampFromMicroseconds: (micros: bigint) => micros,
      dateFromDays: (days: number) => days,
      jsonFromBytes: (b: Uint8Array) => decoder.decode(b),
    },
  });
  return rows.map((row) =>
    of.columns.map((c) => {
      const value = row[c.name];
      if (value === null || value === undefined) return null;
      switch (c.type) {
        case 'numeric':
          return decimalText(value as bigint, 4);
        case 'timestamptz':
          return isoFromMicros(value as bigint);
        case 'date':
          return new Date((value as number) * 86_400_000).toISOString().slice(0, 10);
        case 'boolean':
          return value ? 't' : 'f';
        default:
          return typeof value === 'bigint' ? value.toString() : (value as string);
      }
    }),
  );
}

describe('parquet encodings', () => {
  let expected: (string | null)[][];

  beforeAll(async () => {
    await client.query(`create table encoding_cases (
      account_id bigint not null, id bigint primary key, big bigint, amount numeric(18,4), link_id bigint not null,
      country char(2) not null, label text, status text, nothing text, always bigint, at timestamptz not null,
      day date, ref uuid, flag boolean, doc jsonb)`);
    await client.query(
      `insert into encoding_cases
       select 7, g,
         (array[9223372036854775807, -9223372036854775807, -9223372036854775808, 0, -1, 9007199254740993,
                4294967296, -4294967297, null])[g % 9 + 1],
         (array[99999999999999.9999, -99999999999999.9999, 0.0001, -0.0001, 0, 12.5, 1234567890.1234,
                -5, null])[g % 9 + 1],
         1000000000 + (g * 7919) % 1000,
         (array['DE', 'FR', 'ü', '😀'])[g % 4 + 1],
         case when g % 11 = 0 then null
              else 'row ' || g || ' "q" ""x"", ' || chr(13) || chr(10) || '😀𝄞 ü ' || repeat('x', g % 40) end,
         (array['', 'ok', '"quoted"', 'a,b', e'line\nbreak', e'cr\r\nlf', '𝄞 ü', null])[g % 8 + 1],
         null,
         g * 3,
         timestamptz '2026-11-23 09:00:00+00' + g * interval '1.5 ms',
         case when g % 6 = 0 then null else date '1970-01-01' + (g % 400 - 200) end,
         case when g % 5 = 0 then null else md5(g::text)::uuid end,
         case when g % 3 = 0 then null else g % 2 = 0 end,
         case when g % 4 = 0 then null else jsonb_build_object('g', g, 's', 'ü"x', 'pad', repeat('p', 300)) end
       from generate_series(1, $1) g`,
      [CASE_ROWS],
    );
    // the values as PostgreSQL prints them (char(n) keeps its padding), timestamps as ISO-8601 UTC
    const exprs = cases.columns.map((c) =>
      c.type === 'timestamptz'
        ? `to_char(${c.name} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
        : c.name,
    );
    const raw = await client.query({
      text: `select ${exprs.join(', ')} from encoding_cases order by id`,
      rowMode: 'array',
      types: { getTypeParser: () => (value: string) => value },
    });
    expected = raw.rows as (string | null)[][];
  });

  const chunk = (metadata: FileMetaData, group: number, name: string): ColumnChunk =>
    metadata.row_groups[group]!.columns.find((c) => c.meta_data?.path_in_schema[0] === name)!;

  it('uses a dictionary where values repeat and PLAIN elsewhere, and reads back value for value', async () => {
    const file = await writeTable(parquetFormat, cases, 'cases');
    const metadata = parquetMetadata(file);
    expect(metadata.row_groups).toHaveLength(1);
    expect(Number(metadata.num_rows)).toBe(CASE_ROWS);
    const dictionary = (name: string) =>
      chunk(metadata, 0, name).meta_data!.encodings.includes('RLE_DICTIONARY');
    // few distinct values (link_id: 1000, more than one index byte) are dictionary encoded
    for (const name of ['account_id', 'big', 'amount', 'link_id', 'country', 'status', 'day']) {
      expect(dictionary(name), name).toBe(true);
      expect(chunk(metadata, 0, name).meta_data!.dictionary_page_offset, name).toBeDefined();
    }
    // distinct values are PLAIN; label gives its dictionary up after the first thousands of rows
    for (const name of ['id', 'label', 'always', 'at', 'ref', 'flag', 'doc', 'nothing']) {
      expect(dictionary(name), name).toBe(false);
      expect(chunk(metadata, 0, name).meta_data!.encodings, name).toContain('PLAIN');
    }
    // about 2 MB of JSON: pages of about 1 MiB each
    const docPages = chunk(metadata, 0, 'doc').meta_data!.encoding_stats!.find(
      (s) => s.page_type === 'DATA_PAGE',
    );
    expect(docPages!.count).toBeGreaterThan(1);
    expect(await parquetAsText(file, cases)).toEqual(expected);
  });

  it('writes several row groups with statistics of their own, and the same bytes every time', async () => {
    const format = createParquetFormat({ rowGroupRows: 2000 });
    const file = await writeTable(format, cases, 'cases-groups');
    const again = await writeTable(format, cases, 'cases-groups-again');
    const sha = (bytes: ArrayBuffer) => createHash('sha256').update(new Uint8Array(bytes)).digest('hex');
    expect(sha(again)).toBe(sha(file));
    const metadata = parquetMetadata(file);
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).toEqual([2000, 2000, 2000, 2000, 1000]);
    expect(await parquetAsText(file, cases)).toEqual(expected);

    const stats = (group: number, name: string) => chunk(metadata, group, name).meta_data!.statistics!;
    for (let group = 0; group < 5; group++) {
      const rows = Number(metadata.row_groups[group]!.num_rows);
      // all NULL: a null count and no bounds; nullable but never NULL: a null count of 0
      expect(stats(group, 'nothing')).toMatchObject({ null_count: BigInt(rows) });
      expect(stats(group, 'nothing').min_value).toBeUndefined();
      expect(stats(group, 'always')).toMatchObject({
        null_count: 0n,
        min_value: BigInt(3 * (group * 2000 + 1)),
        max_value: BigInt(3 * (group * 2000 + rows)),
      });
      expect(stats(group, 'big')).toMatchObject({
        min_value: -9223372036854775808n,
        max_value: 9223372036854775807n,
      });
      expect(stats(group, 'id')).toMatchObject({ min_value: BigInt(group * 2000 + 1) });
      expect(stats(group, 'country')).toMatchObject({ null_count: 0n, min_value: 'DE', max_value: '😀 ' });
      // free text: a null count, no bounds
      expect(stats(group, 'label').null_count).toBeGreaterThan(0n);
      expect(stats(group, 'label').min_value).toBeUndefined();
    }
  });

  it('rejects values Parquet cannot hold, and records with the wrong number of fields', async () => {
    const small: Stream = {
      ...cases,
      columns: [
        { name: 'account_id', type: 'bigint', nullable: false },
        { name: 'amount', type: 'numeric', nullable: true, precision: 18, scale: 4 },
      ],
    };
    const writeText = async (text: string) => {
      const sink = parquetFormat.open(
        small,
        new Writable({ write: (_chunk, _encoding, callback) => callback() }),
      );
      for await (const batch of readCopyRecords(
        (async function* () {
          yield Buffer.from(text);
        })(),
      )) {
        for (const record of batch) sink.write(record);
      }
      await sink.end();
    };
    await expect(writeText('1,12.5\n1,\n1,-99999999999999.9999\n')).resolves.toBeUndefined();
    await expect(writeText('1,NaN\n')).rejects.toThrow(/cannot be written as a Parquet DECIMAL/);
    await expect(writeText('1,Infinity\n')).rejects.toThrow(WharfError);
    await expect(writeText('1,1.00001\n')).rejects.toThrow(/more than 4 decimal places/);
    await expect(writeText('1,2,3\n')).rejects.toThrow(/COPY record has 3 fields, the stream has 2 columns/);
    await expect(writeText('1\n')).rejects.toThrow(/COPY record has 1 fields/);
  });
});

describe('format helpers', () => {
  it('turns decimal text into an unscaled integer without a float', () => {
    expect(unscaledDecimal('99999999999999.9999', 4)).toBe(999999999999999999n);
    expect(unscaledDecimal('-99999999999999.9999', 4)).toBe(-999999999999999999n);
    expect(unscaledDecimal('0.0001', 4)).toBe(1n);
    expect(unscaledDecimal('-0.0001', 4)).toBe(-1n);
    expect(unscaledDecimal('5', 4)).toBe(50000n);
    expect(unscaledDecimal('.5', 4)).toBe(5000n);
    expect(unscaledDecimal('-.5', 4)).toBe(-5000n);
    expect(unscaledDecimal('12.340000', 4)).toBe(123400n);
    expect(() => unscaledDecimal('1.00001', 4)).toThrow(/decimal places/);
    expect(() => unscaledDecimal('NaN', 4)).toThrow(/DECIMAL/);
  });

  it('reshapes PostgreSQL timestamps into ISO-8601 UTC with microseconds', () => {
    expect(isoTimestamp('2026-11-23 09:20:00.123456')).toBe('2026-11-23T09:20:00.123456Z');
    expect(isoTimestamp('2026-11-23 09:20:00.5')).toBe('2026-11-23T09:20:00.500000Z');
    expect(isoTimestamp('2026-11-23 09:20:00')).toBe('2026-11-23T09:20:00.000000Z');
    expect(isoTimestamp('20000-06-01 01:02:03')).toBe('20000-06-01T01:02:03.000000Z');
    expect(isoTimestamp('infinity')).toBe('infinity');
    expect(isoTimestamp('0044-03-15 12:00:00 BC')).toBe('0044-03-15 12:00:00 BC');
  });

  it('waits for a slow output (backpressure) and still writes every byte', async () => {
    const random = (i: number) => createHash('sha512').update(String(i)).digest('hex').repeat(4);
    const text = Array.from({ length: 6000 }, (_, i) => `1,${i},"${random(i)}"\n`).join('');
    const small: Stream = {
      ...stream,
      columns: [
        { name: 'account_id', type: 'bigint', nullable: false },
        { name: 'id', type: 'bigint', nullable: false },
        { name: 'note', type: 'text', nullable: false },
      ],
    };
    for (const format of [csvGzFormat, ndjsonGzFormat, parquetFormat]) {
      const chunks: Buffer[] = [];
      const out = new Writable({
        highWaterMark: 1024,
        write(chunk: Buffer, _encoding, callback) {
          chunks.push(chunk);
          setTimeout(callback, 1);
        },
      });
      const sink = (format === parquetFormat ? createParquetFormat({ rowGroupRows: 1000 }) : format).open(
        small,
        out,
      );
      let waits = 0;
      let rows = 0;
      for await (const batch of readCopyRecords(
        (async function* () {
          yield Buffer.from(text);
        })(),
      )) {
        for (const record of batch) {
          rows++;
          const wait = sink.write(record);
          if (wait) {
            waits++;
            await wait;
          }
        }
      }
      await sink.end();
      expect(rows).toBe(6000);
      expect(waits, format.name).toBeGreaterThan(0);
      const bytes = Buffer.concat(chunks);
      if (format === csvGzFormat) {
        expect(gunzipSync(bytes).toString()).toBe(`account_id,id,note\n${text}`);
      } else if (format === ndjsonGzFormat) {
        const lines = gunzipSync(bytes).toString().trimEnd().split('\n');
        expect(lines.map((l) => (JSON.parse(l) as { note: string }).note)).toEqual(
          Array.from({ length: 6000 }, (_, i) => random(i)),
        );
      } else {
        const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        const rowsRead = await parquetReadObjects({ file, columns: ['note'] });
        expect(rowsRead.map((r) => r.note)).toEqual(Array.from({ length: 6000 }, (_, i) => random(i)));
      }
    }
  });
});
