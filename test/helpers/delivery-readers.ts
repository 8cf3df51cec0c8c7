import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import type pg from 'pg';
import type { Stream } from '../../catalog/types.js';
import { PRESERVE_UPDATED_AT_SETTING } from '../../source/source-schema.js';
import { csvGzRows, ndjsonGzRows } from './delivery.js';

/** One row as text per column (null for SQL NULL), in the form a format's reader gives it back. */
export type TextRow = (string | null)[];

/** An unscaled DECIMAL at `scale` as PostgreSQL prints numeric(…, scale). */
function decimalText(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/**
 * Reads a delivered object with an independent reader (csv-parse after gunzip, JSON.parse per line, hyparquet) and
 * renders every value as text: csv as PostgreSQL printed it; json booleans as t/f; parquet timestamps as epoch
 * microseconds, dates as day numbers, decimals from their unscaled integers.
 */
export async function readDelivered(format: string, stream: Stream, bytes: Buffer): Promise<TextRow[]> {
  const names = stream.columns.map((c) => c.name);
  if (format === 'csv') {
    return csvGzRows(bytes).map((row) => {
      if (Object.keys(row).join(',') !== names.join(','))
        throw new Error(`csv header of ${stream.name} differs`);
      return names.map((n) => row[n] ?? null);
    });
  }
  if (format === 'json') {
    return ndjsonGzRows(bytes).map((row) => {
      if (Object.keys(row).join(',') !== names.join(','))
        throw new Error(`json keys of ${stream.name} differ`);
      return stream.columns.map((c) => {
        const value = row[c.name];
        if (value === null) return null;
        if (c.type === 'boolean') {
          if (typeof value !== 'boolean') throw new Error(`${c.name} is not a JSON boolean`);
          return value ? 't' : 'f';
        }
        if (typeof value !== 'string')
          throw new Error(`${c.name} is not a JSON string: ${JSON.stringify(value)}`);
        return value;
      });
    });
  }
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const metadata = parquetMetadata(file);
  const decoder = new TextDecoder();
  const rows = await parquetReadObjects({
    file,
    // the unscaled DECIMAL integers themselves (hyparquet would turn them into floats)
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
    stream.columns.map((c) => {
      const value = row[c.name];
      if (value === null || value === undefined) return null;
      switch (c.type) {
        case 'numeric':
          return decimalText(value as bigint, c.scale ?? 0);
        case 'boolean':
          return value ? 't' : 'f';
        default:
          return typeof value === 'bigint' || typeof value === 'number' ? String(value) : (value as string);
      }
    }),
  );
}

/**
 * The account's rows of a stream as the source holds them, each value computed by PostgreSQL in the form
 * `readDelivered` gives it for `format` (epoch microseconds and day numbers for parquet, ISO-8601 for json).
 */
export async function sourceRows(
  client: pg.ClientBase,
  stream: Stream,
  account: string,
  format: string,
): Promise<TextRow[]> {
  const exprs = stream.columns.map((c) => {
    const q = `"${c.name}"`;
    if (format === 'parquet' && c.type === 'timestamptz')
      return `((extract(epoch from ${q}) * 1000000)::bigint)::text`;
    if (format === 'parquet' && c.type === 'date') return `(${q} - date '1970-01-01')::text`;
    if (format === 'json' && c.type === 'timestamptz') {
      return `to_char(${q} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
    }
    return q;
  });
  await client.query("set timezone = 'UTC'; set datestyle = 'ISO, YMD'");
  // PostgreSQL's text output of every value, no client-side parsing (char(n) keeps its padding)
  const result = await client.query({
    text: `select ${exprs.join(', ')} from "${stream.name}" where "${stream.tenantColumn}" = $1`,
    values: [account],
    rowMode: 'array',
    types: { getTypeParser: () => (value: string) => value },
  });
  return result.rows as TextRow[];
}

/** Rows in a stable order (by their text), to compare multisets. */
export function sorted(rows: readonly TextRow[]): TextRow[] {
  return [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

/**
 * Rows with the awkward values for `account` (which the seed made): NULL beside '', `\N` as text, characters
 * beyond the BMP, quotes, commas and line breaks, the largest decimals, microsecond and far timestamps, far dates.
 * Their `updated_at` is `at` and a few microseconds after.
 */
export async function insertAwkwardRows(client: pg.ClientBase, account: number, at: Date): Promise<void> {
  const one = async (sql: string) => (await client.query<{ id: string }>(sql, [account])).rows[0]!.id;
  const affiliate = await one(
    'select id::text as id from affiliates where account_id = $1 order by id limit 1',
  );
  const programme = await one(
    'select id::text as id from programmes where account_id = $1 order by id limit 1',
  );
  const link = await one('select id::text as id from links where account_id = $1 order by id limit 1');
  const base = account * 1_000_000_000_000;
  const stamp = (i: number) =>
    new Date(at.getTime() + i).toISOString().replace('Z', `${String(i % 1000).padStart(3, '0')}Z`);
  const texts = [
    null,
    '',
    '\\N',
    'NULL',
    '😀 𝄞 Zoë "quoted", comma\r\nnew line',
    '""',
    ',',
    ' padded ',
    'x'.repeat(5000),
  ];
  await client.query('begin');
  try {
    await client.query(`select set_config($1, 'on', true)`, [PRESERVE_UPDATED_AT_SETTING]);
    for (let i = 0; i < texts.length; i++) {
      const t = texts[i]!;
      await client.query(
        `insert into affiliates (id, account_id, updated_at, name, email, country, status, created_at, deleted_at)
         values ($1, $2, $3, $4, $5, $6, 'active', '2026-11-23 09:20:00.123456+00', $7)`,
        [
          base + i,
          account,
          stamp(i),
          t ?? 'named',
          t,
          i % 2 === 0 ? null : '🇫',
          i % 3 === 0 ? null : stamp(i + 7),
        ],
      );
      await client.query(
        `insert into links (id, account_id, updated_at, programme_id, affiliate_id, traffic_source_id, url, slug, metadata, created_at)
         values ($1, $2, $3, $4, $5, null, $6, $7, $8, '1969-12-31 23:59:59.999999+00')`,
        [
          base + i,
          account,
          stamp(i),
          programme,
          affiliate,
          `https://example.com/?q="a,b"\n${t ?? ''}`,
          `awkward-${i}`,
          [
            null,
            'null',
            '"null"',
            '{}',
            '{"a": "ü😀𝄞", "n": 12345678901234567890.123456789, "z": null}',
            '[]',
          ][i % 6],
        ],
      );
    }
    const amounts = ['99999999999999.9999', '-99999999999999.9999', '0.0001', '-0.0001', '0', '12.5'];
    const times = [
      '1969-12-31 23:59:59.999999+00',
      '0001-01-01 00:00:00+00',
      '9999-12-31 23:59:59.999999+00',
      '2026-11-23 09:20:00.123456+00',
      '1970-01-01 00:00:00.000001+00',
      '2000-02-29 23:59:59.5+00',
    ];
    for (let i = 0; i < amounts.length; i++) {
      await client.query(
        `insert into conversions (account_id, updated_at, click_id, link_id, affiliate_id, programme_id, occurred_at,
           order_ref, amount, commission, currency, status)
         values ($1, $2, null, $3, $4, $5, $6, $7, $8, $9, 'EUR', 'approved')`,
        [
          account,
          stamp(100 + i),
          link,
          affiliate,
          programme,
          times[i],
          texts[i % texts.length],
          amounts[i],
          amounts[(i + 1) % amounts.length],
        ],
      );
      await client.query(
        `insert into payouts (id, account_id, updated_at, affiliate_id, period_start, period_end, amount, currency, status,
           paid_at, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, 'EUR', 'paid', $8, $9)`,
        [
          base + i,
          account,
          stamp(200 + i),
          affiliate,
          ['0001-01-01', '1969-12-31', '2000-02-29'][i % 3],
          ['9999-12-31', '1970-01-01', '2026-11-23'][i % 3],
          amounts[i],
          i % 2 === 0 ? null : times[i],
          times[(i + 2) % times.length],
        ],
      );
      await client.query(
        `insert into clicks (account_id, updated_at, link_id, affiliate_id, occurred_at, ip, user_agent, referrer,
           country, device, is_unique)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          account,
          stamp(300 + i),
          link,
          affiliate,
          times[i],
          i % 2 ? null : '::1',
          texts[i],
          texts[i + 2],
          i % 2 ? null : '',
          texts[i + 3],
          i % 2 === 0,
        ],
      );
    }
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  }
}
