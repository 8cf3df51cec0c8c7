import { createHash } from 'node:crypto';
import type { Column, Stream } from '../../catalog/types.js';
import { classifyMssqlError } from '../../db/mssql/errors.js';
import { literalMssql, MSSQL_MAX_IDENTIFIER, quoteMssql } from '../../db/mssql/quote.js';
import {
  type Dialect,
  type DialectSql,
  LEDGER_TABLE,
  LOADED_AT_COLUMN,
  MIGRATIONS_TABLE,
  SYNC_STATUS_TABLE,
  WINDOW_COLUMN,
} from '../dialect.js';

/** Rows holding values SQL Server cannot store land here, one row per offending value, with a reason. */
export const QUARANTINE_TABLE = '_wharf_quarantine';

/** The longest `NVARCHAR(n)`; a longer text column becomes `NVARCHAR(MAX)`. */
export const MAX_NVARCHAR = 4000;

/** Window ids are at most this long (the ledger's and the tables' `_wharf_window` column). */
export const WINDOW_ID_LENGTH = 200;

const q = quoteMssql;
const table = (schema: string, name: string): string => `${q(schema)}.${q(name)}`;
/** The quoted two-part name as a string literal, for `OBJECT_ID(…)` and `EXEC(…)`. */
const tableLiteral = (schema: string, name: string): string => literalMssql(table(schema, name));

/** A name that fits in 128 code units: longer ones keep a prefix and gain a short hash, so they stay unique. */
export function fitName(name: string): string {
  if (name.length <= MSSQL_MAX_IDENTIFIER) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 12);
  return `${name.slice(0, MSSQL_MAX_IDENTIFIER - 13)}_${hash}`;
}

/** The staging table of a stream: a real table in the warehouse schema, so bulk load and MERGE both see it. */
export function stagingTableName(stream: Stream): string {
  return fitName(`_wharf_stage_${stream.name}`);
}

/**
 * The type map (see docs/mssql.md): timestamps are `DATETIME2(6)` holding UTC, text is `NVARCHAR(n)` up to
 * 4000 and `NVARCHAR(MAX)` beyond, jsonb is `NVARCHAR(MAX)` with an `ISJSON` check.
 */
export function mssqlColumnType(column: Column): string {
  switch (column.type) {
    case 'bigint':
      return 'BIGINT';
    case 'numeric':
      return `DECIMAL(${column.precision ?? 18},${column.scale ?? 4})`;
    case 'timestamptz':
      return 'DATETIME2(6)';
    case 'date':
      return 'DATE';
    case 'uuid':
      return 'UNIQUEIDENTIFIER';
    case 'boolean':
      return 'BIT';
    case 'char': {
      const n = column.length ?? 1;
      return n <= MAX_NVARCHAR ? `NCHAR(${n})` : 'NVARCHAR(MAX)';
    }
    case 'text':
      return column.length !== undefined && column.length <= MAX_NVARCHAR
        ? `NVARCHAR(${column.length})`
        : 'NVARCHAR(MAX)';
    case 'jsonb':
      return 'NVARCHAR(MAX)';
  }
}

/**
 * The length of a column's staging `NVARCHAR` (`'MAX'` for unbounded). Staging holds text only: values
 * are checked and normalised before they are sent (see bulk-rows.ts), and the MERGE converts them exactly.
 */
export function stagingLength(column: Column): number | 'MAX' {
  switch (column.type) {
    case 'bigint':
      return 20;
    case 'numeric':
      return (column.precision ?? 18) + 2;
    case 'timestamptz':
      return 26;
    case 'date':
      return 10;
    case 'uuid':
      return 36;
    case 'boolean':
      return 1;
    case 'char':
      return (column.length ?? 1) <= MAX_NVARCHAR ? (column.length ?? 1) : 'MAX';
    case 'text':
      return column.length !== undefined && column.length <= MAX_NVARCHAR ? column.length : 'MAX';
    case 'jsonb':
      return 'MAX';
  }
}

/** The staging column type of a catalog column. */
export function stagingColumnType(column: Column): string {
  return `NVARCHAR(${stagingLength(column)})`;
}

/** The expression turning a staged text column into the final column's type (exact: no float on the way). */
/**
 * A staged row of `stream` whose `column` names a row missing from the parent table, if the parent table
 * exists in the schema (the parent stream is synced). SQL Server has no deferrable foreign keys, so the
 * loader asks before the MERGE: a missing parent then reads as such, and error 547 stays a constraint error.
 */
export function missingParentSql(schema: string, stream: Stream, column: Column, parentKey: Column): string {
  const parent = table(schema, column.references!);
  return (
    `IF OBJECT_ID(${literalMssql(parent)}, N'U') IS NOT NULL ` +
    `SELECT TOP (1) st.${q(column.name)} AS [value] FROM ${table(schema, stagingTableName(stream))} AS st ` +
    `WHERE st.${q(column.name)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${parent} AS p ` +
    `WHERE p.${q(parentKey.name)} = ${convertFromStaging(column).replace(q(column.name), `st.${q(column.name)}`)})`
  );
}

export function convertFromStaging(column: Column): string {
  const c = q(column.name);
  switch (column.type) {
    case 'bigint':
      return `CONVERT(BIGINT, ${c})`;
    case 'numeric':
      return `CONVERT(${mssqlColumnType(column)}, ${c})`;
    case 'timestamptz':
      return `CONVERT(DATETIME2(6), ${c}, 126)`;
    case 'date':
      return `CONVERT(DATE, ${c}, 23)`;
    case 'uuid':
      return `CONVERT(UNIQUEIDENTIFIER, ${c})`;
    case 'boolean':
      return `CONVERT(BIT, ${c})`;
    case 'char':
      return `CONVERT(${mssqlColumnType(column)}, ${c})`;
    case 'text':
    case 'jsonb':
      return c;
  }
}

function notNull(column: Column): string {
  return column.nullable ? 'NULL' : 'NOT NULL';
}

function jsonCheck(stream: Stream, column: Column): string {
  return `CONSTRAINT ${q(fitName(`${stream.name}_${column.name}_isjson`))} CHECK (ISJSON(${q(column.name)}) = 1)`;
}

function columnDefinition(stream: Stream, column: Column): string {
  const def = `${q(column.name)} ${mssqlColumnType(column)} ${notNull(column)}`;
  return column.type === 'jsonb' ? `${def} ${jsonCheck(stream, column)}` : def;
}

const LEDGER_COLUMNS = [
  'window_id',
  'stream',
  'rows',
  'sha256',
  'files',
  'window_start',
  'window_end',
] as const;
const QUARANTINE_COLUMNS = [
  'window_id',
  'stream',
  'primary_key',
  'column_name',
  'reason',
  'raw_value',
] as const;

/** Parameters a single request may carry (SQL Server's limit is 2100). */
export const QUARANTINE_ROWS_PER_INSERT = 300;

/** The statements SQL Server needs beyond the shared `DialectSql`. */
export interface MssqlExtraSql {
  /** Upserts one stream's freshness: `@p1` stream, `@p2` window_id, `@p3` window_closed_at. */
  upsertSyncStatus(schema: string): string;
  createQuarantine(schema: string): string;
  /** Inserts `rows` quarantine rows; parameters `@p1…` six per row: window_id, stream, primary_key, column_name, reason, raw_value. */
  insertQuarantine(schema: string, rows: number): string;
  /** Forgets earlier quarantine rows of a window and stream (`@p1` window_id, `@p2` stream), so a replay does not count twice. */
  clearQuarantine(schema: string): string;
  dropStaging(schema: string, stream: Stream): string;
}

/** The T-SQL of the load flow. */
export type MssqlSql = DialectSql & MssqlExtraSql;

export const mssqlSql: MssqlSql = {
  lockSchema: () =>
    `DECLARE @r INT; EXEC @r = sp_getapplock @Resource = @resource, @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 120000; SELECT @r AS [r]`,

  setup(schema) {
    return [
      this.createSchema(schema),
      this.createMigrationsTable(schema),
      this.createLedger(schema),
      this.createSyncStatus(schema),
      this.createQuarantine(schema),
    ];
  },

  currentVersion: (schema) => `SELECT MAX([version]) AS [version] FROM ${table(schema, MIGRATIONS_TABLE)}`,

  existingColumns: () =>
    `SELECT t.[name] AS [table_name], c.[name] AS [column_name] FROM sys.columns AS c ` +
    `JOIN sys.tables AS t ON t.[object_id] = c.[object_id] WHERE t.[schema_id] = SCHEMA_ID(@schema)`,

  recordVersion: (schema) =>
    `IF NOT EXISTS (SELECT 1 FROM ${table(schema, MIGRATIONS_TABLE)} WHERE [version] = @version) ` +
    `INSERT INTO ${table(schema, MIGRATIONS_TABLE)} ([version], [catalog], [description]) VALUES (@version, @catalog, @description)`,

  /** Ledger rows among a JSON array of window ids (`@ids`). */
  loadedParams: (windowIds) => ({ ids: JSON.stringify(windowIds) }),

  ledgerExists: () => `SELECT OBJECT_ID(@ledger, N'U') AS [t]`,

  ledgerName: (schema) => table(schema, LEDGER_TABLE),

  ledgerSummary: (schema) => {
    const ledger = table(schema, LEDGER_TABLE);
    return (
      `SELECT (SELECT TOP (1) [window_id] FROM ${ledger} ORDER BY [window_end] DESC, [window_id] DESC) AS [w], ` +
      `MAX([window_end]) AS [e], MAX([loaded_at]) AS [l], COALESCE(SUM([rows]), 0) AS [r], COUNT(DISTINCT [window_id]) AS [n] FROM ${ledger}`
    );
  },

  createSchema: (schema) =>
    `IF SCHEMA_ID(${literalMssql(schema)}) IS NULL EXEC(${literalMssql(`CREATE SCHEMA ${q(schema)}`)})`,

  createMigrationsTable: (schema) =>
    `IF OBJECT_ID(${tableLiteral(schema, MIGRATIONS_TABLE)}, N'U') IS NULL CREATE TABLE ${table(schema, MIGRATIONS_TABLE)} (` +
    `[version] INT NOT NULL PRIMARY KEY, [catalog] NVARCHAR(128) NOT NULL, [description] NVARCHAR(400) NOT NULL, ` +
    `[applied_at] DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME())`,

  createLedger: (schema) =>
    `IF OBJECT_ID(${tableLiteral(schema, LEDGER_TABLE)}, N'U') IS NULL CREATE TABLE ${table(schema, LEDGER_TABLE)} (` +
    `[window_id] NVARCHAR(${WINDOW_ID_LENGTH}) NOT NULL, [stream] NVARCHAR(128) NOT NULL, [rows] BIGINT NOT NULL, ` +
    `[sha256] CHAR(64) NOT NULL, [files] INT NOT NULL DEFAULT 0, [window_start] DATETIME2(6) NULL, ` +
    `[window_end] DATETIME2(6) NULL, [loaded_at] DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME(), ` +
    `PRIMARY KEY ([window_id], [stream]))`,

  createTable: (schema, stream, foreignKeys) => {
    const target = table(schema, stream.name);
    const cols = stream.columns.map((c) => columnDefinition(stream, c));
    cols.push(
      `${q(WINDOW_COLUMN)} NVARCHAR(${WINDOW_ID_LENGTH}) NOT NULL`,
      `${q(LOADED_AT_COLUMN)} DATETIME2(6) NOT NULL`,
      `CONSTRAINT ${q(fitName(`${stream.name}_pkey`))} PRIMARY KEY (${stream.primaryKey.map(q).join(', ')})`,
    );
    const statements = [
      `IF OBJECT_ID(${tableLiteral(schema, stream.name)}, N'U') IS NULL CREATE TABLE ${target} (${cols.join(', ')})`,
    ];
    const index = fitName(`${stream.name}_${stream.changeColumn}_idx`);
    statements.push(
      `IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(${tableLiteral(schema, stream.name)}) AND name = ${literalMssql(index)}) ` +
        `CREATE INDEX ${q(index)} ON ${target} (${q(stream.changeColumn)})`,
    );
    for (const c of stream.columns) {
      if (!c.references || !foreignKeys.includes(c.references) || c.references === stream.name) continue;
      const name = fitName(`${stream.name}_${c.name}_fkey`);
      statements.push(
        `IF OBJECT_ID(${tableLiteral(schema, name)}, N'F') IS NULL ` +
          `ALTER TABLE ${target} ADD CONSTRAINT ${q(name)} FOREIGN KEY (${q(c.name)}) REFERENCES ${table(schema, c.references)}`,
      );
    }
    return statements;
  },

  addColumn: (schema, stream, column) =>
    `IF COL_LENGTH(${tableLiteral(schema, stream.name)}, ${literalMssql(column.name)}) IS NULL ` +
    `ALTER TABLE ${table(schema, stream.name)} ADD ${columnDefinition(stream, { ...column, nullable: true })}`,

  createStaging: (schema, stream) => {
    const stage = table(schema, stagingTableName(stream));
    const cols = stream.columns.map((c) => `${q(c.name)} ${stagingColumnType(c)} NULL`);
    cols.push(`${q(WINDOW_COLUMN)} NVARCHAR(${WINDOW_ID_LENGTH}) NULL`);
    return [`DROP TABLE IF EXISTS ${stage}`, `CREATE TABLE ${stage} (${cols.join(', ')})`];
  },

  merge: (schema, stream) => mergeSql(schema, stream),

  upsertLedger: (schema) => {
    const cols = LEDGER_COLUMNS.map(q);
    const source = LEDGER_COLUMNS.map((c, i) => `@p${i + 1} AS ${q(c)}`).join(', ');
    const sets = cols.slice(2).map((c) => `${c} = u.${c}`);
    return (
      `MERGE INTO ${table(schema, LEDGER_TABLE)} WITH (HOLDLOCK) AS l USING (SELECT ${source}) AS u ` +
      `ON l.[window_id] = u.[window_id] AND l.[stream] = u.[stream] ` +
      `WHEN MATCHED THEN UPDATE SET ${sets.join(', ')}, [loaded_at] = SYSUTCDATETIME() ` +
      `WHEN NOT MATCHED THEN INSERT (${cols.join(', ')}, [loaded_at]) VALUES (${cols.map((c) => `u.${c}`).join(', ')}, SYSUTCDATETIME());`
    );
  },

  createSyncStatus: (schema) =>
    `IF OBJECT_ID(${tableLiteral(schema, SYNC_STATUS_TABLE)}, N'U') IS NULL CREATE TABLE ${table(schema, SYNC_STATUS_TABLE)} (` +
    `[stream] NVARCHAR(128) NOT NULL PRIMARY KEY, [window_id] NVARCHAR(${WINDOW_ID_LENGTH}) NOT NULL, ` +
    `[window_closed_at] DATETIME2(6) NOT NULL, [loaded_at] DATETIME2(6) NOT NULL, [lag_seconds] DECIMAL(18,3) NOT NULL)`,

  upsertSyncStatus: (schema) =>
    `MERGE INTO ${table(schema, SYNC_STATUS_TABLE)} WITH (HOLDLOCK) AS s ` +
    `USING (SELECT @p1 AS [stream], @p2 AS [window_id], @p3 AS [window_closed_at]) AS u ON s.[stream] = u.[stream] ` +
    `WHEN MATCHED AND u.[window_closed_at] >= s.[window_closed_at] THEN UPDATE SET [window_id] = u.[window_id], ` +
    `[window_closed_at] = u.[window_closed_at], [loaded_at] = SYSUTCDATETIME(), ` +
    `[lag_seconds] = DATEDIFF_BIG(MILLISECOND, u.[window_closed_at], SYSUTCDATETIME()) / 1000.0 ` +
    `WHEN NOT MATCHED THEN INSERT ([stream], [window_id], [window_closed_at], [loaded_at], [lag_seconds]) ` +
    `VALUES (u.[stream], u.[window_id], u.[window_closed_at], SYSUTCDATETIME(), DATEDIFF_BIG(MILLISECOND, u.[window_closed_at], SYSUTCDATETIME()) / 1000.0);`,

  createQuarantine: (schema) =>
    `IF OBJECT_ID(${tableLiteral(schema, QUARANTINE_TABLE)}, N'U') IS NULL CREATE TABLE ${table(schema, QUARANTINE_TABLE)} (` +
    `[id] BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY, [window_id] NVARCHAR(${WINDOW_ID_LENGTH}) NOT NULL, ` +
    `[stream] NVARCHAR(128) NOT NULL, [primary_key] NVARCHAR(MAX) NULL, [column_name] NVARCHAR(128) NOT NULL, ` +
    `[reason] NVARCHAR(400) NOT NULL, [raw_value] NVARCHAR(MAX) NULL, ` +
    `[quarantined_at] DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME())`,

  insertQuarantine: (schema, rows) => {
    if (!Number.isInteger(rows) || rows < 1 || rows > QUARANTINE_ROWS_PER_INSERT) {
      throw new RangeError(`insertQuarantine takes 1 to ${QUARANTINE_ROWS_PER_INSERT} rows, not ${rows}`);
    }
    const width = QUARANTINE_COLUMNS.length;
    const values = Array.from(
      { length: rows },
      (_, r) => `(${QUARANTINE_COLUMNS.map((_c, i) => `@p${r * width + i + 1}`).join(', ')})`,
    );
    return `INSERT INTO ${table(schema, QUARANTINE_TABLE)} (${QUARANTINE_COLUMNS.map(q).join(', ')}) VALUES ${values.join(', ')}`;
  },

  clearQuarantine: (schema) =>
    `DELETE FROM ${table(schema, QUARANTINE_TABLE)} WHERE [window_id] = @p1 AND [stream] = @p2`,

  dropStaging: (schema, stream) => `DROP TABLE IF EXISTS ${table(schema, stagingTableName(stream))}`,

  selectLoaded: (schema) =>
    `SELECT l.[window_id], l.[stream] FROM ${table(schema, LEDGER_TABLE)} AS l ` +
    `WHERE l.[window_id] IN (SELECT [value] FROM OPENJSON(@ids))`,
};

/**
 * The MERGE from staging into the final table, in one statement:
 * 1. `typed` converts the staged text exactly (`CONVERT` with ISO styles; the text was checked before it was sent);
 * 2. `src` numbers the versions of each key, latest `updated_at` first (then latest window);
 * 3. the MERGE (with `HOLDLOCK`, so concurrent loads cannot both insert a key) inserts new keys, and
 *    replaces a row only with a later `updated_at`, or the same `updated_at` and different content
 *    (`EXISTS (SELECT s.… EXCEPT SELECT t.…)` compares NULLs as equal). A replay changes nothing, and an
 *    older row never overwrites a newer one.
 * Each row keeps the window it was staged from (`_wharf_window` travels as bulk-loaded data, never as SQL text).
 */
export function mergeSql(schema: string, stream: Stream): string {
  const cols = stream.columns.map((c) => q(c.name));
  const key = stream.primaryKey.map(q);
  const change = q(stream.changeColumn);
  const window = q(WINDOW_COLUMN);
  const loadedAt = q(LOADED_AT_COLUMN);
  const nonKey = stream.columns.filter((c) => !stream.primaryKey.includes(c.name)).map((c) => q(c.name));
  const typed = [
    ...stream.columns.map((c) => {
      const expression = convertFromStaging(c);
      return expression === q(c.name) ? expression : `${expression} AS ${q(c.name)}`;
    }),
    window,
  ].join(', ');
  const guard =
    `s.${change} > t.${change} OR (s.${change} = t.${change} AND EXISTS (` +
    `SELECT ${nonKey.map((c) => `s.${c}`).join(', ')} EXCEPT SELECT ${nonKey.map((c) => `t.${c}`).join(', ')}))`;
  const sets = [
    ...nonKey.map((c) => `${c} = s.${c}`),
    `${window} = s.${window}`,
    `${loadedAt} = SYSUTCDATETIME()`,
  ];
  return (
    `WITH [typed] AS (SELECT ${typed} FROM ${table(schema, stagingTableName(stream))}), ` +
    `[src] AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY ${key.join(', ')} ORDER BY ${change} DESC, ${window} DESC) AS [_rn] FROM [typed]) ` +
    `MERGE INTO ${table(schema, stream.name)} WITH (HOLDLOCK) AS t ` +
    `USING (SELECT ${[...cols, window].join(', ')} FROM [src] WHERE [_rn] = 1) AS s ` +
    `ON ${key.map((k) => `t.${k} = s.${k}`).join(' AND ')} ` +
    `WHEN MATCHED AND (${guard}) THEN UPDATE SET ${sets.join(', ')} ` +
    `WHEN NOT MATCHED BY TARGET THEN INSERT (${[...cols, window, loadedAt].join(', ')}) ` +
    `VALUES (${[...cols, window].map((c) => `s.${c}`).join(', ')}, SYSUTCDATETIME());`
  );
}

/** SQL Server: bracket quoting, DATETIME2(6) in UTC, NVARCHAR text, bulk load into text staging, MERGE with HOLDLOCK. */
export const mssqlDialect: Dialect & { readonly sql: MssqlSql } = {
  name: 'mssql',
  capabilities: {
    maxIdentifierLength: MSSQL_MAX_IDENTIFIER,
    transactionalDdl: true,
    preferredFormat: 'csv',
    deferrableForeignKeys: false,
  },
  quote: quoteMssql,
  columnType: mssqlColumnType,
  classifyError: classifyMssqlError,
  sql: mssqlSql,
};
