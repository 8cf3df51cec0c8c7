import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stream } from '../catalog/types.js';
import { readCopyRecords } from '../exporter/copy-records.js';
import type { FileFormat } from '../exporter/writers/file-format.js';
import { formats, stagedInputFormats } from '../exporter/writers/formats.js';
import { utcTimestampText } from '../exporter/writers/ndjson-gz-format.js';
import {
  dateTextDays,
  daysFromCivil,
  timestampTextMicros,
} from '../exporter/writers/parquet/temporal-text.js';
import { createParquetFormat } from '../exporter/writers/parquet-format.js';
import { createDatabase } from './helpers/databases.js';

// The writers read staged csv.gz text (PostgreSQL's plain output) as well as their own select expressions:
// both ways must give the same bytes, for every awkward timestamp and date.

const stream: Stream = {
  name: 'temporal',
  columns: [
    { name: 'account_id', type: 'bigint', nullable: false },
    { name: 'id', type: 'bigint', nullable: false },
    { name: 'updated_at', type: 'timestamptz', nullable: false },
    { name: 'at', type: 'timestamptz', nullable: true },
    { name: 'day', type: 'date', nullable: true },
    { name: 'label', type: 'text', nullable: true },
    { name: 'amount', type: 'numeric', nullable: true, precision: 18, scale: 4 },
  ],
  primaryKey: ['id'],
  changeColumn: 'updated_at',
  tenantColumn: 'account_id',
  parents: [],
  since: 1,
};

const times = [
  null,
  '2026-11-23 09:20:00.123456+00',
  '2026-11-23 09:20:00+00',
  '2026-11-23 09:20:00.5+00',
  '2026-11-23 09:20:00.000001+00',
  '1969-12-31 23:59:59.999999+00',
  '1969-12-31 23:59:59.5+00',
  '1900-01-01 00:00:00.000001+00',
  '0001-01-01 00:00:00+00',
  '1970-01-01 00:00:00+00',
  '2000-02-29 12:00:00.25+02:00',
  '2255-06-05 23:47:34.740991+00',
  '2255-06-05 23:47:34.740992+00',
  '1684-07-28 00:12:25.259008+00',
  '9999-12-31 23:59:59.999999+00',
  '20000-06-01 01:02:03.456789+00',
  '0044-03-15 12:00:00.25+00 BC',
  '4713-11-24 00:00:00+00 BC',
];
const days = [
  null,
  '1970-01-01',
  '1969-12-31',
  '2026-11-23',
  '0001-01-01',
  '9999-12-31',
  '2000-02-29',
  '1900-03-01',
  '0044-03-15 BC',
  '20000-01-01',
];

let client: pg.Client;
const ROWS = 80;

beforeAll(async () => {
  client = new pg.Client({ connectionString: await createDatabase('wharf_staged_formats') });
  await client.connect();
  await client.query(
    "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; set extra_float_digits = 3; set intervalstyle = 'iso_8601'",
  );
  await client.query(`create table temporal (account_id bigint not null, id bigint primary key,
    updated_at timestamptz not null, at timestamptz, day date, label text, amount numeric(18,4))`);
  for (let i = 0; i < ROWS; i++) {
    await client.query('insert into temporal values ($1, $2, $3, $4, $5, $6, $7)', [
      7,
      i + 1,
      times[(i % (times.length - 1)) + 1],
      times[i % times.length],
      days[i % days.length],
      i % 3 === 0 ? null : i % 3 === 1 ? '' : `😀 ${i}, "q"`,
      i % 4 === 0 ? null : i % 2 === 0 ? '99999999999999.9999' : '-0.0001',
    ]);
  }
});

afterAll(async () => {
  await client?.end();
});

/** The table through `format`, fed by a COPY of its own select expressions; returns the sha256 of the bytes. */
async function write(format: FileFormat): Promise<{ sha: string; bytes: number }> {
  const exprs = stream.columns.map((c) => `${format.selectExpression(c, `"${c.name}"`)} as "${c.name}"`);
  const sql = `copy (select ${exprs.join(', ')} from temporal order by id) to stdout (format csv)`;
  const hash = createHash('sha256');
  let bytes = 0;
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback();
    },
  });
  const sink = format.open(stream, out);
  for await (const batch of readCopyRecords(client.query(copyTo(sql)))) {
    for (const record of batch) {
      const wait = sink.write(record);
      if (wait) await wait;
    }
  }
  await sink.end();
  return { sha: hash.digest('hex'), bytes };
}

describe('writers fed staged csv text', () => {
  it('select plain columns: the staged text is what csv.gz staging holds', () => {
    for (const format of Object.values(stagedInputFormats)) {
      expect(format.selectExpression(stream.columns[2]!, '"updated_at"'), format.name).toBe('"updated_at"');
      expect(format.selectExpression(stream.columns[4]!, '"day"'), format.name).toBe('"day"');
    }
  });

  it('give the same parquet and ndjson.gz bytes as the export path, awkward timestamps and dates included', async () => {
    for (const name of ['parquet', 'json'] as const) {
      const exported = await write(formats[name]);
      const staged = await write(stagedInputFormats[name]);
      expect(exported.bytes, name).toBeGreaterThan(0);
      expect(staged, name).toEqual(exported);
    }
    // several row groups too
    const a = await write(createParquetFormat({ rowGroupRows: 7 }));
    const b = await write(createParquetFormat({ rowGroupRows: 7, input: 'staged' }));
    expect(b).toEqual(a);
  });

  it('refuse infinity in parquet, in both input forms', async () => {
    await client.query("insert into temporal values (7, 1000, now(), 'infinity', null, null, null)");
    try {
      await expect(write(stagedInputFormats.parquet)).rejects.toThrow(
        /timestamp infinity of column at has no Parquet representation/,
      );
      await expect(write(formats.parquet)).rejects.toThrow();
      // ndjson keeps PostgreSQL's text either way
      expect(await write(stagedInputFormats.json)).toEqual(await write(formats.json));
    } finally {
      await client.query('delete from temporal where id = 1000');
    }
    await client.query("insert into temporal values (7, 1001, now(), null, '-infinity', null, null)");
    try {
      await expect(write(stagedInputFormats.parquet)).rejects.toThrow(
        /date -infinity of column day has no Parquet representation/,
      );
    } finally {
      await client.query('delete from temporal where id = 1001');
    }
  });
});

describe('temporal text helpers', () => {
  it('count days like PostgreSQL, BC and far years included', () => {
    expect(daysFromCivil(1970, 1, 1)).toBe(0);
    expect(daysFromCivil(1969, 12, 31)).toBe(-1);
    expect(daysFromCivil(2000, 2, 29)).toBe(11016);
    expect(daysFromCivil(1, 1, 1)).toBe(-719162);
    expect(dateTextDays('0001-12-31 BC', 'd')).toBe(-719163);
    expect(dateTextDays('20000-01-01', 'd')).toBe(daysFromCivil(20000, 1, 1));
    expect(() => dateTextDays('tomorrow', 'd')).toThrow(/is not PostgreSQL date text/);
  });

  it('read timestamps with any offset into exact microseconds', () => {
    expect(timestampTextMicros('1970-01-01 00:00:00+00', 't')).toBe(0n);
    expect(timestampTextMicros('1969-12-31 23:59:59.5+00', 't')).toBe(-500000n);
    expect(timestampTextMicros('2000-02-29 12:00:00.25+02:00', 't')).toBe(
      timestampTextMicros('2000-02-29 10:00:00.25+00', 't'),
    );
    expect(timestampTextMicros('2000-02-29 12:00:00-05:30:15', 't')).toBe(
      timestampTextMicros('2000-02-29 17:30:15+00', 't'),
    );
    expect(timestampTextMicros('9999-12-31 23:59:59.999999+00', 't')).toBe(253402300799999999n);
    expect(() => timestampTextMicros('infinity', 't')).toThrow(/no Parquet representation/);
  });

  it("drops the +00 that timestamptz text carries in UTC, as `at time zone 'UTC'` prints it", () => {
    expect(utcTimestampText('2026-11-23 09:20:00.5+00')).toBe('2026-11-23 09:20:00.5');
    expect(utcTimestampText('0044-03-15 12:00:00+00 BC')).toBe('0044-03-15 12:00:00 BC');
    expect(utcTimestampText('infinity')).toBe('infinity');
  });
});
