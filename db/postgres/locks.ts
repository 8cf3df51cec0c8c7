import { hostname } from 'node:os';
import type pg from 'pg';
import { connectClient } from './connection.js';

/** A held session-level advisory lock; `release` ends its session. */
export interface AdvisoryLock {
  release(): Promise<void>;
}

/** Who holds an advisory lock: the session on the database and the process behind it. */
export interface LockHolder {
  /** The backend pid on the database server. */
  readonly pid: number;
  /** The holder's `application_name`: Wharf's lock sessions name their host and process id in it. */
  readonly applicationName: string;
  readonly since: Date | null;
}

/**
 * `application_name` for a lock session: `<name> <host>:<pid>`, so that whoever finds the lock taken can say
 * which process holds it (at most 63 bytes, PostgreSQL's limit).
 */
export function lockSessionName(name: string): string {
  return Buffer.from(`${name} ${hostname()}:${process.pid}`).subarray(0, 63).toString('utf8');
}

/**
 * Tries a session-level advisory lock (`pg_try_advisory_lock(hashtext(key))`) on a connection of its own,
 * so that the lock goes as soon as this process dies. Undefined when another session holds it.
 */
export async function tryAdvisoryLock(
  connectionString: string,
  key: string,
  applicationName = 'wharf-lock',
): Promise<AdvisoryLock | undefined> {
  // a lost connection also loses the lock: the work under it fails on its own connections
  const client = await connectClient(
    { connectionString, application_name: lockSessionName(applicationName) },
    'control',
  );
  try {
    const got = await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [key]);
    if (got.rows[0]!.ok) return { release: () => client.end().catch(() => {}) };
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  await client.end().catch(() => {});
  return undefined;
}

/**
 * The session holding the advisory lock `hashtext(key)` (as `pg_try_advisory_lock(hashtext(key))` takes it),
 * or undefined when nobody holds it now. pg_locks splits the bigint key into `classid` (high 32 bits) and
 * `objid` (low 32 bits).
 */
export async function advisoryLockHolder(
  db: pg.Pool | pg.ClientBase,
  key: string,
): Promise<LockHolder | undefined> {
  const { rows } = await db.query<{ pid: number; app: string | null; since: Date | null }>(
    `select l.pid, a.application_name as app, a.backend_start as since
       from pg_locks l left join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and l.granted and l.objsubid = 1
        and l.database = (select oid from pg_database where datname = current_database())
        and ((l.classid::bigint << 32) | l.objid::bigint) = hashtext($1)::bigint
      limit 1`,
    [key],
  );
  const r = rows[0];
  return r ? { pid: r.pid, applicationName: r.app ?? '', since: r.since } : undefined;
}

/** "process wharf-load-lock host:4242 (session pid 777 since …)", for the line that reports a skip. */
export function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'another process (it has just finished)';
  const name = holder.applicationName ? `process ${holder.applicationName}` : 'another process';
  const since = holder.since ? ` since ${holder.since.toISOString()}` : '';
  return `${name} (database session pid ${holder.pid}${since})`;
}

/**
 * Takes a session-level advisory lock on `client` (waiting, or trying once with `skip`), runs `work` under
 * it and releases it. Returns undefined, without running `work`, when `skip` finds it held.
 */
export async function withAdvisoryLock<T>(
  client: pg.ClientBase,
  key: string,
  mode: 'wait' | 'skip',
  work: () => Promise<T>,
): Promise<T | undefined> {
  if (mode === 'skip') {
    const r = await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [key]);
    if (!r.rows[0]!.ok) return undefined;
  } else {
    await client.query('select pg_advisory_lock(hashtext($1))', [key]);
  }
  try {
    return await work();
  } finally {
    await client.query('select pg_advisory_unlock(hashtext($1))', [key]).catch(() => {});
  }
}
