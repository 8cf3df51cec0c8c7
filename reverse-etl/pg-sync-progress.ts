import type pg from 'pg';
import { quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';
import type { CallManifest } from './call-files.js';
import type {
  AcknowledgedBatch,
  RunOutcome,
  SentCallLedger,
  SyncProgress,
  SyncState,
} from './sync-progress.js';

/**
 * `SyncProgress` and `SentCallLedger` on the control tables of `retlControlMigrationSql` (`runs`,
 * `retl_runs`, `retl_syncs`, `retl_sent_calls`). Ids are the tables' bigints, as text.
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
    const last = await this.#db.query<{ micros: string | null }>(
      `select coalesce(
         (select r.started_at_micros from ${s}.retl_runs r
           where r.sync_id = $1 and r.status = 'ok' order by r.run_id desc limit 1),
         (select y.start_at_micros from ${s}.retl_syncs y where y.id = $1), 0)::text as micros`,
      [syncId],
    );
    const open = await this.#db.query<{ run_id: string; manifest_key: string | null; batches_acked: number }>(
      `select run_id::text, case when status = 'delivering' then manifest_key end as manifest_key, batches_acked
         from ${s}.retl_runs where sync_id = $1 and status in ('reading', 'delivering')
        order by run_id desc limit 1`,
      [syncId],
    );
    const row = open.rows[0];
    return {
      lastSyncTimeMicros: Number(last.rows[0]?.micros ?? 0),
      ...(row === undefined
        ? {}
        : {
            unfinished: {
              runId: row.run_id,
              manifestKey: row.manifest_key ?? undefined,
              acknowledgedBatches: row.batches_acked,
            },
          }),
    };
  }

  async begin(syncId: string): Promise<string> {
    const s = this.#s;
    return inTransaction(this.#db, async (c) => {
      const run = await c.query<{ id: string }>(
        `insert into ${s}.runs (kind, sync_id) values ('retl', $1) returning id::text`,
        [syncId],
      );
      const id = run.rows[0]!.id;
      await c.query(`insert into ${s}.retl_runs (run_id, sync_id) values ($1, $2)`, [id, syncId]);
      return id;
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
      await c.query(`update ${s}.runs set rows = $2 where id = $1`, [runId, m.rows]);
    });
  }

  async acknowledged(runId: string, batch: AcknowledgedBatch): Promise<void> {
    const s = this.#s;
    await inTransaction(this.#db, async (c) => {
      // only the next batch moves the mark: a repeated acknowledgement changes nothing
      await c.query(
        `update ${s}.retl_runs set batches_acked = $2 + 1, calls_acked = calls_acked + $3,
           bytes_acked = bytes_acked + $4
         where run_id = $1 and batches_acked = $2`,
        [runId, batch.index, batch.calls, batch.bytes],
      );
      if (batch.messageIds !== undefined && batch.messageIds.length > 0) {
        await c.query(
          `insert into ${s}.retl_sent_calls (sync_id, message_id, run_started_micros)
           select r.sync_id, m.id, r.started_at_micros
             from ${s}.retl_runs r cross join unnest($2::text[]) as m(id)
            where r.run_id = $1
           on conflict (sync_id, message_id) do update set run_started_micros = excluded.run_started_micros`,
          [runId, batch.messageIds],
        );
      }
    });
  }

  async finished(runId: string, outcome: RunOutcome): Promise<void> {
    const s = this.#s;
    await inTransaction(this.#db, async (c) => {
      const status = outcome.status;
      const r = await c.query<{ sync_id: string }>(
        `update ${s}.retl_runs set status = $2, finished_at = now() where run_id = $1 returning sync_id::text`,
        [runId, status],
      );
      await c.query(
        `update ${s}.runs set status = $2, finished_at = now(), error = $3, rows = coalesce($4, rows) where id = $1`,
        [
          runId,
          status,
          outcome.status === 'failed' ? outcome.error : null,
          outcome.status === 'ok' ? outcome.rows : null,
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

  async alreadySent(syncId: string, messageIds: readonly string[]): Promise<ReadonlySet<string>> {
    if (messageIds.length === 0) return new Set();
    const r = await this.#db.query<{ message_id: string }>(
      `select message_id from ${this.#s}.retl_sent_calls where sync_id = $1 and message_id = any($2::text[])`,
      [syncId, messageIds],
    );
    return new Set(r.rows.map((row) => row.message_id));
  }
}
