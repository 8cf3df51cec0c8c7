import type { Column, Stream } from '../catalog/types.js';
import type { ErrorKind } from '../core/errors.js';

export type EngineName = 'postgres' | 'mssql';

/** What an engine can do, as data: read where engines differ instead of asking which engine it is. */
export interface DialectCapabilities {
  /** The longest identifier the engine keeps whole, in its own unit: UTF-8 bytes on PostgreSQL, UTF-16 code units on SQL Server (each kind checks schema names against it). */
  readonly maxIdentifierLength: number;
  /** DDL can run inside the load transaction and roll back with it (both engines: migrations are one transaction). */
  readonly transactionalDdl: boolean;
  /** The staging format the engine's bulk path reads; the loader refuses a window staged otherwise. */
  readonly preferredFormat: 'csv';
  /** Foreign keys can be deferred to commit (PostgreSQL); otherwise parents are checked before each merge (SQL Server). */
  readonly deferrableForeignKeys: boolean;
}

/** The columns Wharf adds to every warehouse table. */
export const WINDOW_COLUMN = '_wharf_window';
export const LOADED_AT_COLUMN = '_wharf_loaded_at';
export const LEDGER_TABLE = '_wharf_loads';
export const MIGRATIONS_TABLE = '_wharf_migrations';
export const SYNC_STATUS_TABLE = '_wharf_sync_status';

/** The statements that make a warehouse schema and its tables (see `migrateWarehouse`). */
export interface SchemaSql {
  /** Takes the schema's migration lock for the transaction (parameter `resource`); SQL Server returns `r` < 0 on failure. */
  lockSchema(): string;
  /** The schema, the migrations table, the ledger, the freshness table and any table of the engine's own. */
  setup(schema: string): string[];
  /** The catalog version recorded last (`version`). */
  currentVersion(schema: string): string;
  /** `table_name`, `column_name` of every table in the schema (parameter `schema`). */
  existingColumns(): string;
  /** Records a catalog version (parameters `version`, `catalog`, `description`); a second time changes nothing. */
  recordVersion(schema: string): string;
}

/** The statements of a stream's tables: the final table, a new column, the staging table, the merge. */
export interface TableSql {
  /** The final table of a stream; `foreignKeys` lists the parent streams that are synced too. */
  createTable(schema: string, stream: Stream, foreignKeys: readonly string[]): string[];
  /** Adds a column introduced by a newer catalog version. */
  addColumn(schema: string, stream: Stream, column: Column): string;
  /** The staging table one stream's files are bulk-loaded into. */
  createStaging(schema: string, stream: Stream): string[];
  /** Deduplicates staging by primary key (latest change wins) and merges it with the version guard. */
  merge(schema: string, stream: Stream): string;
}

/** The statements of the ledger `<schema>._wharf_loads`. */
export interface LedgerSql {
  /** Inserts or replaces ledger rows (parameters: window_id, stream, rows, sha256, files, window_start, window_end). */
  upsertLedger(schema: string): string;
  /** `window_id`, `stream` of the ledger rows among the ids `loadedParams` binds. */
  selectLoaded(schema: string): string;
  loadedParams(windowIds: readonly string[]): Readonly<Record<string, unknown>>;
  /** `t` is not null when the table named by the parameter `ledger` exists. */
  ledgerExists(): string;
  /** The ledger's quoted name, as `ledgerExists` takes it. */
  ledgerName(schema: string): string;
  /** `w` last window id, `e` last window end, `l` last load, `r` rows, `n` windows. */
  ledgerSummary(schema: string): string;
}

/** The parts of `SchemaSql.setup`, one statement each (tested as exact text). */
export interface SetupSql {
  createSchema(schema: string): string;
  createMigrationsTable(schema: string): string;
  createLedger(schema: string): string;
  /** Freshness per stream for the customer's analysts (`_wharf_sync_status`). */
  createSyncStatus(schema: string): string;
}

/** The SQL text an engine produces for the load flow. Every identifier goes through the engine's `quote`. */
export type DialectSql = SchemaSql & TableSql & LedgerSql & SetupSql;

/** How one warehouse engine differs from the others: data, quoting, a type map and a few SQL functions. */
export interface Dialect {
  readonly name: EngineName;
  readonly capabilities: DialectCapabilities;
  /** Quotes an identifier (doubling the engine's closing quote character). */
  quote(identifier: string): string;
  /** The engine's column type for a catalog column. */
  columnType(column: Column): string;
  readonly sql: DialectSql;
  /** Transient (retry) or terminal, from the driver's error code / number, never its message. */
  classifyError(error: unknown): ErrorKind;
}
