/**
 * The awkward values, as far as their landing in SQL Server can be checked without a server: a real csv.gz
 * window file (PostgreSQL COPY, as the exporter writes it) is loaded into a PostgreSQL warehouse, and the same
 * file is encoded by the SQL Server bulk encoder. The bulk values, read through the CONVERT styles the MERGE
 * applies (modelled as text), must give the canonical text PostgreSQL stores. What a live server adds (its
 * CONVERT, NVARCHAR storage, the TDS bulk transfer) is covered by test/mssql-live.test.ts and the conformance suite.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Catalog, Stream } from '../catalog/types.js';
import { decodeFile, stageValue } from '../loaders/mssql/bulk-rows.js';
import { convertFromStaging, stagingLength } from '../loaders/mssql/mssql-dialect.js';
import { PostgresWarehouse } from '../loaders/postgres/postgres-warehouse.js';
import type { WindowFile } from '../loaders/warehouse.js';
import { type CanonicalValue, canonicalFromStaged, canonicalRowsPg } from './helpers/compare.js';
import { createDatabase } from './helpers/databases.js';

const stream: Stream = {
  name: 'awkward',
  columns: [
    { name: 'account_id', type: 'bigint', nullable: false },
    { name: 'id', type: 'bigint', nullable: false },
    { name: 'updated_at', type: 'timestamptz', nullable: false },
    { name: 'label', type: 'text', nullable: true, length: 200 },
    { name: 'note', type: 'text', nullable: true },
    { name: 'code', type: 'char', nullable: true, length: 3 },
    { name: 'amount', type: 'numeric', nullable: true, precision: 18, scale: 4 },
    { name: 'happened_at', type: 'timestamptz', nullable: true },
    { name: 'day', type: 'date', nullable: true },
    { name: 'flag', type: 'boolean', nullable: true },
    { name: 'key', type: 'uuid', nullable: true },
    { name: 'doc', type: 'jsonb', nullable: true },
  ],
  primaryKey: ['id'],
  changeColumn: 'updated_at',
  tenantColumn: 'account_id',
  parents: [],
  since: 1,
};
const catalog: Catalog = { name: 'awkward', version: 1, streams: [stream] };

// account_id, id, updated_at, label, note, code, amount, happened_at, day, flag, key, doc
const rows: (string | null)[][] = [
  [
    '1',
    '1',
    '2026-11-23 09:20:00.123456+00',
    '𝄞 music, 😀 "emoji" ü',
    '',
    'EUR',
    '99999999999999.9999',
    '2026-11-23 09:20:00.000001+00',
    '2026-11-23',
    't',
    'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
    '{"k": ["v", 1.50, "🚀"]}',
  ],
  [
    '1',
    '2',
    '2026-11-23 09:20:00.999999+00',
    '',
    null,
    'ab',
    '-99999999999999.9999',
    '0001-01-01 00:00:00+00',
    '0001-01-01',
    'f',
    null,
    '[]',
  ],
  [
    '1',
    '3',
    '2026-11-23 11:20:00.5+02',
    null,
    'NULL',
    null,
    '0.0001',
    '9999-12-31 23:59:59.999999+00',
    '9999-12-31',
    null,
    'b1ffcd00-0d1c-4ef8-bb6d-6bb9bd380a22',
    null,
  ],
  [
    '1',
    '4',
    '2026-11-23 09:20:00+00',
    'line\nbreak, "quote", \\N',
    '""',
    ' ',
    '-0.0001',
    null,
    null,
    't',
    null,
    '{"":""}',
  ],
  [
    '1',
    '5',
    '2026-11-23 09:20:00.000010+00',
    '\u{10FFFF}\u{1F600}'.repeat(50),
    'x'.repeat(10_000),
    'ü',
    '0',
    '2000-02-29 23:59:59.5-05:30',
    '2000-02-29',
    'f',
    '00000000-0000-0000-0000-000000000000',
    '{"a":null}',
  ],
];
/**
 * PostgreSQL char(3) counts characters and pads with spaces: COPY prints '𝄞  ' (4 UTF-16 code units), which the
 * encoder stages without the pad spaces, so it fits NCHAR(3) (which pads again).
 */
const tooWideForNchar = [
  '1',
  '6',
  '2026-11-23 09:20:00+00',
  null,
  null,
  '𝄞',
  null,
  null,
  null,
  null,
  null,
  null,
];

let sourceUrl: string;
let warehouseUrl: string;
let file: WindowFile;

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_equiv_src');
  warehouseUrl = await createDatabase('wharf_equiv_wh');
  const source = new pg.Client({ connectionString: sourceUrl });
  await source.connect();
  try {
    await source.query(
      `create table awkward (account_id bigint not null, id bigint primary key, updated_at timestamptz not null, label varchar(200), note text, code char(3), amount numeric(18,4), happened_at timestamptz, day date, flag boolean, key uuid, doc jsonb)`,
    );
    for (const r of [...rows, tooWideForNchar]) {
      await source.query(`insert into awkward values (${r.map((_, i) => `$${i + 1}`).join(', ')})`, r);
    }
    // as the exporter reads: a UTC session, ISO dates, CSV with a header line, gzip
    await source.query("set timezone = 'UTC'; set datestyle = 'ISO, YMD'");
    const chunks: Buffer[] = [];
    await pipeline(
      source.query(copyTo('copy (select * from awkward order by id) to stdout (format csv, header true)')),
      createGzip(),
      async (gz: AsyncIterable<Buffer>) => {
        for await (const c of gz) chunks.push(c);
      },
    );
    const body = Buffer.concat(chunks);
    file = {
      windowId: '20261123T092000Z_20261123T092100Z_r1',
      key: 'csv/awkward/awkward.csv.gz',
      stream: stream.name,
      rows: rows.length + 1,
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      columns: stream.columns.map((c) => c.name),
      open: async () => Readable.from([body]),
    };
  } finally {
    await source.end();
  }
});

async function sourceCanonical(): Promise<CanonicalValue[][]> {
  const pool = new pg.Pool({ connectionString: sourceUrl, max: 1 });
  try {
    return await canonicalRowsPg(pool, 'public', stream);
  } finally {
    await pool.end();
  }
}

describe('awkward values land identically in PostgreSQL and (as encoded) in SQL Server', () => {
  let pgValues: CanonicalValue[][];

  beforeAll(async () => {
    const warehouse = new PostgresWarehouse({ client: { connectionString: warehouseUrl }, schema: 'wh' });
    try {
      await warehouse.migrate(catalog, [stream.name]);
      const tx = await warehouse.begin();
      await tx.stage(stream, [file]);
      await tx.merge(stream);
      await tx.commit();
    } finally {
      await warehouse.close();
    }
    const pool = new pg.Pool({ connectionString: warehouseUrl, max: 1 });
    try {
      pgValues = await canonicalRowsPg(pool, 'wh', stream);
    } finally {
      await pool.end();
    }
  });

  it('PostgreSQL (a real load of the COPY file) holds exactly the source values', async () => {
    const byId = (a: CanonicalValue[], b: CanonicalValue[]) => Number(a[1]) - Number(b[1]);
    expect([...pgValues].sort(byId)).toEqual((await sourceCanonical()).sort(byId));
    expect(pgValues).toHaveLength(rows.length + 1);
  });

  it("a char(3) holding one character beyond the BMP (PostgreSQL prints it padded, '𝄞  ') is staged without its pad spaces and fits NCHAR(3)", async () => {
    const quarantined = [];
    for await (const row of decodeFile(stream, file)) if (!row.ok) quarantined.push(row);
    expect(quarantined).toEqual([]);
    expect(stageValue(stream.columns.find((c) => c.name === 'code')!, '𝄞  ')).toEqual(
      stageValue(stream.columns.find((c) => c.name === 'code')!, '𝄞'),
    );
    expect(pgValues.find((r) => r[1] === '6')![5]).toBe('𝄞');
  });

  it(
    'verified without a server: the bulk encoder accepts every other awkward row, each value fits its NVARCHAR staging column, ' +
      'and read through the MERGE CONVERT styles (126, 23, DECIMAL(18,4), BIT, UNIQUEIDENTIFIER, NCHAR) as text it equals PostgreSQL value by value; ' +
      "NOT verified without a server: SQL Server's own CONVERT, NVARCHAR storage of surrogate pairs, and the TDS bulk transfer",
    async () => {
      const encoded: CanonicalValue[][] = [];
      for await (const row of decodeFile(stream, file)) {
        if (!row.ok) {
          expect(row.primaryKey).toBe('6');
          continue;
        }
        expect(row.values.at(-1)).toBe(file.windowId);
        const values = row.values.slice(0, stream.columns.length);
        stream.columns.forEach((c, i) => {
          const v = values[i] ?? null;
          const length = stagingLength(c);
          // NVARCHAR(n) counts UTF-16 code units, as JS string length does
          if (v !== null && length !== 'MAX') expect(v.length, c.name).toBeLessThanOrEqual(length);
        });
        encoded.push(values.map((v, i) => canonicalFromStaged(stream.columns[i]!, v ?? null)));
      }
      const byId = (a: CanonicalValue[], b: CanonicalValue[]) => Number(a[1]) - Number(b[1]);
      const wh = [...pgValues].sort(byId);
      encoded.sort(byId);
      expect(encoded).toHaveLength(wh.length);
      for (let r = 0; r < wh.length; r++) {
        stream.columns.forEach((c, i) => {
          expect(encoded[r]![i], `row ${wh[r]![1]} column ${c.name}`).toStrictEqual(wh[r]![i]);
        });
      }
    },
  );

  it('the styles modelled above are the ones the MERGE applies', () => {
    const convert = Object.fromEntries(stream.columns.map((c) => [c.name, convertFromStaging(c)]));
    expect(convert).toEqual({
      account_id: 'CONVERT(BIGINT, [account_id])',
      id: 'CONVERT(BIGINT, [id])',
      updated_at: 'CONVERT(DATETIME2(6), [updated_at], 126)',
      label: '[label]',
      note: '[note]',
      code: 'CONVERT(NCHAR(3), [code])',
      amount: 'CONVERT(DECIMAL(18,4), [amount])',
      happened_at: 'CONVERT(DATETIME2(6), [happened_at], 126)',
      day: 'CONVERT(DATE, [day], 23)',
      flag: 'CONVERT(BIT, [flag])',
      key: 'CONVERT(UNIQUEIDENTIFIER, [key])',
      doc: '[doc]',
    });
  });

  it("NULL and '' stay apart, and the extremes survive, in both", () => {
    const row = (id: number) => pgValues.find((r) => r[1] === String(id))!;
    expect(row(1)[4]).toBe('');
    expect(row(2)[4]).toBeNull();
    expect(row(2)[3]).toBe('');
    expect(row(3)[3]).toBeNull();
    expect(row(3)[4]).toBe('NULL');
    expect(row(1)[6]).toBe('99999999999999.9999');
    expect(row(2)[6]).toBe('-99999999999999.9999');
    expect(row(1)[7]).toBe('2026-11-23T09:20:00.000001Z');
    expect(row(3)[2]).toBe('2026-11-23T09:20:00.500000Z');
    expect(row(3)[7]).toBe('9999-12-31T23:59:59.999999Z');
    expect(row(1)[3]).toBe('𝄞 music, 😀 "emoji" ü');
  });
});
