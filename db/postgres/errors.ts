import { classifyUnknown, type ErrorKind } from '../../core/errors.js';

/**
 * SQLSTATE classes that a retry can fix: connection exceptions (08), serialization failures and deadlocks
 * (40001, 40P01), insufficient resources (53), operator intervention such as a shutdown or a restart
 * (57P01–57P04), lock not available and lock timeouts (55P03), system errors (58), internal errors (XX000).
 */
const TRANSIENT_SQLSTATE = [/^08/, /^40001$/, /^40P01$/, /^53/, /^57P0[1-4]$/, /^55P03$/, /^58/, /^XX000$/];

/** Transient or terminal from a PostgreSQL error's SQLSTATE, else from its Node network code. */
export function classifyPgError(error: unknown): ErrorKind {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    return TRANSIENT_SQLSTATE.some((re) => re.test(code)) ? 'transient' : 'terminal';
  }
  return classifyUnknown(error);
}
