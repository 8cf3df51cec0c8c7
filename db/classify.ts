import { causes, classifyUnknown, type ErrorKind, WharfError } from '../core/errors.js';
import { classifyMssqlError } from './mssql/errors.js';
import { classifyPgError } from './postgres/errors.js';

/**
 * The kind of any error for retrying: transient when the error or anything it wraps is transient (a
 * `WharfError` of kind transient, a transient SQLSTATE such as 08xxx, 40001, 40P01, 57P01, a transient SQL
 * Server error number, or a Node network code such as ECONNRESET); terminal otherwise. Never looks at
 * message text.
 */
export function classifyError(error: unknown): ErrorKind {
  for (const e of causes(error)) {
    if (e instanceof WharfError && e.kind === 'transient') return 'transient';
    if (classifyPgError(e) === 'transient' || classifyUnknown(e) === 'transient') return 'transient';
    if ('number' in e && classifyMssqlError(e) === 'transient') return 'transient';
  }
  return 'terminal';
}
