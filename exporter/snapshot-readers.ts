import type pg from 'pg';
import { literalPg } from '../db/postgres/quote.js';

/**
 * Begins the read-only, repeatable-read transaction a window is read in, with the session settings the file
 * formats rely on (UTC, ISO dates, exact floats). With `snapshot` (an id from `pg_export_snapshot()`), the
 * transaction sees exactly the rows of the transaction that exported it.
 */
export async function beginSnapshot(client: pg.ClientBase, snapshot?: string): Promise<void> {
  // SET TRANSACTION SNAPSHOT takes no parameter and must come before any query of the transaction
  await client.query(
    snapshot === undefined
      ? 'begin isolation level repeatable read read only'
      : `begin isolation level repeatable read read only; set transaction snapshot ${literalPg(snapshot)}`,
  );
  await client.query(
    "set local timezone = 'UTC'; set local datestyle = 'ISO, YMD'; set local extra_float_digits = 3; set local intervalstyle = 'iso_8601'",
  );
}

/** Connections of `pool` that can be taken without waiting for one to be released (never negative). */
export function spareConnections(pool: pg.Pool): number {
  const max = pool.options.max ?? 10;
  return Math.max(0, max - (pool.totalCount - pool.idleCount) - pool.waitingCount);
}

/**
 * Opens up to `count` more readers of `primary`'s transaction (begun with {@link beginSnapshot}): each a
 * connection of `pool` whose transaction imports `primary`'s snapshot, so that streams of one window can be read
 * side by side and still see the same rows. Takes only connections the pool has spare, so a small pool shared
 * with the control connection never waits on itself; fewer readers (or none) is fine. Release them with
 * {@link endReaders}.
 */
export async function joinSnapshot(
  pool: pg.Pool,
  primary: pg.ClientBase,
  count: number,
): Promise<pg.PoolClient[]> {
  const wanted = Math.min(count, spareConnections(pool));
  if (wanted <= 0) return [];
  const { rows } = await primary.query<{ id: string }>('select pg_export_snapshot() as id');
  const snapshot = rows[0]!.id;
  const readers: pg.PoolClient[] = [];
  try {
    for (let i = 0; i < wanted; i++) {
      const reader = await pool.connect();
      readers.push(reader);
      await beginSnapshot(reader, snapshot);
    }
  } catch (error) {
    await endReaders(readers, true);
    throw error;
  }
  return readers;
}

/** Ends the readers' transactions and gives them back; after a failure they are closed instead of reused. */
export async function endReaders(readers: readonly pg.PoolClient[], failed: boolean): Promise<void> {
  for (const reader of readers) {
    let broken = failed;
    if (!broken) await reader.query('commit').catch(() => (broken = true));
    reader.release(broken);
  }
}
