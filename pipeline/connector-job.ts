import type { Connector } from '../connectors/connector-store.js';
import { recordRun } from '../control/runs.js';
import { hasCode, oneLine, WharfError, withContext } from '../core/errors.js';
import { LOCK_NOT_AVAILABLE } from '../db/postgres/lock-timeout.js';
import { advisoryLockHolder, describeHolder, tryAdvisoryLock } from '../db/postgres/locks.js';
import type { DestinationTarget } from '../destinations/destination-kind.js';
import { kindOf } from '../destinations/registry.js';
import { type LoadProgress, type LoadSummary, loadConnector } from '../loaders/load.js';
import type { LedgerStatus, Warehouse } from '../loaders/warehouse.js';
import { recordSafely } from './run-record.js';
import type { Runtime } from './runtime.js';

/** The advisory lock a connector's job holds on the control database: one job of a connector at a time. */
export function connectorLockKey(controlSchema: string, connectorId: string): string {
  return `wharf.load.${controlSchema}.${connectorId}`;
}

/**
 * What a connector job did: its work (possibly nothing new), or skipped because another run holds its lock
 * (`heldBy` says which process, when it could be read).
 */
export type ConnectorJobResult =
  | { readonly status: 'ok'; readonly summary: LoadSummary; readonly ledger: LedgerStatus }
  | { readonly status: 'skipped'; readonly heldBy: string };

export interface ConnectorJobOptions {
  /** Reload (re-deliver) every window in [from, to) from the stored files, whether done or not. */
  readonly replay?: { readonly from?: Date; readonly to?: Date };
  readonly onProgress?: (event: LoadProgress) => void;
  /**
   * Stops the job (the daemon is stopping): no new transaction starts; one waiting for a lock ends at once and
   * a running one after the stop grace period (`--stop-grace`), rolled back.
   */
  readonly signal?: AbortSignal;
}

/** The target a connector's kind opens: its settings, decrypted secret fields, schema, session limits. */
export async function destinationTarget(
  rt: Runtime,
  connector: Connector,
  signal?: AbortSignal,
): Promise<DestinationTarget> {
  const creds = await (await rt.connectors()).credentials(connector.id);
  return {
    connectorId: String(connector.id),
    settings: creds.settings,
    secret: creds.secret,
    schema: connector.schema,
    session: rt.sessionLimits(signal),
  };
}

/** Opens a warehouse connector's warehouse with its decrypted credentials; the caller closes it. */
export async function openWarehouse(
  rt: Runtime,
  connector: Connector,
  signal?: AbortSignal,
): Promise<Warehouse> {
  return kindOf(connector).open(await destinationTarget(rt, connector, signal));
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
    const heldBy = await advisoryLockHolder(control, connectorLockKey(rt.settings.controlSchema, id)).then(
      describeHolder,
      () => describeHolder(undefined),
    );
    await record('skipped');
    return { status: 'skipped', heldBy };
  }
  try {
    const warehouse = await openWarehouse(rt, connector, options.signal);
    try {
      const summary = await loadConnector({
        control,
        controlSchema: rt.settings.controlSchema,
        store: rt.store(),
        catalog: rt.catalog,
        target: { connectorId: id, account: String(connector.account), streams: connector.streams },
        warehouse,
        logger: rt.logger,
        ...(options.replay ? { replay: options.replay } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const ledger = await warehouse.status();
      rt.metrics.rowsLoaded.inc({ connector: id }, summary.rowsStaged);
      await record('ok', summary.windows, summary.rowsStaged);
      return { status: 'ok', summary, ledger };
    } finally {
      await warehouse.close();
    }
  } catch (error) {
    const e = withContext(error, { connector: id });
    if (hasCode(e, LOCK_NOT_AVAILABLE)) rt.metrics.lockTimeouts.inc({ connector: id });
    await record('failed', 0, 0, e.oneLine());
    throw e;
  } finally {
    await lock.release();
  }
}

/** A connector job's failure in one line (for reports that go on with the other connectors). */
export function failureLine(error: unknown, connectorId: string): string {
  return error instanceof WharfError
    ? withContext(error, { connector: connectorId }).oneLine()
    : oneLine(error);
}
