import type { Connector } from '../connectors/connector-store.js';
import { type DeliveryStats, deliveryStats } from '../control/deliveries.js';
import { ProgressTable } from '../control/progress.js';
import { connectorRunStats, statsFor } from '../control/runs.js';
import { WindowsTable } from '../control/windows.js';
import { errorMessage } from '../core/errors.js';
import type { LedgerStatus } from '../loaders/warehouse.js';
import { STAGING_FORMAT } from '../staging/manifest.js';
import { openWarehouse } from './connector-job.js';
import type { Runtime } from './runtime.js';
import { type SyncStatus, syncStatuses } from './sync-status.js';

export interface ConnectorStatus {
  id: string;
  account: string;
  engine: string;
  state: string;
  stateReason: string | null;
  lastWindow: string | null;
  lastWindowEnd: string | null;
  lagSeconds: number | null;
  rows: number;
  windowsLoaded: number;
  /** Committed windows after the last one it loaded: what it reads next. */
  windowsBehind: number | null;
  error: string | null;
  /** The last failed run's one-line reason (from the control `runs` table). */
  lastError: string | null;
  lastErrorAt: string | null;
  /** A bucket connector's deliveries: done, objects and bytes in all, the last one. */
  delivery?: DeliveryStats;
  /** Rows loaded, loads, skips and failures since 00:00 UTC. */
  rowsToday: number;
  loadsToday: number;
  skipsToday: number;
  failuresToday: number;
}

export interface StatusReport {
  /** Committed windows of the staging format connectors read. */
  readonly exportedWindows: number;
  readonly exportedUpTo: string | null;
  readonly connectors: readonly ConnectorStatus[];
  /** Reverse-ETL syncs. */
  readonly syncs: readonly SyncStatus[];
}

/** A connector that never ran. */
const NOTHING_YET = { lastWindowId: null, lastWindowEnd: null, rows: 0, windows: 0 } as const;

/** What a connector's warehouse ledger says (for a connector without progress in the control database). */
async function ledgerOf(rt: Runtime, c: Connector): Promise<LedgerStatus> {
  const wh = await openWarehouse(rt, c);
  try {
    return await wh.status();
  } finally {
    await wh.close();
  }
}

export interface StatusOptions {
  /**
   * Ask the warehouse of a connector that has no progress in the control database (it never ran under this
   * version); default true. Without (the API, which answers from the control database alone) such a connector
   * shows nothing loaded until its next run.
   */
  readonly warehouses?: boolean;
}

/** Per connector: state, last window loaded, lag, rows, what it has still to read, and today's runs. */
export async function statusReport(rt: Runtime, options: StatusOptions = {}): Promise<StatusReport> {
  const control = await rt.control();
  const store = await rt.connectors();
  const windows = new WindowsTable(rt.settings.controlSchema);
  const exported = await windows.summary(control, STAGING_FORMAT);
  const runs = await connectorRunStats(control, rt.settings.controlSchema);
  const known = await new ProgressTable(rt.settings.controlSchema).all(control);
  const deliveries = await deliveryStats(control, rt.settings.controlSchema);
  // connectors at the same last window (all those up to date, all that never loaded) share one count
  const counts = new Map<number | null, Promise<number>>();
  const behind = (end: Date | null): Promise<number> => {
    const key = end?.getTime() ?? null;
    let n = counts.get(key);
    if (!n) counts.set(key, (n = windows.countEndingAfter(control, STAGING_FORMAT, end)));
    return n;
  };
  const out: ConnectorStatus[] = [];
  for (const c of await store.list()) {
    const r = statsFor(runs, String(c.id));
    const s: ConnectorStatus = {
      id: String(c.id),
      account: String(c.account),
      engine: c.engine,
      state: c.state,
      stateReason: c.stateReason ?? null,
      lastWindow: null,
      lastWindowEnd: null,
      lagSeconds: null,
      rows: 0,
      windowsLoaded: 0,
      windowsBehind: null,
      error: null,
      lastError: r.lastError,
      lastErrorAt: r.lastErrorAt?.toISOString() ?? null,
      rowsToday: r.rowsToday,
      loadsToday: r.loadsToday,
      skipsToday: r.skipsToday,
      failuresToday: r.failuresToday,
    };
    if (c.family === 'bucket') {
      s.delivery = deliveries.get(String(c.id)) ?? {
        deliveries: 0,
        objects: 0,
        bytes: 0,
        lastDelivery: null,
        lastDeliveredAt: null,
      };
    }
    if (c.state !== 'disabled') {
      try {
        // from the control database; a connector that never ran under this version: its warehouse's ledger
        const l =
          known.get(String(c.id)) ??
          (c.family === 'warehouse' && options.warehouses !== false ? await ledgerOf(rt, c) : NOTHING_YET);
        s.lastWindow = l.lastWindowId;
        s.lastWindowEnd = l.lastWindowEnd?.toISOString() ?? null;
        s.lagSeconds = l.lastWindowEnd
          ? Math.round((exported.dbNow.getTime() - l.lastWindowEnd.getTime()) / 1000)
          : null;
        s.rows = l.rows;
        s.windowsLoaded = l.windows;
        s.windowsBehind = await behind(l.lastWindowEnd);
      } catch (error) {
        s.error = errorMessage(error);
      }
    }
    out.push(s);
  }
  return {
    exportedWindows: exported.count,
    exportedUpTo: exported.newestEnd?.toISOString() ?? null,
    connectors: out,
    syncs: await syncStatuses(rt),
  };
}
