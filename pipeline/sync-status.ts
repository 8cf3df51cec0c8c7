import { syncRunStats } from '../control/retl-stats.js';
import { isoMicros } from '../reverse-etl/sync-run.js';
import { retlStores } from './retl-context.js';
import type { Runtime } from './runtime.js';

/** A reverse-ETL sync in `wharf status`. */
export interface SyncStatus {
  readonly id: string;
  readonly name: string;
  readonly source: string;
  readonly type: string;
  readonly every: number;
  /** `active`, `failing` (parked, with the reason) or `disabled`. */
  readonly state: string;
  readonly stateReason: string | null;
  readonly lastRunAt: string | null;
  /** `ok`, `failed` (a run stopped by a transient error too, until the next run takes it up) or `running`. */
  readonly lastRunStatus: string | null;
  /** The instant the next run binds for `{{last_sync_time}}` (its lookback not taken off). */
  readonly lastSyncTime: string;
  /** Rows read, calls delivered, rows rejected since 00:00 UTC. */
  readonly rowsToday: number;
  readonly callsToday: number;
  readonly rejectedToday: number;
  readonly runsToday: number;
  readonly skipsToday: number;
  readonly failuresToday: number;
  readonly lastError: string | null;
  readonly lastErrorAt: string | null;
}

/** Per sync: state, last run, `last_sync_time`, today's rows, calls and rejections, last error. */
export async function syncStatuses(rt: Runtime): Promise<SyncStatus[]> {
  const stores = await retlStores(rt);
  const stats = await syncRunStats(await rt.control(), rt.settings.controlSchema);
  return (await stores.syncs.list()).map((sync) => {
    const s = stats.get(sync.id);
    return {
      id: sync.id,
      name: sync.name,
      source: sync.sourceId,
      type: sync.type,
      every: sync.everyMs,
      state: sync.state,
      stateReason: sync.stateReason,
      lastRunAt: s?.lastRunAt?.toISOString() ?? null,
      lastRunStatus: s?.lastRunStatus ?? null,
      lastSyncTime: isoMicros(s?.lastSyncTimeMicros ?? 0),
      rowsToday: s?.rowsToday ?? 0,
      callsToday: s?.callsToday ?? 0,
      rejectedToday: s?.rejectedToday ?? 0,
      runsToday: s?.runsToday ?? 0,
      skipsToday: s?.skipsToday ?? 0,
      failuresToday: s?.failuresToday ?? 0,
      lastError: s?.lastError ?? null,
      lastErrorAt: s?.lastErrorAt?.toISOString() ?? null,
    };
  });
}
