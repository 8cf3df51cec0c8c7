import type { Connector } from '../connectors/connector-store.js';
import { type ConnectorProgress, ProgressTable } from '../control/progress.js';
import { type RunKind, recordRun } from '../control/runs.js';
import { withContext } from '../core/errors.js';
import { tryAdvisoryLock } from '../db/postgres/locks.js';
import type { DeliverySummary } from '../delivery/deliver-connector.js';
import { kindOf } from '../destinations/registry.js';
import type { LoadProgress, LoadSummary } from '../loaders/load.js';
import { deliverBucket } from './bucket-job.js';
import { recordSafely } from './run-record.js';
import type { Runtime } from './runtime.js';
import { loadWarehouse } from './warehouse-job.js';

export { destinationTarget } from './destination-target.js';
export { openWarehouse } from './warehouse-job.js';

/** The advisory lock a connector's job holds on the control database: one job of a connector at a time. */
export function connectorLockKey(controlSchema: string, connectorId: string): string {
  return `wharf.load.${controlSchema}.${connectorId}`;
}

/** What a connector's work did: a warehouse load, or a bucket delivery. */
export type ConnectorWork =
  | { readonly family: 'warehouse'; readonly summary: LoadSummary }
  | { readonly family: 'bucket'; readonly summary: DeliverySummary };

/** What a connector job did: its work (possibly nothing new), or skipped because another run holds its lock. */
export type ConnectorJobResult =
  | (ConnectorWork & { readonly status: 'ok'; readonly progress: ConnectorProgress | undefined })
  | { readonly status: 'skipped' };

export interface ConnectorJobOptions {
  /** Reload (re-deliver) every window in [from, to) from the stored files, whether done or not. */
  readonly replay?: { readonly from?: Date; readonly to?: Date };
  readonly onProgress?: (event: LoadProgress) => void;
}

/** Windows (warehouse) or deliveries (bucket) and rows a connector's work moved. */
export function workCounts(work: ConnectorWork): { readonly windows: number; readonly rows: number } {
  return work.family === 'warehouse'
    ? { windows: work.summary.windows, rows: work.summary.rowsStaged }
    : { windows: work.summary.deliveries, rows: work.summary.rows };
}

/** The run history's kind for a connector of this family. */
const RUN_KIND: Readonly<Record<Connector['family'], RunKind>> = { warehouse: 'load', bucket: 'deliver' };

/** Does a connector's work: a warehouse's load, a bucket's deliveries (one function per family). */
async function doWork(
  rt: Runtime,
  connector: Connector,
  options: ConnectorJobOptions,
): Promise<ConnectorWork> {
  const kind = kindOf(connector);
  return kind.family === 'warehouse'
    ? { family: 'warehouse', summary: await loadWarehouse(rt, connector, options) }
    : { family: 'bucket', summary: await deliverBucket(rt, connector, options) };
}

/**
 * A connector's job: under its advisory try-lock (on a connection of its own to the control database, so that
 * a crash releases it at once), load (or deliver) every window it has not yet, or replay a range. Every run is
 * recorded in the control `runs` table (ok, skipped or failed, with the one-line reason) and counted in the
 * metrics, whoever started it. Errors carry the connector in their context.
 */
export async function runConnectorJob(
  rt: Runtime,
  connector: Connector,
  options: ConnectorJobOptions = {},
): Promise<ConnectorJobResult> {
  const id = String(connector.id);
  const startedAt = new Date();
  const control = await rt.control();
  const record = (status: 'ok' | 'skipped' | 'failed', windows = 0, rows = 0, error?: string) =>
    recordSafely(rt, () =>
      recordRun(control, rt.settings.controlSchema, {
        connectorId: id,
        kind: RUN_KIND[connector.family],
        startedAt,
        finishedAt: new Date(),
        status,
        windows,
        rows,
        ...(error ? { error } : {}),
      }),
    );
  let lock: Awaited<ReturnType<typeof tryAdvisoryLock>>;
  try {
    lock = await tryAdvisoryLock(
      rt.controlUrl(),
      connectorLockKey(rt.settings.controlSchema, id),
      'wharf-load-lock',
    );
  } catch (error) {
    throw withContext(error, { connector: id });
  }
  if (!lock) {
    rt.metrics.loadSkips.inc({ connector: id });
    await record('skipped');
    return { status: 'skipped' };
  }
  try {
    const work = await doWork(rt, connector, options);
    const { windows, rows } = workCounts(work);
    rt.metrics.rowsLoaded.inc({ connector: id }, rows);
    await record('ok', windows, rows);
    const progress = await new ProgressTable(rt.settings.controlSchema).get(control, id);
    return { ...work, status: 'ok', progress };
  } catch (error) {
    const e = withContext(error, { connector: id });
    await record('failed', 0, 0, e.oneLine());
    throw e;
  } finally {
    await lock.release();
  }
}
