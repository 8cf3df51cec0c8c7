import type { Column, Stream } from '../catalog/types.js';
import type { ErrorKind } from '../core/errors.js';

export type EngineName = 'postgres' | 'mssql';

/** What an engine can do, as data: the loader reads these instead of asking which engine it is. */
export interface DialectCapabilities {
  readonly maxIdentifierLength: number;
  /** DDL can run inside the load transaction and roll back with it. */
  readonly transactionalDdl: boolean;
  /** The file format the engine's bulk path reads. */
  readonly preferredFormat: 'csv';
  /** Foreign keys can be deferred to commit (otherwise the loader relies on stream order). */
  readonly deferrableForeignKeys: boolean;
}

/** The columns Wharf adds to every warehouse table. */
export const WINDOW_COLUMN = '_wharf_window';
export const LOADED_AT_COLUMN = '_wharf_loaded_at';
export const LEDGER_TABLE = '_wharf_loads';
export const MIGRATIONS_TABLE = '_wharf_migrations';
export const SYNC_STATUS_TABLE = '_wharf_sync_status';

/** The SQL text an engine produces for the load flow. Every identifier goes through `quote`. */
export interface DialectSql {
  createSchema(schema: string): string;
  createMigrationsTable(schema: string): string;
  createLedger(schema: string): string;
  /** Freshness per stream for the customer's analysts (`_wharf_sync_status`). */
  createSyncStatus(schema: string): string;
  /** The final table of a stream; `foreignKeys` lists the parent streams that are synced too. */
  createTable(schema: string, stream: Stream, foreignKeys: readonly string[]): string[];
  /** Adds a column introduced by a newer catalog version. */
  addColumn(schema: string, stream: Stream, column: Column): string;
  /** The staging table one stream's files are bulk-loaded into. */
  createStaging(schema: string, stream: Stream): string[];
  /** Deduplicates staging by primary key (latest change wins) and merges it with the version guard. */
  merge(schema: string, stream: Stream): string;
  /** Inserts or replaces one ledger row (parameters: window_id, stream, rows, sha256, files, window_start, window_end). */
  upsertLedger(schema: string): string;
}

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
