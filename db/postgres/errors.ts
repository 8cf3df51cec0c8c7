import { classifyUnknown, type ErrorKind } from '../../core/errors.js';

/**
 * SQLSTATE classes that a retry can fix: connection exceptions (08), serialization failures and deadlocks
 * (40001, 40P01), insufficient resources (53), a statement canceled (57014: `statement_timeout`, or a cancel
 * from outside), operator intervention such as a shutdown or a restart (57P01–57P04), lock not available and
 * lock timeouts (55P03), system errors (58), internal errors (XX000).
 */
const TRANSIENT_SQLSTATE = [
  /^08/,
  /^40001$/,
  /^40P01$/,
  /^53/,
  /^57014$/,
  /^57P0[1-4]$/,
  /^55P03$/,
  /^58/,
  /^XX000$/,
];

/**
 * The errors that ended a watched connection (see `watchClient`): node-postgres hands the same error object to
 * the client's `error` event and to every query it fails, so a query's error is known to be a lost connection
 * by identity, whatever its message (`Connection terminated unexpectedly` has no code).
 */
const connectionLosses = new WeakSet<object>();

/** Remembers `error` as the end of a connection (called from the client's `error` event). */
export function noteConnectionLoss(error: unknown): void {
  if (error !== null && typeof error === 'object') connectionLosses.add(error);
}

/** True when `error` ended a watched connection. */
export function isConnectionLoss(error: unknown): boolean {
  return error !== null && typeof error === 'object' && connectionLosses.has(error);
}

/**
 * Transient or terminal from a PostgreSQL error's SQLSTATE, else from its Node network code; an error that ended
 * a watched connection is transient.
 */
export function classifyPgError(error: unknown): ErrorKind {
  if (isConnectionLoss(error)) return 'transient';
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    return TRANSIENT_SQLSTATE.some((re) => re.test(code)) ? 'transient' : 'terminal';
  }
  return classifyUnknown(error);
}
