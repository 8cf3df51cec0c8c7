import sql from 'mssql';
import type { Catalog, Stream } from '../../catalog/types.js';
import { type ErrorContext, errorMessage, WharfError } from '../../core/errors.js';
import { classifyMssqlError } from '../../db/mssql/errors.js';
import { quoteMssql } from '../../db/mssql/quote.js';
import { WINDOW_COLUMN } from '../dialect.js';
import type { SqlSession } from '../sql-session.js';
import {
  DEFAULT_SESSION_LIMITS,
  type LedgerRow,
  type LedgerStatus,
  type LoadTransaction,
  type SessionLimits,
  type StageResult,
  type Warehouse,
  type WindowFile,
} from '../warehouse.js';
import { ledgerStatus, loadedWindows, migrateWarehouse } from '../warehouse-schema.js';
import { decodeFile } from './bulk-rows.js';
import {
  missingParentSql,
  mssqlDialect,
  QUARANTINE_ROWS_PER_INSERT,
  stagingLength,
  stagingTableName,
  WINDOW_ID_LENGTH,
} from './mssql-dialect.js';
import { type MssqlConnection, mssqlDriverConfig } from './mssql-url.js';

const q = quoteMssql;

export interface MssqlWarehouseConfig {
  readonly connection: MssqlConnection;
  readonly schema: string;
  readonly connectorId?: string;
  /** Rows per bulk-load batch (default 10,000): memory holds one batch at a time. */
  readonly batchRows?: number;
  /**
   * `SET LOCK_TIMEOUT` for every transaction and the stop on `signal` (default `DEFAULT_SESSION_LIMITS`); the
   * statement timeout is the URL's `requestTimeout`.
   */
  readonly session?: SessionLimits;
}

/** `SET LOCK_TIMEOUT <ms>`: a whole number Wharf computed, not user text (the statement takes no parameter). */
export function lockTimeoutSql(ms: number): string {
  return `SET LOCK_TIMEOUT ${Math.max(0, Math.round(ms))}`;
}

/** A SQL Server error as a `WharfError`, classified by error number / driver code. */
function wrap(error: unknown, context: ErrorContext, hint?: string): WharfError {
  if (error instanceof WharfError) {
    Object.defineProperty(error, 'context', { value: { ...context, ...error.context }, configurable: true });
    return error;
  }
  const number = (error as { number?: unknown }).number;
  return new WharfError(errorMessage(error), {
    kind: classifyMssqlError(error),
    cause: error,
    context,
    ...(hint ? { hint } : {}),
    ...(typeof number === 'number' ? { code: String(number) } : {}),
  });
}

type Queryable = sql.ConnectionPool | sql.Transaction;

/** Runs one statement; `params` are bound as typed parameters, never pasted into the text. */
async function run<T = Record<string, unknown>>(
  on: Queryable,
  text: string,
  params: ReadonlyArray<readonly [string, sql.ISqlType | (() => sql.ISqlType), unknown]> = [],
): Promise<sql.IResult<T>> {
  const request = new sql.Request(on as sql.Transaction);
  for (const [name, type, value] of params) request.input(name, type, value);
  return request.query<T>(text);
}

/** The SQL Server type of a parameter: NVARCHAR (MAX beyond 4,000 characters), INT or BIGINT, BIT, DATETIME2. */
function parameterType(value: unknown): sql.ISqlType | (() => sql.ISqlType) {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? (Math.abs(value) <= 2_147_483_647 ? sql.Int : sql.BigInt) : sql.Float;
  }
  if (typeof value === 'boolean') return sql.Bit;
  if (value instanceof Date) return sql.DateTime2(6);
  const text = String(value ?? '');
  return text.length > 4000 ? sql.NVarChar(sql.MAX) : sql.NVarChar(4000);
}

/**
 * A pool (or one transaction) as the shared flows' session: parameters bound by name (`@name`). A transaction
 * it starts sets `lockTimeoutMs` first.
 */
function mssqlSession(on: sql.ConnectionPool | sql.Transaction, lockTimeoutMs?: number): SqlSession {
  return {
    query: async <T>(text: string, params: Readonly<Record<string, unknown>> = {}) => {
      const result = await run<T>(
        on,
        text,
        Object.entries(params).map(([name, value]) => [name, parameterType(value), value] as const),
      );
      return result.recordset ?? [];
    },
    transaction: async (work) => {
      const tx = new sql.Transaction(on as sql.ConnectionPool);
      await tx.begin();
      try {
        if (lockTimeoutMs !== undefined) await run(tx, lockTimeoutSql(lockTimeoutMs));
        const result = await work(mssqlSession(tx));
        await tx.commit();
        return result;
      } catch (error) {
        await tx.rollback().catch(() => {});
        throw error;
      }
    },
  };
}

/**
 * A SQL Server warehouse. A load is one transaction on one connection: per stream, bulk load of the files
 * into a text staging table (`[schema].[_wharf_stage_<stream>]`, created at the start, a leftover dropped
 * first), then one MERGE with dedupe and the version guard; then the ledger rows; then commit.
 */
export class MssqlWarehouse implements Warehouse {
  readonly dialect = mssqlDialect;
  readonly #config: MssqlWarehouseConfig;
  #pool: Promise<sql.ConnectionPool> | undefined;
  /** The catalog of the last migrate: parents are looked up in it before each merge. */
  #catalog: Catalog | undefined;

  #stopTimer: NodeJS.Timeout | undefined;
  #unwatch: (() => void) | undefined;

  constructor(config: MssqlWarehouseConfig) {
    this.#config = config;
    const { signal, stopGraceMs } = config.session ?? DEFAULT_SESSION_LIMITS;
    if (signal) {
      // the process is stopping: after the grace period the connections close, and SQL Server rolls the open
      // transaction back (a wait for a lock ends sooner, at the lock timeout)
      const onAbort = () => {
        this.#stopTimer = setTimeout(() => void this.close(), stopGraceMs);
        this.#stopTimer.unref();
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.#unwatch = () => signal.removeEventListener('abort', onAbort);
      }
    }
  }

  #context(): ErrorContext {
    return this.#config.connectorId ? { connector: this.#config.connectorId } : {};
  }

  #lockTimeoutMs(): number {
    return (this.#config.session ?? DEFAULT_SESSION_LIMITS).lockTimeoutMs;
  }

  #connect(): Promise<sql.ConnectionPool> {
    if (!this.#pool) {
      const pool = new sql.ConnectionPool(mssqlDriverConfig(this.#config.connection));
      pool.on('error', () => {});
      this.#pool = pool.connect().catch((error: unknown) => {
        this.#pool = undefined;
        throw wrap(error, this.#context(), 'check the connector with `wharf connectors test`');
      });
    }
    return this.#pool;
  }

  async migrate(catalog: Catalog, streams: readonly string[]): Promise<void> {
    this.#catalog = catalog;
    const pool = await this.#connect();
    try {
      await migrateWarehouse(
        mssqlSession(pool, this.#lockTimeoutMs()),
        this.dialect,
        catalog,
        streams,
        this.#config.schema,
        this.#context(),
      );
    } catch (error) {
      throw wrap(error, this.#context(), 'check that the login may create schemas and tables (db_ddladmin)');
    }
  }

  async loaded(candidates: readonly string[]): Promise<Map<string, Set<string>>> {
    const pool = await this.#connect();
    try {
      return await loadedWindows(mssqlSession(pool), this.dialect, this.#config.schema, candidates);
    } catch (error) {
      throw wrap(error, this.#context());
    }
  }

  async begin(): Promise<LoadTransaction> {
    const pool = await this.#connect();
    const tx = new sql.Transaction(pool);
    try {
      await tx.begin();
      await run(tx, lockTimeoutSql(this.#lockTimeoutMs()));
    } catch (error) {
      await tx.rollback().catch(() => {});
      throw wrap(error, this.#context());
    }
    return new MssqlLoadTransaction(
      tx,
      this.#config.schema,
      this.#config.batchRows ?? 10_000,
      this.#context(),
      this.#catalog,
    );
  }

  async status(): Promise<LedgerStatus> {
    const pool = await this.#connect();
    try {
      return await ledgerStatus(mssqlSession(pool), this.dialect, this.#config.schema);
    } catch (error) {
      throw wrap(error, this.#context());
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.#stopTimer);
    this.#unwatch?.();
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool) await (await pool.catch(() => undefined))?.close().catch(() => {});
  }
}

/** The bulk-load target: the staging table, columns named and typed exactly as `createStaging` made them. */
export function stagingBulkTable(schema: string, stream: Stream): sql.Table {
  const table = new sql.Table();
  table.name = stagingTableName(stream);
  table.schema = schema;
  // Set here, quoted by the dialect: the driver's own name parser does not accept `]]` inside a name.
  table.path = `${q(schema)}.${q(table.name)}`;
  table.create = false;
  for (const column of stream.columns) {
    const length = stagingLength(column);
    // the driver writes a column name inside `[…]` as given: `]` must arrive doubled
    table.columns.add(column.name.replace(/]/g, ']]'), sql.NVarChar(length === 'MAX' ? sql.MAX : length), {
      nullable: true,
    });
  }
  table.columns.add(WINDOW_COLUMN, sql.NVarChar(WINDOW_ID_LENGTH), { nullable: true });
  return table;
}

/**
 * `KEEP_NULLS`, and `TABLOCK` on the staging table (no one else uses it). The driver hands these to tedious
 * as they are, and tedious names the table lock `lockTable` (the `mssql` typings call it `tableLock`).
 */
const BULK_OPTIONS = { keepNulls: true, lockTable: true } as sql.IBulkOptions;

interface QuarantineRow {
  readonly windowId: string;
  readonly primaryKey: string | null;
  readonly column: string;
  readonly reason: string;
  readonly raw: string | null;
}

class MssqlLoadTransaction implements LoadTransaction {
  readonly #tx: sql.Transaction;
  readonly #schema: string;
  readonly #batchRows: number;
  readonly #context: ErrorContext;
  readonly #staged = new Set<string>();

  readonly #catalog: Catalog | undefined;

  constructor(
    tx: sql.Transaction,
    schema: string,
    batchRows: number,
    context: ErrorContext,
    catalog: Catalog | undefined,
  ) {
    this.#tx = tx;
    this.#schema = schema;
    this.#batchRows = batchRows;
    this.#context = context;
    this.#catalog = catalog;
  }

  /** Throws a foreign-key error (SQLSTATE 23503, as the loader expects) when a staged row's parent is missing. */
  async #checkParents(stream: Stream): Promise<void> {
    if (!this.#catalog) return;
    for (const column of stream.columns) {
      if (!column.references || column.references === stream.name) continue;
      const parent = this.#catalog.streams.find((x) => x.name === column.references);
      const key = parent?.columns.find((c) => c.name === parent.primaryKey[0]);
      if (!parent || !key) continue;
      const result = await run<{ value: string }>(
        this.#tx,
        missingParentSql(this.#schema, stream, column, key),
      );
      const row = result.recordset?.[0];
      if (row) {
        throw new WharfError(
          `a ${stream.name} row references ${parent.name} ${column.name} = ${row.value}, which is not in the warehouse`,
          {
            code: '23503',
            context: { ...this.#context, stream: stream.name },
            hint: 'load the parent stream too (add it with --streams) or replay from an earlier window',
          },
        );
      }
    }
  }

  async stage(stream: Stream, files: readonly WindowFile[]): Promise<StageResult> {
    const s = mssqlDialect.sql;
    const context = { ...this.#context, stream: stream.name };
    try {
      if (!this.#staged.has(stream.name)) {
        for (const statement of s.createStaging(this.#schema, stream)) await run(this.#tx, statement);
        this.#staged.add(stream.name);
      }
      for (const windowId of new Set(files.map((f) => f.windowId))) {
        await run(this.#tx, s.clearQuarantine(this.#schema), [
          ['p1', sql.NVarChar(WINDOW_ID_LENGTH), windowId],
          ['p2', sql.NVarChar(128), stream.name],
        ]);
      }
    } catch (error) {
      throw wrap(error, context);
    }
    const table = stagingBulkTable(this.#schema, stream);
    const quarantine: QuarantineRow[] = [];
    let rows = 0;
    let quarantined = 0;
    for (const file of files) {
      const fileContext = { ...context, window: file.windowId, key: file.key };
      try {
        for await (const row of decodeFile(stream, file)) {
          if (row.ok) {
            table.rows.push(row.values);
            rows++;
          } else {
            quarantined++;
            for (const p of row.problems) {
              quarantine.push({ windowId: file.windowId, primaryKey: row.primaryKey, ...p });
            }
          }
          if (table.rows.length >= this.#batchRows) await this.#bulk(table);
          if (quarantine.length >= QUARANTINE_ROWS_PER_INSERT) await this.#quarantine(stream, quarantine);
        }
        await this.#bulk(table);
        await this.#quarantine(stream, quarantine);
      } catch (error) {
        throw wrap(error, fileContext);
      }
    }
    return { rows, quarantined };
  }

  /** Sends the batch as one bulk load (`insert bulk`, rows streamed in TDS) and empties it. */
  async #bulk(table: sql.Table): Promise<void> {
    if (table.rows.length === 0) return;
    await new sql.Request(this.#tx).bulk(table, BULK_OPTIONS);
    table.rows.clear();
  }

  async #quarantine(stream: Stream, pending: QuarantineRow[]): Promise<void> {
    while (pending.length > 0) {
      const chunk = pending.splice(0, QUARANTINE_ROWS_PER_INSERT);
      const request = new sql.Request(this.#tx);
      chunk.forEach((r, i) => {
        const p = i * 6;
        request.input(`p${p + 1}`, sql.NVarChar(WINDOW_ID_LENGTH), r.windowId);
        request.input(`p${p + 2}`, sql.NVarChar(128), stream.name);
        request.input(`p${p + 3}`, sql.NVarChar(sql.MAX), r.primaryKey);
        request.input(`p${p + 4}`, sql.NVarChar(128), r.column);
        request.input(`p${p + 5}`, sql.NVarChar(400), r.reason.slice(0, 400));
        request.input(`p${p + 6}`, sql.NVarChar(sql.MAX), r.raw);
      });
      await request.query(mssqlDialect.sql.insertQuarantine(this.#schema, chunk.length));
    }
  }

  async merge(stream: Stream): Promise<number> {
    const context = { ...this.#context, stream: stream.name };
    try {
      await this.#checkParents(stream);
      const result = await run(this.#tx, mssqlDialect.sql.merge(this.#schema, stream));
      await run(this.#tx, mssqlDialect.sql.dropStaging(this.#schema, stream));
      this.#staged.delete(stream.name);
      return result.rowsAffected.reduce((n, x) => n + x, 0);
    } catch (error) {
      if (error instanceof WharfError) throw error;
      // parents were checked first, so error 547 here is a CHECK (or a constraint added by hand): terminal
      throw wrap(error, context);
    }
  }

  async record(rows: readonly LedgerRow[]): Promise<void> {
    const text = mssqlDialect.sql.upsertLedger(this.#schema);
    for (const row of rows) {
      try {
        await run(this.#tx, text, [
          ['p1', sql.NVarChar(WINDOW_ID_LENGTH), row.windowId],
          ['p2', sql.NVarChar(128), row.stream],
          ['p3', sql.BigInt, row.rows],
          ['p4', sql.NVarChar(64), row.sha256],
          ['p5', sql.Int, row.files],
          ['p6', sql.DateTime2(6), row.windowStart],
          ['p7', sql.DateTime2(6), row.windowEnd],
        ]);
      } catch (error) {
        throw wrap(error, { ...this.#context, window: row.windowId, stream: row.stream });
      }
    }
    // freshness per stream for the customer's analysts
    const last = new Map<string, LedgerRow>();
    for (const r of rows) {
      const seen = last.get(r.stream);
      if (!seen || r.windowEnd > seen.windowEnd) last.set(r.stream, r);
    }
    for (const r of last.values()) {
      try {
        await run(this.#tx, mssqlDialect.sql.upsertSyncStatus(this.#schema), [
          ['p1', sql.NVarChar(128), r.stream],
          ['p2', sql.NVarChar(WINDOW_ID_LENGTH), r.windowId],
          ['p3', sql.DateTime2(6), r.windowEnd],
        ]);
      } catch (error) {
        throw wrap(error, { ...this.#context, window: r.windowId, stream: r.stream });
      }
    }
  }

  async commit(): Promise<void> {
    try {
      await this.#tx.commit();
    } catch (error) {
      throw wrap(error, this.#context);
    }
  }

  async rollback(): Promise<void> {
    // the server may have rolled back already (a deadlock victim, a broken connection): nothing left to undo
    await this.#tx.rollback().catch(() => {});
  }
}
