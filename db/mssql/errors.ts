import { causes, classifyUnknown, type ErrorKind, TRANSIENT_NODE_CODES } from '../../core/errors.js';

/** Error numbers a retry can fix: deadlock, lock timeout, Azure SQL throttling / failover / reconfiguration, broken links. */
export const TRANSIENT_ERROR_NUMBERS: ReadonlySet<number> = new Set([
  -2, // client timeout
  64, // connection broken by the network
  233, // no process at the other end of the pipe
  1205, // chosen as deadlock victim
  1222, // lock request timeout
  4060, // cannot open database (Azure failover)
  4221, // login to read-secondary failed during replica reconfiguration
  10053, // connection aborted by the host
  10054, // connection reset by peer
  10060, // connection attempt timed out
  10928, // resource limit reached
  10929, // minimum guarantee not available
  40143, // service encountered an error processing the request
  40197, // service error processing the request (failover)
  40501, // service busy
  40613, // database unavailable
  49918, // not enough resources to process the request
  49919, // too many create/update operations in progress
  49920, // too many operations in progress
]);

/** Error numbers that name a problem a retry cannot fix (anything not transient is terminal; these are the usual ones). */
export const TERMINAL_ERROR_NUMBERS: ReadonlySet<number> = new Set([
  18456, // login failed
  229, // permission denied on an object
  230, // permission denied on a column
  262, // permission denied in the database (e.g. CREATE TABLE)
  208, // invalid object name
  207, // invalid column name
  2627, // duplicate key (unique constraint)
  2601, // duplicate key (unique index)
  547, // foreign key / check constraint conflict
  8152, // string or binary data would be truncated
  2628, // string or binary data would be truncated (column named)
  4815, // bulk load: data would be truncated
  515, // NULL into a NOT NULL column
  242, // date conversion out of range
  241, // date conversion failed
]);

/** Driver codes (tedious / mssql) that mean the network or the server's availability failed, not the request. */
/** tedious / mssql connection codes, plus Node's own network codes. */
const TRANSIENT_DRIVER_CODES: ReadonlySet<string> = new Set([
  'ESOCKET',
  'ETIMEOUT',
  'ECONNCLOSED',
  'ENOCONN',
  'ENOTOPEN',
  'EINSTLOOKUP',
  ...TRANSIENT_NODE_CODES,
]);

/** TLS verification failures: retrying cannot make a certificate valid. */
const TLS_CODES = /^(?:ERR_TLS_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_)/;

/**
 * Transient or terminal, from SQL Server error numbers (`error.number`), then tedious' own `isTransient`
 * flag, then driver / Node codes (`ESOCKET`, `ETIMEOUT`, …). Never from message text.
 */
export function classifyMssqlError(error: unknown): ErrorKind {
  const chain = causes(error);
  const codes = chain
    .map((e) => (e as { code?: unknown }).code)
    .filter((c): c is string => typeof c === 'string');
  if (codes.some((c) => TLS_CODES.test(c))) return 'terminal';
  const numbers = chain
    .map((e) => (e as { number?: unknown }).number)
    .filter((n): n is number => typeof n === 'number' && Number.isInteger(n));
  if (numbers.some((n) => TRANSIENT_ERROR_NUMBERS.has(n))) return 'transient';
  if (numbers.length > 0) return 'terminal';
  if (chain.some((e) => (e as { isTransient?: unknown }).isTransient === true)) return 'transient';
  if (codes.includes('ELOGIN')) return 'terminal';
  if (codes.some((c) => TRANSIENT_DRIVER_CODES.has(c))) return 'transient';
  return classifyUnknown(error);
}
