import type { Connector } from '../connectors/connector-store.js';
import { ProgressTable } from '../control/progress.js';
import { isMissingObject } from '../db/classify.js';
import { kindOf } from '../destinations/registry.js';
import { type LoadSummary, loadConnector } from '../loaders/load.js';
import type { Warehouse } from '../loaders/warehouse.js';
import type { ConnectorJobOptions } from './connector-job.js';
import { destinationTarget } from './destination-target.js';
import type { Runtime } from './runtime.js';

/** Opens a warehouse connector's warehouse with its decrypted credentials; the caller closes it. */
export async function openWarehouse(rt: Runtime, connector: Connector): Promise<Warehouse> {
  const kind = kindOf(connector);
  if (kind.family !== 'warehouse') throw new Error(`connector ${connector.id} is not a warehouse connector`);
  return kind.open(await destinationTarget(rt, connector));
}

/**
 * Loads what the connector has not loaded yet, starting after the newest window its progress says it has seen
 * (a replay: its range), migrating the warehouse only when the catalog version changed since the last run or a
 * load fails on a missing table or column; then advances its progress in the control database.
 */
export async function loadWarehouse(
  rt: Runtime,
  connector: Connector,
  options: ConnectorJobOptions,
): Promise<LoadSummary> {
  const id = String(connector.id);
  const control = await rt.control();
  const table = new ProgressTable(rt.settings.controlSchema);
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
