import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGunzip } from 'node:zlib';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Catalog, Stream } from '../../catalog/types.js';
import { hasCode, IntegrityError, WharfError, withContext } from '../../core/errors.js';
import { asConnectionLoss, connectClient, isLost } from '../../db/postgres/connection.js';
import { classifyPgError } from '../../db/postgres/errors.js';
import { explainLockTimeout, LOCK_NOT_AVAILABLE } from '../../db/postgres/lock-timeout.js';
import { literalPg, quotePg } from '../../db/postgres/quote.js';
import { inTransaction } from '../../db/postgres/transaction.js';
import { LOADED_AT_COLUMN, SYNC_STATUS_TABLE, WINDOW_COLUMN } from '../dialect.js';
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
import { mergeSql, postgresDialect, stagingTableName } from './postgres-dialect.js';

const q = quotePg;

/** From this many staged rows into an empty table, its indexes are built after the insert instead of during it. */
const BULK_REBUILD_ROWS = 50_000;

/**
 * Memory for the sorts of a big batch (the dedupe, and building keys and indexes on the empty-table path),
 * set for the load transaction only. `server` keeps the warehouse's own settings.
 */
const WORK_MEM = process.env.WHARF_PG_WORK_MEM ?? '256MB';
const MAINTENANCE_WORK_MEM = process.env.WHARF_PG_MAINTENANCE_WORK_MEM ?? '512MB';
/**
 * Memory of the load session for its temporary staging tables (PostgreSQL's default is 8MB: a big batch would be
 * written out and read back). Taken only as the tables grow; set when the session opens, before any temporary
 * table exists (PostgreSQL refuses it later). `server` keeps the warehouse's own setting.
 */
const TEMP_BUFFERS = process.env.WHARF_PG_TEMP_BUFFERS ?? '256MB';

export interface PostgresWarehouseConfig {
  readonly client: pg.ClientConfig;
  readonly schema: string;
  /** The connector, for the context of errors. */
  readonly connectorId?: string;
  /** Lock and statement timeouts, and the signal that stops the session (defaults: `DEFAULT_SESSION_LIMITS`). */
  readonly session?: SessionLimits;
}

/** Turns a failure into the error to report: a lost connection or a lock timeout as one transient line. */
type Explain = (error: unknown) => Promise<unknown>;

/**
 * A PostgreSQL warehouse: COPY into temporary staging tables, merge with the version guard, ledger, commit.
 * Its session sets `lock_timeout` and `statement_timeout`; a lock timeout names the sessions that held the
 * locks; when the session's signal aborts, a statement waiting for a lock ends at once and a running one after
 * the grace period (the server rolls the transaction back).
 */
export class PostgresWarehouse implements Warehouse {
  readonly dialect = postgresDialect;
  readonly #config: PostgresWarehouseConfig;
  readonly #limits: SessionLimits;
  #client: pg.Client | undefined;
  #pid = 0;
  #useMerge = false;
  #unwatch: (() => void) | undefined;

  constructor(config: PostgresWarehouseConfig) {
    this.#config = config;
    this.#limits = config.session ?? DEFAULT_SESSION_LIMITS;
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client && !isLost(this.#client)) return this.#client;
    if (this.#client) await this.close();
    let client: pg.Client;
    try {
      client = await connectClient({ application_name: 'wharf-load', ...this.#config.client }, 'warehouse');
    } catch (error) {
      throw new WharfError(`cannot connect to the warehouse: ${(error as Error).message}`, {
        kind: classifyPgError(error),
        cause: error,
        context: this.#context(),
        hint: 'check the connector with `wharf connectors test`',
      });
    }
    try {
      await client.query("set timezone = 'UTC'; set datestyle = 'ISO, YMD'");
      if (TEMP_BUFFERS !== 'server') {
        await client.query("select set_config('temp_buffers', $1, false)", [TEMP_BUFFERS]);
      }
      const { lockTimeoutMs, statementTimeoutMs } = this.#limits;
      const session = await client.query<{ v: string; pid: number }>(
        `select set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false),
                current_setting('server_version_num') as v, pg_backend_pid() as pid`,
        [`${Math.round(lockTimeoutMs)}ms`, `${Math.round(statementTimeoutMs)}ms`],
      );
      // MERGE from PostgreSQL 15 on (WHARF_PG_MERGE=off keeps INSERT … ON CONFLICT, the path for 13 and 14)
      this.#useMerge = Number(session.rows[0]!.v) >= 150000 && process.env.WHARF_PG_MERGE !== 'off';
      this.#pid = session.rows[0]!.pid;
    } catch (error) {
      await client.end().catch(() => {});
      throw withContext(error, this.#context());
    }
    this.#client = client;
    this.#watchSignal(client);
    return client;
  }

  #context() {
    return this.#config.connectorId ? { connector: this.#config.connectorId } : {};
  }

  /** The error to report for `error`: a lost connection or a lock timeout as one transient line, in context. */
  readonly #explain: Explain = async (error) => {
    const lost = asConnectionLoss(error, 'warehouse');
    if (lost !== error) return withContext(lost, this.#context());
    if (!hasCode(error, LOCK_NOT_AVAILABLE)) return error;
    try {
      const side = await this.#sideClient().catch(() => undefined);
      const explained = await explainLockTimeout(
        error,
        side,
        this.#config.schema,
        this.#limits.lockTimeoutMs,
      );
      return withContext(explained, this.#context());
    } finally {
      this.#endSide();
    }
  };

  #side: pg.Client | undefined;

  /** A second session on the warehouse, for what cannot run on the busy one (who holds a lock, ending it). */
  async #sideClient(): Promise<pg.Client> {
    this.#side ??= await connectClient(
      { ...this.#config.client, application_name: 'wharf-load-watch' },
      'warehouse',
    );
    return this.#side;
  }

  #endSide(): void {
    const side = this.#side;
    this.#side = undefined;
    side?.end().catch(() => {});
  }

  async #guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw await this.#explain(error);
    }
  }

  /** Stops the session when its signal aborts (see `#stop`). */
  #watchSignal(client: pg.Client): void {
    const signal = this.#limits.signal;
    if (!signal) return;
    const onAbort = () => void this.#stop(client);
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    this.#unwatch = () => signal.removeEventListener('abort', onAbort);
  }

  /**
   * Ends the session's work because the process is stopping: a statement waiting for a lock at once, a running
   * one once `stopGraceMs` has passed (`pg_terminate_backend` on our own backend, from a second session: the
   * server rolls the transaction back and releases its locks). Watches until the session is closed.
   */
  async #stop(client: pg.Client): Promise<void> {
    const deadline = Date.now() + this.#limits.stopGraceMs;
    try {
      const side = await connectClient(
        { ...this.#config.client, application_name: 'wharf-load-stop' },
        'warehouse',
      );
      try {
        while (this.#client === client && !isLost(client)) {
          const r = await side.query<{ w: string | null }>(
            'select wait_event_type as w from pg_stat_activity where pid = $1',
            [this.#pid],
          );
          if (r.rows.length === 0) return;
          if (r.rows[0]!.w === 'Lock' || Date.now() >= deadline) {
            await side.query('select pg_terminate_backend($1)', [this.#pid]);
            return;
          }
          await sleep(100);
        }
      } finally {
        await side.end().catch(() => {});
      }
    } catch {
      // the warehouse cannot be reached for a second session: drop the connection once the grace is over
      await sleep(Math.max(0, deadline - Date.now()));
      if (this.#client === client) await client.end().catch(() => {});
    }
  }

  async migrate(catalog: Catalog, streams: readonly string[]): Promise<void> {
    const session = pgSession(await this.#connect());
    try {
      await migrateWarehouse(session, this.dialect, catalog, streams, this.#config.schema, this.#context());
    } catch (error) {
      throw withContext(await this.#explain(error), this.#context());
    }
  }

  async loaded(candidates: readonly string[]): Promise<Map<string, Set<string>>> {
    const client = await this.#connect();
    return this.#guard(() => loadedWindows(pgSession(client), this.dialect, this.#config.schema, candidates));
  }

  async begin(): Promise<LoadTransaction> {
    const client = await this.#connect();
    await this.#guard(() => client.query('begin'));
    return new PostgresLoadTransaction(client, this.#config.schema, this.#useMerge, this.#explain);
  }

  async status(): Promise<LedgerStatus> {
    const client = await this.#connect();
    return this.#guard(() => ledgerStatus(pgSession(client), this.dialect, this.#config.schema));
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#endSide();
    if (client) await client.end().catch(() => {});
  }
}

/** A PostgreSQL client as the shared flows' session: parameters bound as `$1, $2, …` in the order given. */
function pgSession(client: pg.ClientBase): SqlSession {
  const session: SqlSession = {
    query: async <T>(text: string, params: Readonly<Record<string, unknown>> = {}) =>
      (await client.query(text, Object.values(params))).rows as T[],
    transaction: (work) => inTransaction(client, () => work(session)),
  };
  return session;
}

class PostgresLoadTransaction implements LoadTransaction {
  readonly #client: pg.Client;
  readonly #schema: string;
  readonly #staged = new Set<string>();
  /** Per stream, rows staged in this transaction. */
  readonly #stagedRows = new Map<string, number>();
  /** Per stream, the windows of the rows staged in this transaction (one window: no key repeats). */
  readonly #stagedWindows = new Map<string, Set<string>>();
  /** Per stream, the latest change column value merged in this transaction. */
  readonly #highWater = new Map<string, Date>();

  readonly #useMerge: boolean;
  readonly #explain: Explain;
  /** Streams COPYed straight into their empty target: the keys and indexes merge() builds, and the rows. */
  readonly #direct = new Map<string, { rebuild: () => Promise<void>; rows: number }>();

  constructor(client: pg.Client, schema: string, useMerge: boolean, explain: Explain) {
    this.#client = client;
    this.#schema = schema;
    this.#useMerge = useMerge;
    this.#explain = explain;
  }

  async #guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw await this.#explain(error);
    }
  }

  stage(stream: Stream, files: readonly WindowFile[]): Promise<StageResult> {
    return this.#guard(() => this.#stage(stream, files));
  }

  merge(stream: Stream): Promise<number> {
    return this.#guard(() => this.#merge(stream));
  }

  record(rows: readonly LedgerRow[]): Promise<void> {
    return this.#guard(() => this.#record(rows));
  }

  commit(): Promise<void> {
    return this.#guard(async () => {
      await this.#client.query('commit');
    });
  }

  async rollback(): Promise<void> {
    await this.#client.query('rollback').catch(() => {});
  }

  async #stage(stream: Stream, files: readonly WindowFile[]): Promise<StageResult> {
    const client = this.#client;
    const pending = this.#direct.get(stream.name);
    if (pending) {
      // staged again after a direct load (not what the loader does): finish the direct load first
      this.#direct.delete(stream.name);
      await pending.rebuild();
    }
    const direct = await this.#tryDirect(stream, files);
    if (direct) return direct;
    const stage = q(stagingTableName(stream));
    if (!this.#staged.has(stream.name)) {
      for (const s of postgresDialect.sql.createStaging(this.#schema, stream)) await client.query(s);
      this.#staged.add(stream.name);
    }
    let rows = 0;
    const windows = this.#stagedWindows.get(stream.name) ?? new Set<string>();
    this.#stagedWindows.set(stream.name, windows);
    for (const file of files) {
      windows.add(file.windowId);
      await client.query(
        `alter table ${stage} alter column ${q(WINDOW_COLUMN)} set default ${literalPg(file.windowId)}`,
      );
      rows += await this.#copyFile(stage, stream, file);
    }
    this.#stagedRows.set(stream.name, (this.#stagedRows.get(stream.name) ?? 0) + rows);
    return { rows, quarantined: 0 };
  }

  /**
   * The empty-table fast path (a new connector's backfill): when the target is empty and every file is of one
   * window (so no key repeats: the source table has the same primary key), COPY goes straight into the target
   * with its indexes and keys set aside, and merge() builds them. One pass over the rows instead of two.
   */
  async #tryDirect(stream: Stream, files: readonly WindowFile[]): Promise<StageResult | undefined> {
    const rows = files.reduce((n, f) => n + f.rows, 0);
    const windows = new Set(files.map((f) => f.windowId));
    if (rows < BULK_REBUILD_ROWS || windows.size !== 1 || this.#staged.has(stream.name)) return undefined;
    const client = this.#client;
    const target = `${q(this.#schema)}.${q(stream.name)}`;
    const empty = await client.query<{ empty: boolean }>(
      `select not exists (select 1 from ${target}) as empty`,
    );
    if (!empty.rows[0]!.empty) return undefined;
    const rebuild = await this.#setIndexesAside(stream);
    if (!rebuild) return undefined;
    const [windowId] = windows;
    await client.query(
      `alter table ${target} alter column ${q(WINDOW_COLUMN)} set default ${literalPg(windowId!)}, alter column ${q(LOADED_AT_COLUMN)} set default now()`,
    );
    let copied = 0;
    for (const file of files) copied += await this.#copyFile(target, stream, file);
    await client.query(
      `alter table ${target} alter column ${q(WINDOW_COLUMN)} drop default, alter column ${q(LOADED_AT_COLUMN)} drop default`,
    );
    this.#direct.set(stream.name, { rebuild, rows: copied });
    return { rows: copied, quarantined: 0 };
  }

  /** COPYs one csv.gz file into `table`; returns the rows copied. */
  async #copyFile(table: string, stream: Stream, file: WindowFile): Promise<number> {
    try {
      // open the file before starting COPY: a missing file must not leave the connection in COPY mode
      const body = await file.open();
      const copy = this.#client.query(
        copyFrom(`copy ${table} (${file.columns.map(q).join(', ')}) from stdin (format csv, header true)`),
      );
      await pipeline(body, createGunzip(), copy);
      return Number(copy.rowCount ?? 0);
    } catch (error) {
      const ctx = { window: file.windowId, stream: stream.name, key: file.key };
      const code = (error as { code?: string }).code;
      if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR') {
        throw new IntegrityError(
          'staged file is corrupt: its bytes do not match the sha256 in the manifest',
          {
            context: ctx,
            cause: error,
            hint: 'the file was changed after export; restore it from a backup or export the window again as a new revision',
          },
        );
      }
      throw withContext(error, ctx);
    }
  }

  async #merge(stream: Stream): Promise<number> {
    const target = `${q(this.#schema)}.${q(stream.name)}`;
    const direct = this.#direct.get(stream.name);
    if (direct) {
      this.#direct.delete(stream.name);
      await direct.rebuild();
      // the target was empty: its newest change is the window's (read from the rebuilt index)
      await this.#noteHighWater(stream, target);
      return direct.rows;
    }
    const empty = await this.#client.query<{ empty: boolean }>(
      `select not exists (select 1 from ${target}) as empty`,
    );
    const mode = empty.rows[0]!.empty ? 'insert' : this.#useMerge ? 'merge' : 'upsert';
    const big = (this.#stagedRows.get(stream.name) ?? 0) >= BULK_REBUILD_ROWS;
    // the dedupe sorts every staged row: in memory rather than in temporary files when the batch is big
    if (big) await this.#setLocal('work_mem', WORK_MEM);
    const rebuild = mode === 'insert' && big ? await this.#setIndexesAside(stream) : undefined;
    // the rows of one window hold each key once (one read of a source table with the same primary key): no
    // dedupe, so no sort of the staged rows
    const dedupe = (this.#stagedWindows.get(stream.name)?.size ?? 0) > 1;
    const result = await this.#client.query(mergeSql(this.#schema, stream, mode, dedupe));
    if (rebuild) await rebuild();
    await this.#noteHighWater(stream, q(stagingTableName(stream)));
    await this.#client.query(`truncate ${q(stagingTableName(stream))}`);
    this.#stagedWindows.delete(stream.name);
    return result.rowCount ?? 0;
  }

  async #noteHighWater(stream: Stream, table: string): Promise<void> {
    const high = await this.#client.query<{ h: Date | null }>(
      `select max(${q(stream.changeColumn)}) as h from ${table}`,
    );
    const h = high.rows[0]?.h;
    const known = this.#highWater.get(stream.name);
    if (h && (!known || h > known)) this.#highWater.set(stream.name, h);
  }

  /** `SET LOCAL name = value` (until the end of the transaction) unless the value is `server`. */
  async #setLocal(name: string, value: string): Promise<void> {
    if (value === 'server') return;
    await this.#client.query('select set_config($1, $2, true)', [name, value]);
  }

  /**
   * The empty-table fast path (a new connector's backfill): inserting into a table without indexes and
   * building them afterwards is several times faster than inserting into an indexed one. Drops the
   * table's indexes and primary key (and the foreign keys of empty child tables that point at it), and
   * returns the function that restores exactly those definitions. Returns undefined, changing nothing,
   * when a table referencing this one holds rows.
   */
  async #setIndexesAside(stream: Stream): Promise<(() => Promise<void>) | undefined> {
    const client = this.#client;
    const target = `${q(this.#schema)}.${q(stream.name)}`;
    const refs = await client.query<{ conname: string; child: string; def: string }>(
      `select c.conname, c.conrelid::regclass::text as child, pg_get_constraintdef(c.oid) as def
         from pg_constraint c where c.contype = 'f' and c.confrelid = $1::regclass and c.conrelid <> c.confrelid`,
      [target],
    );
    for (const r of refs.rows) {
      const has = await client.query<{ rows: boolean }>(`select exists (select 1 from ${r.child}) as rows`);
      if (has.rows[0]!.rows) return undefined;
    }
    const pk = await client.query<{ conname: string; def: string }>(
      `select conname, pg_get_constraintdef(oid) as def from pg_constraint where contype = 'p' and conrelid = $1::regclass`,
      [target],
    );
    const indexes = await client.query<{ name: string; def: string }>(
      `select i.relname as name, pg_get_indexdef(x.indexrelid) as def
         from pg_index x join pg_class i on i.oid = x.indexrelid
        where x.indrelid = $1::regclass and not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid)`,
      [target],
    );
    // its own foreign keys too: checked once by a join when they are added back, not row by row
    const own = await client.query<{ conname: string; def: string }>(
      `select conname, pg_get_constraintdef(oid) as def from pg_constraint where contype = 'f' and conrelid = $1::regclass`,
      [target],
    );
    // pending deferred checks (rows of parent streams merged earlier in this transaction) must run before
    // constraints are altered; parents come first in stream order, so they can run now
    await client.query('set constraints all immediate');
    await client.query('set constraints all deferred');
    for (const r of refs.rows) await client.query(`alter table ${r.child} drop constraint ${q(r.conname)}`);
    for (const f of own.rows) await client.query(`alter table ${target} drop constraint ${q(f.conname)}`);
    for (const p of pk.rows) await client.query(`alter table ${target} drop constraint ${q(p.conname)}`);
    for (const i of indexes.rows) await client.query(`drop index ${q(this.#schema)}.${q(i.name)}`);
    return async () => {
      // building a key or index sorts the whole table: give the sort the memory to do it in one pass
      await this.#setLocal('maintenance_work_mem', MAINTENANCE_WORK_MEM);
      for (const p of pk.rows)
        await client.query(`alter table ${target} add constraint ${q(p.conname)} ${p.def}`);
      for (const i of indexes.rows) await client.query(i.def);
      for (const f of own.rows)
        await client.query(`alter table ${target} add constraint ${q(f.conname)} ${f.def}`);
      for (const r of refs.rows)
        await client.query(`alter table ${r.child} add constraint ${q(r.conname)} ${r.def}`);
    };
  }

  async #record(rows: readonly LedgerRow[]): Promise<void> {
    if (rows.length === 0) return;
    // freshness for the customer's analysts: per stream, how far the warehouse is loaded
    const last = new Map<string, LedgerRow>();
    for (const r of rows) {
      const seen = last.get(r.stream);
      if (!seen || r.windowEnd > seen.windowEnd) last.set(r.stream, r);
    }
    const streams = [...last.keys()];
    await this.#client.query(
      `insert into ${q(this.#schema)}.${q(SYNC_STATUS_TABLE)} as s (stream, source_high_water, window_id, window_closed_at, loaded_at, lag_seconds)
       select u.stream, u.high, u.window_id, u.window_end, now(), extract(epoch from now() - u.window_end)
         from unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[]) as u(stream, high, window_id, window_end)
       on conflict (stream) do update set
         source_high_water = greatest(s.source_high_water, excluded.source_high_water),
         window_id = case when excluded.window_closed_at >= s.window_closed_at then excluded.window_id else s.window_id end,
         window_closed_at = greatest(s.window_closed_at, excluded.window_closed_at),
         loaded_at = excluded.loaded_at,
         lag_seconds = extract(epoch from excluded.loaded_at - greatest(s.window_closed_at, excluded.window_closed_at))`,
      [
        streams,
        streams.map((n) => this.#highWater.get(n) ?? null),
        streams.map((n) => last.get(n)!.windowId),
        streams.map((n) => last.get(n)!.windowEnd),
      ],
    );
    await this.#client.query(postgresDialect.sql.upsertLedger(this.#schema), [
      rows.map((r) => r.windowId),
      rows.map((r) => r.stream),
      rows.map((r) => r.rows),
      rows.map((r) => r.sha256),
      rows.map((r) => r.files),
      rows.map((r) => r.windowStart),
      rows.map((r) => r.windowEnd),
    ]);
  }
}
