import { WharfError } from '../../core/errors.js';

/** SQL Server names (`sysname`) hold at most 128 UTF-16 code units. */
export const MSSQL_MAX_IDENTIFIER = 128;

/**
 * Quotes a SQL Server identifier: wraps it in `[` `]` and doubles every `]` inside.
 * Refuses a NUL character, an empty name and a name longer than 128 UTF-16 code units.
 *
 * @example quoteMssql('a]b') // '[a]]b]'
 */
export function quoteMssql(identifier: string): string {
  if (identifier.includes('\u0000')) {
    throw new WharfError('a SQL Server name contains a NUL character', {
      hint: 'rename the schema, stream or column',
    });
  }
  if (identifier.length === 0) throw new WharfError('a SQL Server name is empty');
  if (identifier.length > MSSQL_MAX_IDENTIFIER) {
    throw new WharfError(
      `the SQL Server name "${identifier.slice(0, 40)}…" is ${identifier.length} characters long; the limit is ${MSSQL_MAX_IDENTIFIER}`,
      { hint: 'choose a shorter schema, stream or column name' },
    );
  }
  return `[${identifier.replace(/]/g, ']]')}]`;
}

/** A Unicode string literal `N'…'` (quotes doubled), for the few DDL statements that take no parameters. */
export function literalMssql(value: string): string {
  if (value.includes('\u0000')) throw new WharfError('a SQL Server literal contains a NUL character');
  return `N'${value.replace(/'/g, "''")}'`;
}
