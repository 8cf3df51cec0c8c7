import type pg from 'pg';
import type { Connector } from '../connectors/connector-store.js';
import { doneWindows } from '../control/deliveries.js';
import { WindowsTable } from '../control/windows.js';
import { errorMessage, WharfError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/logger.js';
import type { Warehouse } from '../loaders/warehouse.js';
import { readManifest, STAGING_FORMAT } from '../staging/manifest.js';
import type { StagingStore } from '../staging/staging-store.js';

/** What retention needs: the control database, the staging store, the connectors and their warehouses. */
export interface RetentionDeps {
  readonly control: pg.Pool;
  readonly controlSchema: string;
  readonly store: StagingStore;
  /** Every connector (disabled ones are ignored). */
  connectors(): Promise<readonly Connector[]>;
  /** A warehouse connector's warehouse (its ledger says what it loaded). */
  openWarehouse(connector: Connector): Promise<Warehouse>;
  readonly logger?: Logger;
}

export interface PruneOptions {
  /** Windows that ended more than this long ago (by the database clock) may go. */
  readonly olderThanMs: number;
  /** The formats connectors load (default csv): only their windows are pruned. */
  readonly formats?: readonly string[];
}

export interface PruneSummary {
  /** Windows whose files and control row were removed. */
  windows: number;
  files: number;
  /** Old windows kept because some connector has not loaded them (or its ledger could not be read). */
  kept: number;
  /** True when another process was pruning (nothing done). */
  skipped: boolean;
}

interface Candidate {
  readonly format: string;
  readonly windowId: string;
  readonly manifestKey: string;
}

/**
 * Deletes the staging files of windows older than `olderThanMs` that every non-disabled connector's
 * ledger holds for all of its streams, then the window's manifest, then its control `windows` row.
 * A window some connector has not loaded is never removed; when a connector's ledger cannot be read,
 * nothing is removed. With no connector at all, nothing is removed either. The newest window of a format
 * always stays (the exporter continues from it). One pruner at a time (advisory try-lock).
 */
export async function pruneStaging(deps: RetentionDeps, options: PruneOptions): Promise<PruneSummary> {
  const log = deps.logger ?? silentLogger();
  const summary: PruneSummary = { windows: 0, files: 0, kept: 0, skipped: false };
  const lockKey = `wharf.retention.${deps.controlSchema}`;
  const client = await deps.control.connect();
  let locked = false;
  try {
    locked = (
      await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [lockKey])
    ).rows[0]!.ok;
    if (!locked) {
      summary.skipped = true;
      return summary;
    }
    const windowsTable = new WindowsTable(deps.controlSchema);
    const candidates: Candidate[] = (
      await windowsTable.olderThan(client, options.formats ?? [STAGING_FORMAT], options.olderThanMs)
    ).map((w) => ({ format: w.format, windowId: w.id, manifestKey: w.manifestKey }));
    if (candidates.length === 0) return summary;

    const connectors = (await deps.connectors()).filter((c) => c.state !== 'disabled');
    if (connectors.length === 0) {
      summary.kept = candidates.length;
      return summary;
    }
    let prunable = new Set(candidates.map((c) => c.windowId));
    for (const connector of connectors) {
      let loaded: Map<string, Set<string>>;
      try {
        if (connector.family === 'bucket') {
          // a bucket connector holds a window once a delivery of it is done (all its streams at once)
          const done = await doneWindows(client, deps.controlSchema, String(connector.id), [...prunable]);
          loaded = new Map(connector.streams.map((stream) => [stream, done]));
        } else {
          const warehouse = await deps.openWarehouse(connector);
          try {
            loaded = await warehouse.loaded([...prunable]);
          } finally {
            await warehouse.close();
          }
        }
      } catch (error) {
        log.warn(
          { connector: connector.id, err: errorMessage(error) },
          `retention: cannot read the ledger of connector ${connector.id}; nothing pruned`,
        );
        summary.kept = candidates.length;
        return summary;
      }
      prunable = new Set(
        [...prunable].filter((id) =>
          connector.streams.every((stream) => loaded.get(stream)?.has(id) ?? false),
        ),
      );
      if (prunable.size === 0) break;
    }
    summary.kept = candidates.length - prunable.size;

    for (const window of candidates.filter((c) => prunable.has(c.windowId))) {
      summary.files += await deleteWindowFiles(deps.store, window);
      await windowsTable.delete(client, window.format, window.windowId);
      summary.windows++;
      log.debug({ window: window.windowId }, 'retention: window pruned');
    }
    return summary;
  } finally {
    if (locked) await client.query('select pg_advisory_unlock(hashtext($1))', [lockKey]).catch(() => {});
    client.release();
  }
}

/** Deletes a window's files (those its manifest lists, then any left under its folder), the manifest last. */
async function deleteWindowFiles(store: StagingStore, window: Candidate): Promise<number> {
  const folder = window.manifestKey.slice(0, window.manifestKey.lastIndexOf('/') + 1);
  if (!folder.includes(window.windowId)) {
    throw new WharfError(`manifest ${window.manifestKey} is not in the folder of window ${window.windowId}`, {
      context: { window: window.windowId, key: window.manifestKey },
      hint: 'retention only prunes windows laid out by this Wharf version',
    });
  }
  const keys = new Set<string>();
  try {
    const manifest = await readManifest(store, window.manifestKey);
    for (const f of manifest.files) keys.add(f.key);
  } catch {
    // the manifest is gone already (an interrupted prune): the folder listing below finds the rest
  }
  for await (const key of store.list(folder)) keys.add(key);
  keys.delete(window.manifestKey);
  let deleted = 0;
  for (const key of keys) {
    await store.delete(key);
    deleted++;
  }
  if (await store.stat(window.manifestKey)) {
    await store.delete(window.manifestKey);
    deleted++;
  }
  return deleted;
}
