import pg from 'pg';

/** A held session-level advisory lock; `release` ends its session. */
export interface AdvisoryLock {
  release(): Promise<void>;
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
  const client = new pg.Client({ connectionString, application_name: applicationName });
  // a lost connection also loses the lock: the work under it fails on its own connections
  client.on('error', () => {});
  try {
    await client.connect();
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
