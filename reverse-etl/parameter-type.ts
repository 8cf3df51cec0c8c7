import type pg from 'pg';
import { hasCode, UsageError, WharfError } from '../core/errors.js';
import { quotePg } from '../db/postgres/quote.js';

/**
 * How `{{last_sync_time}}` is sent, from the type the server infers for it:
 * - `seconds`: a number type (integer, numeric, float, money): whole Unix seconds, rounded down;
 * - `timestamptz`: the instant in UTC with microseconds (`2026-01-02T03:04:05.123456Z`);
 * - `timestamp`: the UTC wall-clock time without a zone (`2026-01-02 03:04:05.123456`);
 * - `date`: the UTC day (`2026-01-02`), rounded down;
 * - `text`: a text type (or one the server left unknown): whole Unix seconds as text, as for numbers. A text
 *   column compared with it compares text; cast the placeholder (`{{last_sync_time}}::bigint`,
 *   `to_timestamp({{last_sync_time}})`) to choose.
 */
export type ParameterKind = 'seconds' | 'timestamptz' | 'timestamp' | 'date' | 'text';

/** The type the server inferred for the parameter. */
export interface ParameterType {
  /** The server's own name of the type (`bigint`, `timestamp with time zone`, `datetime2(7)`). */
  readonly name: string;
  readonly kind: ParameterKind;
}

/** The parameter as it is bound for one run. */
export interface BoundParameter extends ParameterType {
  /** The value sent (never part of the SQL text). */
  readonly value: string;
  /** The instant it stands for, in microseconds since the Unix epoch (`last_sync_time` less any lookback). */
  readonly instantMicros: number;
}

/** The name under which the query is prepared to read its parameter's type. */
export const PG_PROBE_STATEMENT = 'wharf_retl_probe';

/** Reads the inferred types of a prepared statement's parameters, in order. */
export const PG_PARAMETER_TYPES_SQL = [
  'select format_type(p.oid, null) as name, t.typcategory as category,',
  '  format_type(coalesce(nullif(t.typbasetype, 0), p.oid), null) as base',
  'from pg_prepared_statements s',
  'cross join lateral unnest(s.parameter_types::oid[]) with ordinality as p(oid, n)',
  'join pg_type t on t.oid = p.oid',
  'where s.name = $1',
  'order by p.n',
].join('\n');

const CAST_HINT =
  'cast the placeholder to say what it is compared with, e.g. {{last_sync_time}}::bigint or to_timestamp({{last_sync_time}})';

/**
 * The type PostgreSQL (or Redshift) infers for `$1` in `sql`: the statement is PREPAREd (never executed),
 * its parameter types read from `pg_prepared_statements`, then DEALLOCATEd. Undefined when the query
 * has no parameter. Refuses with a `UsageError` a type that cannot stand for a time.
 */
export async function describePgParameter(
  client: pg.ClientBase,
  sql: string,
): Promise<ParameterType | undefined> {
  const name = quotePg(PG_PROBE_STATEMENT);
  try {
    await client.query(`prepare ${name} as ${sql}`);
  } catch (error) {
    // 42P18: could not determine the data type; 42P08: inconsistent types deduced
    if (hasCode(error, '42P18') || hasCode(error, '42P08')) {
      throw new UsageError(
        `the server cannot tell the type of {{last_sync_time}} in the sync query: ${(error as Error).message}`,
        CAST_HINT,
      );
    }
    throw error;
  }
  try {
    const rows = (
      await client.query<{ name: string; category: string; base: string }>(PG_PARAMETER_TYPES_SQL, [
        PG_PROBE_STATEMENT,
      ])
    ).rows;
    const first = rows[0];
    return first === undefined ? undefined : { name: first.name, kind: pgParameterKind(first) };
  } finally {
    await client.query(`deallocate ${name}`);
  }
}

/**
 * The kind of a PostgreSQL type, from its base type (domains count as their base) and its category
 * (`pg_type.typcategory`: N numeric, D date/time, S string, X unknown).
 */
export function pgParameterKind(type: {
  readonly name: string;
  readonly category: string;
  readonly base: string;
}): ParameterKind {
  switch (type.base) {
    case 'timestamp with time zone':
      return 'timestamptz';
    case 'timestamp without time zone':
      return 'timestamp';
    case 'date':
      return 'date';
  }
  if (type.category === 'N') return 'seconds';
  if (type.category === 'S' || type.category === 'X') return 'text';
  throw new UsageError(
    `{{last_sync_time}} is compared with a value of type ${type.name} in the sync query`,
    CAST_HINT,
  );
}

/**
 * SQL Server: the types it suggests for the undeclared parameters of a T-SQL batch, bound as
 * `@tsql` (nvarchar(max)). One row per parameter: `parameter_ordinal`, `name` (`@p1`),
 * `suggested_system_type_name` (`int`, `datetime2(7)`, …) among others.
 * See https://learn.microsoft.com/sql/relational-databases/system-stored-procedures/sp-describe-undeclared-parameters-transact-sql
 */
export const MSSQL_DESCRIBE_PARAMETERS_SQL = 'EXEC sys.sp_describe_undeclared_parameters @tsql = @tsql;';

/** The kind of a SQL Server type from `suggested_system_type_name` (`decimal(18,0)`, `datetime2(7)`, …). */
export function mssqlParameterKind(typeName: string): ParameterKind {
  const base = typeName.toLowerCase().replace(/\(.*$/, '').trim();
  switch (base) {
    case 'tinyint':
    case 'smallint':
    case 'int':
    case 'bigint':
    case 'decimal':
    case 'numeric':
    case 'float':
    case 'real':
    case 'money':
    case 'smallmoney':
      return 'seconds';
    case 'datetimeoffset':
      return 'timestamptz';
    case 'datetime':
    case 'datetime2':
    case 'smalldatetime':
      return 'timestamp';
    case 'date':
      return 'date';
    case 'char':
    case 'varchar':
    case 'nchar':
    case 'nvarchar':
    case 'text':
    case 'ntext':
    case 'sql_variant':
      return 'text';
  }
  throw new UsageError(
    `{{last_sync_time}} is compared with a value of type ${typeName} in the sync query`,
    "cast the placeholder, e.g. CAST({{last_sync_time}} AS bigint) or DATEADD(second, {{last_sync_time}}, '1970-01-01')",
  );
}

/**
 * The value bound for `{{last_sync_time}}` = `instantMicros` (microseconds since the Unix epoch, on the
 * warehouse's clock), in the form of its kind.
 *
 * @example boundValue('seconds', 1_700_000_000_500_000) // '1700000000'
 * @example boundValue('timestamptz', 1_700_000_000_500_000) // '2023-11-14T22:13:20.500000Z'
 */
export function boundValue(kind: ParameterKind, instantMicros: number): string {
  if (!Number.isSafeInteger(instantMicros) || instantMicros < 0) {
    throw new WharfError(`last_sync_time ${instantMicros} µs is not a time Wharf can bind`);
  }
  const seconds = Math.floor(instantMicros / 1_000_000);
  switch (kind) {
    case 'seconds':
    case 'text':
      return String(seconds);
    case 'timestamptz':
      return `${utcParts(instantMicros).join('T')}Z`;
    case 'timestamp':
      return utcParts(instantMicros).join(' ');
    case 'date':
      return utcParts(instantMicros)[0]!;
  }
}

/** Binds the parameter of `type` for `instantMicros`. */
export function bindParameter(type: ParameterType, instantMicros: number): BoundParameter {
  return { ...type, value: boundValue(type.kind, instantMicros), instantMicros };
}

/** `[YYYY-MM-DD, HH:MM:SS.ffffff]` in UTC. */
function utcParts(micros: number): [string, string] {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString(); // 2023-11-14T22:13:20.500Z
  const fraction = String(micros % 1_000_000).padStart(6, '0');
  return [iso.slice(0, 10), `${iso.slice(11, 19)}.${fraction}`];
}
