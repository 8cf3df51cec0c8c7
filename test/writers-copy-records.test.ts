import { parse } from 'csv-parse/sync';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stream } from '../catalog/types.js';
import { WharfError } from '../core/errors.js';
import { decodeFields, readCopyRecords } from '../exporter/copy-records.js';
import { StreamChecksum } from '../exporter/stream-checksum.js';
import type { CopyRecord } from '../exporter/writers/file-format.js';
import { createDatabase } from './helpers/databases.js';

let client: pg.Client;
/** The whole COPY output of the test table, as PostgreSQL sent it. */
let copyOutput: Buffer;
let rowCount: number;

const awkward = [
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
  '\n\n"\n',
  'back\\slash',
  '\\N',
  '\\.',
  'emoji 😀 𝄞 ü',
  'y'.repeat(70_000),
];

beforeAll(async () => {
  const url = await createDatabase('wharf_copy_records');
  client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(
    'create table t (account_id bigint not null, id bigint primary key, a text, b text, doc jsonb, n numeric(18,4))',
  );
  let id = 0;
  for (const a of awkward) {
    for (const b of [null, '', 'x', '"quoted"', 'two\nlines']) {
      id++;
      await client.query('insert into t values ($1, $2, $3, $4, $5, $6)', [
        100 + (id % 3),
        id,
        a,
        b,
        id % 4 === 0 ? null : JSON.stringify({ a, id, s: 'ü,"\n' }),
        id % 5 === 0 ? null : `${id}.0001`,
      ]);
    }
  }
  rowCount = id;
  const chunks: Buffer[] = [];
  for await (const chunk of client.query(
    copyTo('copy (select * from t order by id) to stdout (format csv)'),
  )) {
    chunks.push(chunk as Buffer);
  }
  copyOutput = Buffer.concat(chunks);
});

afterAll(async () => {
  await client?.end();
});

async function* chunked(bytes: Buffer, size: (i: number) => number): AsyncGenerator<Buffer> {
  let p = 0;
  for (let i = 0; p < bytes.length; i++) {
    const n = Math.max(1, size(i));
    yield bytes.subarray(p, p + n);
    p += n;
  }
}

async function split(source: AsyncIterable<Buffer>): Promise<CopyRecord[]> {
  const records: CopyRecord[] = [];
  for await (const batch of readCopyRecords(source)) {
    expect(batch.length).toBeGreaterThan(0);
    records.push(...batch);
  }
  return records;
}

/** A deterministic pseudo-random sequence (no flaky seeds). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('readCopyRecords', () => {
  it('splits real COPY output into records that an independent CSV parser agrees with', async () => {
    const records = await split(chunked(copyOutput, () => copyOutput.length));
    expect(records).toHaveLength(rowCount);
    expect(Buffer.concat(records.map((r) => r.raw)).equals(copyOutput)).toBe(true);

    const expected: (string | null)[][] = parse(copyOutput, {
      cast: (value, context) => (context.quoting ? value : value === '' ? null : value),
    });
    expect(records.map((r) => r.fields())).toEqual(expected);
    expect(records.map((r) => r.account)).toEqual(expected.map((e) => e[0]));
    expect(records.map((r) => r.head(2))).toEqual(expected.map((e) => e.slice(0, 2)));
    expect(records[0]!.head(0)).toEqual([]);

    // and the source agrees too
    const { rows } = await client.query<{ a: string | null; b: string | null }>(
      'select a, b from t order by id',
    );
    expect(records.map((r) => r.fields().slice(2, 4))).toEqual(rows.map((r) => [r.a, r.b]));
  });

  it('gives identical records for 1-byte, 7-byte and random chunk sizes', async () => {
    const whole = (await split(chunked(copyOutput, () => copyOutput.length))).map((r) =>
      r.raw.toString('hex'),
    );
    const random = lcg(42);
    const bigRandom = lcg(7);
    for (const [name, size] of [
      ['1 byte', () => 1],
      ['7 bytes', () => 7],
      ['random 1..4096', () => 1 + Math.floor(random() * 4096)],
      ['random 1..200000', () => 1 + Math.floor(bigRandom() * 200_000)],
    ] as const) {
      const records = await split(chunked(copyOutput, size));
      expect(
        records.map((r) => r.raw.toString('hex')),
        name,
      ).toEqual(whole);
    }
  });

  it('checksums records from their bytes exactly as from their decoded text (quoted, non-ASCII, NULL, last field)', async () => {
    const records = await split(chunked(copyOutput, () => 4096));
    const column = (name: string, type: 'bigint' | 'text' | 'jsonb' | 'numeric') => ({
      name,
      type,
      nullable: true,
    });
    const table = (primaryKey: string, changeColumn: string): Stream => ({
      name: 't',
      columns: [
        column('account_id', 'bigint'),
        column('id', 'bigint'),
        column('a', 'text'),
        column('b', 'text'),
        column('doc', 'jsonb'),
        column('n', 'numeric'),
      ],
      primaryKey: [primaryKey],
      changeColumn,
      tenantColumn: 'account_id',
      parents: [],
      since: 1,
    });
    // awkward key and change values; a plain key with the change value in the last field
    for (const [key, change, k, c] of [
      ['a', 'b', 2, 3],
      ['id', 'n', 1, 5],
      ['b', 'id', 3, 1],
    ] as const) {
      const fromBytes = new StreamChecksum(table(key, change));
      const fromText = new StreamChecksum(table(key, change));
      for (const record of records) {
        fromBytes.addRecord(record);
        const fields = record.fields();
        fromText.add(fields[k] ?? '', fields[c] ?? '');
      }
      expect(fromBytes.count).toBe(rowCount);
      expect(fromBytes.toString(), `${key}/${change}`).toBe(fromText.toString());
    }
  });

  it('decodes NULL, empty, doubled quotes and a trailing empty field', () => {
    expect(decodeFields(Buffer.from('1,,"",""""\n'), 10)).toEqual(['1', null, '', '"']);
    expect(decodeFields(Buffer.from('1,a,\n'), 10)).toEqual(['1', 'a', null]);
    expect(decodeFields(Buffer.from('"a\nb","c,d"\n'), 10)).toEqual(['a\nb', 'c,d']);
    expect(decodeFields(Buffer.from('\n'), 10)).toEqual([null]);
    expect(decodeFields(Buffer.from('x,y,z\n'), 2)).toEqual(['x', 'y']);
    expect(() => decodeFields(Buffer.from('1,"a"b\n'), 10)).toThrow(WharfError);
  });

  it('refuses output that ends inside a record', async () => {
    const cut = copyOutput.subarray(0, copyOutput.length - 3);
    await expect(split(chunked(cut, () => 100))).rejects.toBeInstanceOf(WharfError);
  });

  it('measures splitting throughput on click-like rows (figure reported, not asserted)', async () => {
    const line = Buffer.from(
      '17,0190b3e4-7c2d-7b4a-9f3e-1a2b3c4d5e6f,2026-11-23 09:20:00.123456+00,123,45,,2026-11-23 09:19:59.5+00,' +
        '203.0.113.7,"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36, like Gecko",https://example.com/a?b=c,DE,desktop,t\n',
    );
    const chunk = Buffer.concat(Array.from({ length: Math.floor(65536 / line.length) }, () => line));
    const chunks = Array.from({ length: 1600 }, () => chunk); // ~100 MB
    const started = process.hrtime.bigint();
    let records = 0;
    for await (const batch of readCopyRecords(
      (async function* () {
        yield* chunks;
      })(),
    )) {
      for (const r of batch) if (r.account.length > 0) records++;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const mb = (chunk.length * chunks.length) / 1e6;
    console.log(
      `readCopyRecords: ${records} records, ${mb.toFixed(0)} MB in ${seconds.toFixed(2)} s = ${(mb / seconds).toFixed(0)} MB/s, ${(records / seconds / 1e6).toFixed(2)} M records/s`,
    );
    expect(records).toBe(chunks.length * Math.floor(65536 / line.length));
  });
});
