import type { Catalog, Stream } from '../catalog/types.js';
import type { StagedPart } from '../staging/staged-part.js';
import type { Dialect } from './dialect.js';

/** One staged part of a window, as the loader sees it (an account's rows of one stream). */
export type WindowFile = StagedPart;

/** One row of `<schema>._wharf_loads`. */
export interface LedgerRow {
  readonly windowId: string;
  readonly stream: string;
  readonly rows: number;
  /** sha256 over the sha256s of the stream's files for the account (sorted), or of the empty string. */
  readonly sha256: string;
  readonly files: number;
  readonly windowStart: Date;
  readonly windowEnd: Date;
}

export interface StageResult {
  readonly rows: number;
  /** Rows the warehouse cannot hold, written to the quarantine table with a reason. */
  readonly quarantined: number;
}

/** One load transaction: stage → merge per stream, then the ledger, then commit. */
export interface LoadTransaction {
  /** Bulk-loads files of one stream (possibly of several consecutive windows) into its staging table. */
  stage(stream: Stream, files: readonly WindowFile[]): Promise<StageResult>;
  /**
   * Deduplicates what was staged for the stream (latest change wins, across all staged windows), merges it into the
   * final table with the version guard, and empties the staging table. Returns the rows inserted or updated.
   */
  merge(stream: Stream): Promise<number>;
  record(rows: readonly LedgerRow[]): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

/** What the ledger says of a connector's warehouse. */
export interface LedgerStatus {
  readonly lastWindowId: string | null;
  readonly lastWindowEnd: Date | null;
  readonly lastLoadedAt: Date | null;
  readonly rows: number;
  readonly windows: number;
}

/** A connection to one connector's warehouse schema. */
export interface Warehouse {
  readonly dialect: Dialect;
  /** Creates or migrates the schema, tables, ledger for these streams (idempotent). */
  migrate(catalog: Catalog, streams: readonly string[]): Promise<void>;
  /** Per stream, the window ids already in the ledger among `candidates`. */
  loaded(candidates: readonly string[]): Promise<Map<string, Set<string>>>;
  begin(): Promise<LoadTransaction>;
  /** The ledger's summary (last window, rows loaded); zeros when nothing was loaded yet. */
  status(): Promise<LedgerStatus>;
  close(): Promise<void>;
}

/**
 * How long a warehouse session may wait and run, and when it must stop: every session Wharf opens on a
 * warehouse sets `lock_timeout` and `statement_timeout` (SQL Server: `SET LOCK_TIMEOUT` and the request
 * timeout). When `signal` aborts (the daemon is stopping), a statement waiting for a lock is ended at once and
 * a running one after `stopGraceMs`; the transaction rolls back.
 */
export interface SessionLimits {
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly stopGraceMs: number;
  readonly signal?: AbortSignal;
}

/** The defaults of `SessionLimits` (the settings `WHARF_LOCK_TIMEOUT`, `WHARF_STATEMENT_TIMEOUT`, `WHARF_STOP_GRACE`). */
export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  lockTimeoutMs: 10_000,
  statementTimeoutMs: 3_600_000,
  stopGraceMs: 20_000,
};
