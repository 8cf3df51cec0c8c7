import type pg from 'pg';
import type { Stream } from '../catalog/types.js';
import { quotePg } from '../db/postgres/quote.js';

/**
 * How a stream is read: `account` sorts by (tenant, primary key) in the source, so each account's rows come
 * together and are written one part after the other; `table` reads in the order the table is stored (no sort)
 * and writes each account's part on its own, which only pays for a few accounts.
 */
export type ReadOrder = 'account' | 'table';

/** A window whose rows of a stream belong to at most this many accounts is read in table order. */
export const TABLE_ORDER_MAX_ACCOUNTS = 16;

/**
 * The accounts with rows of `stream` in `[start, end)`, counted in the source (one pass over the window's rows,
 * hashed by tenant: a few percent of the read itself). The read order follows from it, so that the same window
 * is always read the same way: exporting it again (a torn export, a fresh store) gives the same bytes.
 */
export async function countAccounts(
  client: pg.ClientBase,
  stream: Stream,
  sourceSchema: string,
  start: Date,
  end: Date,
): Promise<number> {
  const change = quotePg(stream.changeColumn);
  const { rows } = await client.query<{ accounts: number }>(
    `select count(*)::int as accounts from (select ${quotePg(stream.tenantColumn)} from ${quotePg(sourceSchema)}.${quotePg(stream.name)}
      where ${change} >= $1 and ${change} < $2 group by 1) as window_accounts`,
    [start, end],
  );
  return rows[0]?.accounts ?? 0;
}

/** The read order for a window of a stream with `accounts` accounts. */
export function readOrderFor(accounts: number): ReadOrder {
  return accounts <= TABLE_ORDER_MAX_ACCOUNTS ? 'table' : 'account';
}

/**
 * Runs `read` (one COPY) with the settings that make a read in table order repeatable: the rows come in the
 * order of their physical position, whatever the plan (a sequential or a bitmap heap scan; a plain index scan,
 * which returns them in index order, is turned off), without parallel workers (which interleave their rows by
 * chance) and without synchronized sequential scans (which may start mid-table). Transaction-local settings,
 * put back to the session's values afterwards.
 */
export async function inTableOrder<T>(client: pg.ClientBase, read: () => Promise<T>): Promise<T> {
  await client.query(
    `select set_config('max_parallel_workers_per_gather', '0', true), set_config('synchronize_seqscans', 'off', true),
            set_config('enable_indexscan', 'off', true)`,
  );
  const result = await read();
  // back to the session's own values (those of the connection, which Wharf never changes)
  await client.query(
    'select set_config(name, reset_val, true) from pg_settings where name = any($1::text[])',
    [['max_parallel_workers_per_gather', 'synchronize_seqscans', 'enable_indexscan']],
  );
  return result;
}
