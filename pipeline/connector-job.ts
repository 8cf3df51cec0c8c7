import type { Connector } from '../connectors/connector-store.js';
import { type ConnectorProgress, ProgressTable } from '../control/progress.js';
import { recordRun } from '../control/runs.js';
import { oneLine, WharfError, withContext } from '../core/errors.js';
import { isMissingObject } from '../db/classify.js';
import { tryAdvisoryLock } from '../db/postgres/locks.js';
import type { DestinationTarget } from '../destinations/destination-kind.js';
import { kindOf } from '../destinations/registry.js';
import { type LoadProgress, type LoadSummary, loadConnector } from '../loaders/load.js';
import type { Warehouse } from '../loaders/warehouse.js';
import { recordSafely } from './run-record.js';
import type { Runtime } from './runtime.js';

/** The advisory lock a connector's job holds on the control database: one job of a connector at a time. */
export function connectorLockKey(controlSchema: string, connectorId: string): string {
  return `wharf.load.${controlSchema}.${connectorId}`;
}

/** What a connector job did: its work (possibly nothing new), or skipped because another run holds its lock. */
export type ConnectorJobResult =
  | { readonly status: 'ok'; readonly summary: LoadSummary; readonly progress: ConnectorProgress | undefined }
  | { readonly status: 'skipped' };

export interface ConnectorJobOptions {
  /** Reload (re-deliver) every window in [from, to) from the stored files, whether done or not. */
  readonly replay?: { readonly from?: Date; readonly to?: Date };
  readonly onProgress?: (event: LoadProgress) => void;
}

/** The target a connector's kind opens: its settings, decrypted secret fields, schema. */
export async function destinationTarget(rt: Runtime, connector: Connector): Promise<DestinationTarget> {
  const creds = await (await rt.connectors()).credentials(connector.id);
  return {
    connectorId: String(connector.id),
    settings: creds.settings,
    secret: creds.secret,
    schema: connector.schema,
  };
}

/** Opens a warehouse connector's warehouse with its decrypted credentials; the caller closes it. */
export async function openWarehouse(rt: Runtime, connector: Connector): Promise<Warehouse> {
  return kindOf(connector).open(await destinationTarget(rt, connector));
}

/**
 * A connector's job: under its advisory try-lock (on a connection of its own to the control database, so that
 * a crash releases it at once), load every window it has not loaded yet (or replay a range). Every run is
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
        kind: 'load',
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
    const summary = await loadWithProgress(rt, connector, options);
    rt.metrics.rowsLoaded.inc({ connector: id }, summary.rowsStaged);
    await record('ok', summary.windows, summary.rowsStaged);
    return { status: 'ok', summary, progress: await progressTable(rt).get(control, id) };
  } catch (error) {
    const e = withContext(error, { connector: id });
    await record('failed', 0, 0, e.oneLine());
    throw e;
  } finally {
    await lock.release();
  }
}

function progressTable(rt: Runtime): ProgressTable {
  return new ProgressTable(rt.settings.controlSchema);
}

/**
 * Loads what the connector has not loaded yet, starting after the newest window its progress says it has seen
 * (a replay: its range), migrating the warehouse only when the catalog version changed since the last run or a
 * load fails on a missing table or column; then advances its progress in the control database.
 */
async function loadWithProgress(
  rt: Runtime,
  connector: Connector,
  options: ConnectorJobOptions,
): Promise<LoadSummary> {
  const id = String(connector.id);
  const control = await rt.control();
  const table = progressTable(rt);
  const progress = await table.get(control, id);
  const current = progress?.catalogVersion === rt.catalog.version;
  const warehouse = await openWarehouse(rt, connector);
  try {
    const load = (migrate: boolean) =>
      loadConnector({
        control,
        controlSchema: rt.settings.controlSchema,
        store: rt.store(),
        catalog: rt.catalog,
        target: { connectorId: id, account: String(connector.account), streams: connector.streams },
        warehouse,
        logger: rt.logger,
        migrate,
        ...(progress && !options.replay ? { afterSeq: progress.seenSeq } : {}),
        ...(options.replay ? { replay: options.replay } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
    let summary: LoadSummary;
    try {
      summary = await load(!current);
    } catch (error) {
      // the schema was changed since it was last migrated: migrate, then try once more
      if (!current || !isMissingObject(error)) throw error;
      rt.logger.warn({ connector: id }, `connector ${id}: a warehouse table or column is missing; migrating`);
      summary = await load(true);
    }
    const replay = options.replay !== undefined;
    await table.advance(control, id, {
      seenSeq: replay ? 0 : summary.seenSeq,
      catalogVersion: rt.catalog.version,
      lastWindowId: summary.lastWindow,
      lastWindowEnd: summary.lastWindowEnd,
      windows: replay ? 0 : summary.windows,
      rows: replay ? 0 : summary.rowsStaged,
    });
    if (!progress) {
      // the first run with progress kept: start its totals from what the ledger holds
      const ledger = await warehouse.status();
      await table.reset(control, id, {
        catalogVersion: rt.catalog.version,
        lastWindowId: ledger.lastWindowId,
        lastWindowEnd: ledger.lastWindowEnd,
        windows: ledger.windows,
        rows: ledger.rows,
        loadedAt: ledger.lastLoadedAt,
      });
    }
    return summary;
  } finally {
    await warehouse.close();
  }
}

/** A connector job's failure in one line (for reports that go on with the other connectors). */
export function failureLine(error: unknown, connectorId: string): string {
  return error instanceof WharfError
    ? withContext(error, { connector: connectorId }).oneLine()
    : oneLine(error);
}
