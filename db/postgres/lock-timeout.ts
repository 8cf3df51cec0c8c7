import type pg from 'pg';
import { formatDuration } from '../../core/duration.js';
import { hasCode, WharfError } from '../../core/errors.js';

/** SQLSTATE `lock_not_available`: what a `lock_timeout` raises. */
export const LOCK_NOT_AVAILABLE = '55P03';

/** A session holding locks on tables of a schema. */
export interface SchemaLockHolder {
  readonly pid: number;
  readonly user: string | null;
  readonly state: string | null;
  /** Its current (or last) statement; null when this role may not see it. */
  readonly query: string | null;
  readonly tables: readonly string[];
}

/**
 * The other sessions holding locks on tables of `schema` right now (at most `limit`), those in a transaction
 * first and the oldest first: after a lock timeout, these are the sessions the load waited for. pg_locks is
 * readable by every role; another role's statement shows only with pg_read_all_stats (or as superuser).
 */
export async function schemaLockHolders(
  db: pg.ClientBase,
  schema: string,
  limit = 3,
): Promise<SchemaLockHolder[]> {
  const { rows } = await db.query<{
    pid: number;
    usename: string | null;
    state: string | null;
    query: string | null;
    tables: string[];
  }>(
    `select l.pid, a.usename, a.state,
            case when a.query is null or a.query like '<insufficient privilege>%' then null else a.query end as query,
            array_agg(distinct c.relname::text order by c.relname::text) as tables
       from pg_locks l
       join pg_class c on c.oid = l.relation
       join pg_namespace n on n.oid = c.relnamespace
       left join pg_stat_activity a on a.pid = l.pid
      where n.nspname = $1 and c.relkind in ('r', 'p', 'm', 'v', 'f') and l.granted and l.pid <> pg_backend_pid()
      group by l.pid, a.usename, a.state, a.query, a.xact_start
      order by a.xact_start nulls last, l.pid
      limit $2`,
    [schema, limit],
  );
  return rows.map((r) => ({ pid: r.pid, user: r.usename, state: r.state, query: r.query, tables: r.tables }));
}

/** One holder in a few words: `pid 4242 (analyst, idle in transaction, on clicks: "select count(*) …")`. */
function describe(h: SchemaLockHolder): string {
  const what = [h.user, h.state, `on ${h.tables.join(', ')}`].filter(Boolean).join(', ');
  const text = h.query?.replace(/\s+/g, ' ').trim();
  const query = text ? `: "${text.length > 120 ? `${text.slice(0, 117)}...` : text}"` : '';
  return `pid ${h.pid} (${what}${query})`;
}

/**
 * A lock timeout (55P03) as one transient line that names who held the locks, read from the warehouse after
 * the timeout (on `db`, another connection or the same one once its transaction is rolled back). Any other
 * error is returned as it is.
 */
export async function explainLockTimeout(
  error: unknown,
  db: pg.ClientBase | undefined,
  schema: string,
  lockTimeoutMs: number,
): Promise<unknown> {
  if (!hasCode(error, LOCK_NOT_AVAILABLE)) return error;
  if (error instanceof WharfError && error.code === LOCK_NOT_AVAILABLE) return error;
  let holders: SchemaLockHolder[] = [];
  try {
    if (db) holders = await schemaLockHolders(db, schema);
  } catch {
    // the holders are a help for the reader, not needed: the timeout is reported either way
  }
  const by = holders.length > 0 ? `, held by ${holders.map(describe).join(' and ')}` : '';
  return new WharfError(
    `waited ${formatDuration(lockTimeoutMs)} for a lock on schema ${schema} and gave up (lock_timeout)${by}`,
    {
      kind: 'transient',
      code: LOCK_NOT_AVAILABLE,
      cause: error,
      hint: 'the load is retried with backoff; end that session, or raise WHARF_LOCK_TIMEOUT',
    },
  );
}
