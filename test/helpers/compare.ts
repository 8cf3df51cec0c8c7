import type pg from 'pg';
import type { Stream } from '../../catalog/types.js';
import { quotePg as q } from '../../loaders/postgres/quote.js';

/** A PostgreSQL expression printing a column canonically (UTC ISO µs timestamps, plain text otherwise). */
export function canonicalPg(stream: Stream, name: string): string {
  const c = stream.columns.find((x) => x.name === name)!;
  if (c.type === 'timestamptz')
    return `to_char(${q(name)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
  if (c.type === 'date') return `to_char(${q(name)}, 'YYYY-MM-DD')`;
  return `${q(name)}::text`;
}

/** md5 over every column of every row of an account's stream, in primary key order. */
export async function tableChecksum(
  db: pg.Pool | pg.ClientBase,
  schema: string,
  stream: Stream,
  account?: number | string,
): Promise<{ rows: number; md5: string | null }> {
  // quote_literal keeps NULL and '' apart
  const cols = stream.columns
    .map((c) => `coalesce(quote_literal(${canonicalPg(stream, c.name)}), 'NULL')`)
    .join(', ');
  const where = account === undefined ? '' : ` where ${q(stream.tenantColumn)} = ${Number(account)}`;
  const { rows } = await db.query<{ n: string; h: string | null }>(
    `select count(*) as n, md5(string_agg(concat_ws('|', ${cols}), E'\\n' order by ${stream.primaryKey.map(q).join(', ')})) as h
       from ${q(schema)}.${q(stream.name)}${where}`,
  );
  return { rows: Number(rows[0]!.n), md5: rows[0]!.h };
}
