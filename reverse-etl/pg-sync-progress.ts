import type pg from 'pg';
import { quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';
import type { CallFile, CallManifest } from './call-files.js';
import type {
  AcknowledgedBatch,
  FileStaged,
  RunOutcome,
  SentCallLedger,
  SyncProgress,
  SyncState,
} from './sync-progress.js';

/** One of a sync's runs, as `wharf retl syncs show` lists it. */
export interface RecentRun {
  readonly runId: string;
  /** `running`, `ok` or `failed` (a run stopped by a transient error too, until the next run takes it up). */
  readonly status: string;
  readonly startedAt: Date;
  readonly finishedAt: Date | null;
  readonly rows: number;
  readonly calls: number;
  /** Calls the receiver acknowledged. */
  readonly delivered: number;
  readonly rejected: number;
  readonly error: string | null;
}

/**
 * `SyncProgress` and `SentCallLedger` on the control tables of the reverse-ETL migration (`runs`,
 * `retl_runs`, `retl_run_files`, `retl_sent_calls`; `retl_syncs` for a sync's start). Ids are the tables'
 * bigints, as text. A run is a `runs` row of kind `sync` with the sync's id, and its `retl_runs` row.
 */
export class PgSyncProgress implements SyncProgress, SentCallLedger {
  readonly #db: pg.Pool;
  readonly #s: string;

  constructor(db: pg.Pool, schema: string) {
    this.#db = db;
    this.#s = quotePg(schema);
  }

  async state(syncId: string): Promise<SyncState> {
    const s = this.#s;
    // 0 before the first successful run, whatever the sync's start (`--start-at` is when it is first due)
    const last = await this.#db.query<{ micros: string | null }>(
      `select coalesce(
         (select r.started_at_micros from ${s}.retl_runs r
           where r.sync_id = $1 and r.status = 'ok' order by r.run_id desc limit 1), 0)::text as micros`,
      [syncId],
    );
    const open = await this.#db.query<{
      run_id: string;
      manifest_key: string | null;
      batches_acked: number;
      acked_ahead: number[];
      started_at_micros: string | null;
    }>(
      `select run_id::text, case when status = 'delivering' then manifest_key end as manifest_key, batches_acked,
              acked_ahead, started_at_micros::text
         from ${s}.retl_runs where sync_id = $1 and status in ('reading', 'delivering')
        order by run_id desc limit 1`,
      [syncId],
    );
    const row = open.rows[0];
    if (row === undefined) return { lastSyncTimeMicros: Number(last.rows[0]?.micros ?? 0) };
    const files = await this.#db.query<{ key: string; calls: string; bytes: string; sha256: string }>(
      `select key, calls::text, bytes::text, sha256 from ${s}.retl_run_files where run_id = $1 order by seq`,
      [row.run_id],
    );
    return {
      lastSyncTimeMicros: Number(last.rows[0]?.micros ?? 0),
      unfinished: {
        runId: row.run_id,
        manifestKey: row.manifest_key ?? undefined,
        acknowledgedBatches: row.batches_acked,
        acknowledgedAhead: row.acked_ahead,
        files: files.rows.map(
          (f): CallFile => ({ key: f.key, calls: Number(f.calls), bytes: Number(f.bytes), sha256: f.sha256 }),
        ),
        startedAtMicros: row.started_at_micros === null ? undefined : Number(row.started_at_micros),
      },
    };
  }

  async begin(syncId: string): Promise<string> {
    const s = this.#s;
    return inTransaction(this.#db, async (c) => {
      const run = await c.query<{ id: string }>(
        `insert into ${s}.runs (kind, sync_id) values ('sync', $1) returning id::text`,
        [syncId],
      );
      const id = run.rows[0]!.id;
      await c.query(`insert into ${s}.retl_runs (run_id, sync_id) values ($1, $2)`, [id, syncId]);
      return id;
    });
  }

  async fileStaged(runId: string, f: FileStaged): Promise<void> {
    const s = this.#s;
    await inTransaction(this.#db, async (c) => {
      await c.query(
        `insert into ${s}.retl_run_files (run_id, seq, key, calls, bytes, sha256) values ($1, $2, $3, $4, $5, $6)
         on conflict (run_id, seq) do nothing`,
        [runId, f.seq, f.file.key, f.file.calls, f.file.bytes, f.file.sha256],
      );
      await c.query(
        `update ${s}.retl_runs set since_micros = $2, started_at_micros = $3 where run_id = $1 and status = 'reading'`,
        [runId, f.sinceMicros, f.startedAtMicros],
      );
    });
  }

  async staged(runId: string, manifestKey: string, m: CallManifest): Promise<void> {
    const s = this.#s;
    await inTransaction(this.#db, async (c) => {
      await c.query(
        `update ${s}.retl_runs set status = 'delivering', manifest_key = $2, since_micros = $3,
           started_at_micros = $4, rows = $5, calls = $6, rejected = $7, already_sent = $8
         where run_id = $1 and status = 'reading'`,
        [
          runId,
          manifestKey,
          m.since_micros,
          m.started_at_micros,
          m.rows,
          m.calls,
          m.rejected,
          m.already_sent,
        ],
      );
      await c.query(`update ${s}.runs set rows = $2, calls = $3, rejected = $4 where id = $1`, [
        runId,
        m.rows,
        m.calls,
        m.rejected,
      ]);
    });
  }

  async acknowledged(runId: string, batch: AcknowledgedBatch): Promise<void> {
    const s = this.#s;
    // the caller writes acknowledgements one at a time, in the order they came: the last one written holds
    // the state of them all
    const mark = (c: pg.ClientBase | pg.Pool) =>
      c.query(
        `update ${s}.retl_runs set batches_acked = $2, acked_ahead = $3::int[], calls_acked = calls_acked + $4,
           bytes_acked = bytes_acked + $5
         where run_id = $1`,
        [runId, batch.upTo, batch.ahead, batch.calls, batch.bytes],
      );
    const ids = batch.messageIds;
    if (ids === undefined || ids.length === 0) {
      await mark(this.#db);
      return;
    }
    await inTransaction(this.#db, async (c) => {
      await mark(c);
      await c.query(
        `insert into ${s}.retl_sent_calls (sync_id, message_id, run_started_micros)
         select r.sync_id, m.id, r.started_at_micros
           from ${s}.retl_runs r cross join unnest($2::text[]) as m(id)
          where r.run_id = $1
         on conflict (sync_id, message_id) do update set run_started_micros = excluded.run_started_micros`,
        [runId, ids],
      );
    });
  }

  async finished(runId: string, outcome: RunOutcome): Promise<void> {
    const s = this.#s;
    if (outcome.status === 'interrupted') {
      // the run history says it failed, and why; its reverse-ETL state stays for the next run to take up
      await this.#db.query(
        `update ${s}.runs set status = 'failed', finished_at = now(), error = $2 where id = $1`,
        [runId, outcome.error],
      );
      return;
    }
    await inTransaction(this.#db, async (c) => {
      const status = outcome.status;
      const r = await c.query<{ sync_id: string }>(
        `update ${s}.retl_runs set status = $2, finished_at = now() where run_id = $1 returning sync_id::text`,
        [runId, status],
      );
      // a run taken up after it was interrupted keeps the error and time it stopped with, unless it succeeds
      await c.query(
        `update ${s}.runs set status = $2,
           finished_at = case when $2 = 'ok' then now() else coalesce(finished_at, now()) end,
           error = case when $2 = 'ok' then null else coalesce(error, $3) end,
           rows = coalesce($4, rows), calls = coalesce($5, calls), rejected = coalesce($6, rejected)
         where id = $1`,
        [
          runId,
          status,
          outcome.status === 'failed' ? outcome.error : null,
          outcome.status === 'ok' ? outcome.rows : null,
          outcome.status === 'ok' ? outcome.calls : null,
          outcome.status === 'ok' ? outcome.rejected : null,
        ],
      );
      const syncId = r.rows[0]?.sync_id;
      if (outcome.status === 'ok' && syncId !== undefined) {
        await c.query(`delete from ${s}.retl_sent_calls where sync_id = $1 and run_started_micros <= $2`, [
          syncId,
          outcome.nextSinceMicros,
        ]);
      }
    });
  }

  /** The manifest of a staged run of the sync; undefined when it has none (or is not the sync's). */
  async manifestOf(syncId: string, runId: string): Promise<string | undefined> {
    if (!/^\d{1,18}$/.test(runId)) return undefined;
    const r = await this.#db.query<{ manifest_key: string | null }>(
      `select manifest_key from ${this.#s}.retl_runs where sync_id = $1 and run_id = $2`,
      [syncId, runId],
    );
    return r.rows[0]?.manifest_key ?? undefined;
  }

  /** The sync's latest runs, newest first. */
  async recentRuns(syncId: string, limit = 10): Promise<RecentRun[]> {
    const r = await this.#db.query<{
      run_id: string;
      status: string;
      started_at: Date;
      finished_at: Date | null;
      rows: string;
      calls: string;
      calls_acked: string;
      rejected: string;
      error: string | null;
    }>(
      `select r.run_id::text, u.status, u.started_at, u.finished_at, r.rows::text, r.calls::text,
              r.calls_acked::text, r.rejected::text, u.error
         from ${this.#s}.retl_runs r join ${this.#s}.runs u on u.id = r.run_id
        where r.sync_id = $1 order by r.run_id desc limit $2`,
      [syncId, limit],
    );
    return r.rows.map((row) => ({
      runId: row.run_id,
      status: row.status,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
      rows: Number(row.rows),
      calls: Number(row.calls),
      delivered: Number(row.calls_acked),
      rejected: Number(row.rejected),
      error: row.error,
    }));
  }

  async alreadySent(syncId: string, messageIds: readonly string[]): Promise<ReadonlySet<string>> {
    if (messageIds.length === 0) return new Set();
    const r = await this.#db.query<{ message_id: string }>(
      `select message_id from ${this.#s}.retl_sent_calls where sync_id = $1 and message_id = any($2::text[])`,
      [syncId, messageIds],
    );
    return new Set(r.rows.map((row) => row.message_id));
  }

  async remember(syncId: string, runStartedMicros: number, messageIds: readonly string[]): Promise<void> {
    if (messageIds.length === 0) return;
    await this.#db.query(
      `insert into ${this.#s}.retl_sent_calls (sync_id, message_id, run_started_micros)
       select $1, m.id, $2 from unnest($3::text[]) as m(id)
       on conflict (sync_id, message_id) do update set run_started_micros = greatest(
         ${this.#s}.retl_sent_calls.run_started_micros, excluded.run_started_micros)`,
      [syncId, runStartedMicros, messageIds],
    );
  }
}
