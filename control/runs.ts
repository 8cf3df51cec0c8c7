import type pg from 'pg';
import { quotePg } from '../db/postgres/quote.js';

export type RunStatus = 'ok' | 'failed' | 'skipped';

/** What ran: an export, a connector's load (warehouse) or delivery (bucket), retention, a reverse-ETL sync. */
export type RunKind = 'export' | 'load' | 'deliver' | 'retention' | 'sync';

/** One finished run, as kept in the control `runs` table. */
export interface RunRecord {
  readonly connectorId: string | null;
  readonly kind: RunKind;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly status: RunStatus;
  readonly windows: number;
  readonly rows: number;
  /** The one-line reason of a failure. */
  readonly error?: string;
  /** The reverse-ETL sync the run belongs to (kind `sync`). */
  readonly syncId?: string;
}

/** Appends a finished run to `<control schema>.runs`. */
export async function recordRun(
  control: pg.Pool | pg.ClientBase,
  controlSchema: string,
  run: RunRecord,
): Promise<void> {
  const values = [
    run.connectorId,
    run.kind,
    run.startedAt,
    run.finishedAt,
    run.status,
    run.windows,
    run.rows,
    run.error ?? null,
  ];
  // sync_id comes with the reverse-ETL migration: named only for a sync's run
  const sync = run.syncId === undefined ? ['', ''] : [', sync_id', ', $9'];
  await control.query(
    `insert into ${quotePg(controlSchema)}.runs (connector_id, kind, started_at, finished_at, status, windows, rows, error${sync[0]})
     values ($1, $2, $3, $4, $5, $6, $7, $8${sync[1]})`,
    run.syncId === undefined ? values : [...values, run.syncId],
  );
}

/**
 * Deletes the run history of exports, loads, deliveries and retention that started more than `olderThanMs`
 * ago (by the database clock), in batches of `batch` rows so that no statement holds many locks or runs long.
 * Reverse-ETL runs are kept: a sync's next `last_sync_time` and its replays come from them. Returns the rows
 * deleted.
 */
export async function pruneRuns(
  control: pg.Pool | pg.ClientBase,
  controlSchema: string,
  olderThanMs: number,
  batch = 10_000,
): Promise<number> {
  const runs = `${quotePg(controlSchema)}.runs`;
  let deleted = 0;
  for (;;) {
    const { rowCount } = await control.query(
      `delete from ${runs} where id in (
         select id from ${runs}
          where started_at < now() - make_interval(secs => $1::double precision / 1000) and kind <> 'sync'
          order by started_at limit $2)`,
      [olderThanMs, batch],
    );
    deleted += rowCount ?? 0;
    if ((rowCount ?? 0) < batch) return deleted;
  }
}

/** Per connector, what its load runs say since the start of the day (UTC) and its last failure. */
export interface ConnectorRunStats {
  readonly rowsToday: number;
  readonly loadsToday: number;
  readonly skipsToday: number;
  readonly failuresToday: number;
  readonly lastError: string | null;
  readonly lastErrorAt: Date | null;
  readonly lastRunAt: Date | null;
}

const EMPTY: ConnectorRunStats = {
  rowsToday: 0,
  loadsToday: 0,
  skipsToday: 0,
  failuresToday: 0,
  lastError: null,
  lastErrorAt: null,
  lastRunAt: null,
};

/** Load run statistics of every connector that has runs; `statsFor` gives zeros for the others. */
export async function connectorRunStats(
  control: pg.Pool | pg.ClientBase,
  controlSchema: string,
): Promise<Map<string, ConnectorRunStats>> {
  const runs = `${quotePg(controlSchema)}.runs`;
  const { rows } = await control.query<{
    connector_id: string;
    rows_today: string;
    loads_today: string;
    skips_today: string;
    failures_today: string;
    last_run_at: Date | null;
    last_error: string | null;
    last_error_at: Date | null;
  }>(
    `with today as (select date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' as t)
     select r.connector_id,
            coalesce(sum(r.rows) filter (where r.status = 'ok' and r.started_at >= today.t), 0) as rows_today,
            count(*) filter (where r.status = 'ok' and r.started_at >= today.t) as loads_today,
            count(*) filter (where r.status = 'skipped' and r.started_at >= today.t) as skips_today,
            count(*) filter (where r.status = 'failed' and r.started_at >= today.t) as failures_today,
            max(r.finished_at) as last_run_at,
            (select f.error from ${runs} f where f.connector_id = r.connector_id and f.kind in ('load', 'deliver') and f.status = 'failed'
              order by f.finished_at desc limit 1) as last_error,
            max(r.finished_at) filter (where r.status = 'failed') as last_error_at
       from ${runs} r cross join today
      where r.kind in ('load', 'deliver') and r.connector_id is not null
      group by r.connector_id`,
  );
  const out = new Map<string, ConnectorRunStats>();
  for (const r of rows) {
    out.set(String(r.connector_id), {
      rowsToday: Number(r.rows_today),
      loadsToday: Number(r.loads_today),
      skipsToday: Number(r.skips_today),
      failuresToday: Number(r.failures_today),
      lastError: r.last_error,
      lastErrorAt: r.last_error_at,
      lastRunAt: r.last_run_at,
    });
  }
  return out;
}

/** A connector's statistics from `connectorRunStats`, zeros when it has no runs. */
export function statsFor(stats: Map<string, ConnectorRunStats>, connectorId: string): ConnectorRunStats {
  return stats.get(connectorId) ?? EMPTY;
}
