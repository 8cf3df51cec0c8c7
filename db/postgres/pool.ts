import pg from 'pg';
import { WharfError } from '../../core/errors.js';
import { redactUrls } from '../../core/secret.js';
import { watchPool } from './connection.js';
import { classifyPgError } from './errors.js';
import { lockSessionName } from './locks.js';

/** A URL without its password, for messages. */
export function describePgUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return redactUrls(url);
  }
}

/**
 * A pool whose first connection is checked at once, so an unreachable database is one clear error
 * (`role` names the database in it: "source", "control", "warehouse"). Every client it connects is watched
 * (`watchPool`): a server that restarts fails the queries under way as transient errors, never the process.
 */
export async function openPool(url: string, role: string, flagHint: string, max = 8): Promise<pg.Pool> {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    // `wharf <host>:<pid>`: a lock held on one of its sessions names the process that holds it
    application_name: lockSessionName('wharf'),
    connectionTimeoutMillis: 15_000,
  });
  watchPool(pool, role);
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => {});
    const code = (error as { code?: string }).code;
    // a name that does not resolve yet (DNS during a restart) is worth another try too
    const transient = classifyPgError(error) === 'transient' || code === 'ENOTFOUND';
    throw new WharfError(
      `cannot connect to the ${role} database at ${describePgUrl(url)}: ${redactUrls((error as Error).message || String(code))}`,
      {
        kind: transient ? 'transient' : 'terminal',
        cause: error,
        hint: `check ${flagHint}`,
        ...(code ? { code } : {}),
      },
    );
  }
  return pool;
}
