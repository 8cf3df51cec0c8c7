import type pg from 'pg';
import { quotePg } from '../db/postgres/quote.js';

/** What a sync's runs say: today's counts (since 00:00 UTC), its last run, its last failure. */
export interface SyncRunStats {
  readonly rowsToday: number;
  /** Calls the receiver acknowledged today (what platforms bill). */
  readonly callsToday: number;
  readonly rejectedToday: number;
  readonly runsToday: number;
  readonly skipsToday: number;
  readonly failuresToday: number;
  readonly lastRunAt: Date | null;
  /** `ok`, `failed` (a run stopped by a transient error too, until the next run takes it up) or `running`. */
  readonly lastRunStatus: string | null;
  /** What `{{last_sync_time}}` stands for in the next run (µs since the epoch, warehouse clock). */
  readonly lastSyncTimeMicros: number;
  readonly lastError: string | null;
  readonly lastErrorAt: Date | null;
}

interface StatsRow {
  sync_id: string;
  rows_today: string | null;
  calls_today: string | null;
  rejected_today: string | null;
  runs_today: string | null;
  skips_today: string | null;
  failures_today: string | null;
  last_run_at: Date | null;
  last_run_status: string | null;
  last_sync_micros: string;
  last_error: string | null;
  last_error_at: Date | null;
}

/** Run statistics of every sync, by id (from `runs` and `retl_runs`). */
export async function syncRunStats(
  control: pg.Pool | pg.ClientBase,
  controlSchema: string,
): Promise<Map<string, SyncRunStats>> {
  const s = quotePg(controlSchema);
  const { rows } = await control.query<StatsRow>(
    `with today as (select date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' as t)
     select y.id::text as sync_id, t.rows_today, t.calls_today, t.rejected_today, t.runs_today, t.skips_today,
            t.failures_today, last.started_at as last_run_at, last.status as last_run_status,
            coalesce(ok.started_at_micros, 0)::text as last_sync_micros,
            err.error as last_error, err.finished_at as last_error_at
       from ${s}.retl_syncs y cross join today
       left join lateral (
         select sum(r.rows) as rows_today, sum(r.calls_acked) as calls_today, sum(r.rejected) as rejected_today,
                count(*) filter (where u.status = 'ok' and r.run_id is not null) as runs_today,
                count(*) filter (where u.status = 'skipped') as skips_today,
                count(*) filter (where u.status = 'failed') as failures_today
           from ${s}.runs u left join ${s}.retl_runs r on r.run_id = u.id
          where u.sync_id = y.id and u.started_at >= today.t) t on true
       left join lateral (
         select u.started_at, u.status from ${s}.retl_runs r join ${s}.runs u on u.id = r.run_id
          where r.sync_id = y.id order by r.run_id desc limit 1) last on true
       left join lateral (
         select r.started_at_micros from ${s}.retl_runs r
          where r.sync_id = y.id and r.status = 'ok' order by r.run_id desc limit 1) ok on true
       left join lateral (
         select u.error, u.finished_at from ${s}.runs u
          where u.sync_id = y.id and u.status = 'failed' order by u.id desc limit 1) err on true`,
  );
  const out = new Map<string, SyncRunStats>();
  for (const r of rows) {
    out.set(r.sync_id, {
      rowsToday: Number(r.rows_today ?? 0),
      callsToday: Number(r.calls_today ?? 0),
      rejectedToday: Number(r.rejected_today ?? 0),
      runsToday: Number(r.runs_today ?? 0),
      skipsToday: Number(r.skips_today ?? 0),
      failuresToday: Number(r.failures_today ?? 0),
      lastRunAt: r.last_run_at,
      lastRunStatus: r.last_run_status,
      lastSyncTimeMicros: Number(r.last_sync_micros),
      lastError: r.last_error,
      lastErrorAt: r.last_error_at,
    });
  }
  return out;
}
