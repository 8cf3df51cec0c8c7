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

/** PostgreSQL: undefined table, column, schema; SQL Server: invalid object name, invalid column name. */
const MISSING_OBJECT_CODES = new Set(['42P01', '42703', '3F000']);
const MISSING_OBJECT_NUMBERS = new Set([208, 207]);

/**
 * True when the error (or anything it wraps) says a table, column or schema does not exist: a warehouse changed
 * by hand, or a schema not migrated yet. By SQLSTATE and SQL Server error number, never by text.
 */
export function isMissingObject(error: unknown): boolean {
  return causes(error).some((e) => {
    const { code, number } = e as { code?: unknown; number?: unknown };
    return (
      (typeof code === 'string' && MISSING_OBJECT_CODES.has(code)) ||
      (typeof number === 'number' && MISSING_OBJECT_NUMBERS.has(number))
    );
  });
}
