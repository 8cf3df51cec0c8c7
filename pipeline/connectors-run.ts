import type { Connector } from '../connectors/connector-store.js';
import { withContext } from '../core/errors.js';
import type { DeliverySummary } from '../delivery/deliver-connector.js';
import type { LoadProgress, LoadSummary } from '../loaders/load.js';
import { runConnectorJob } from './connector-job.js';
import type { Runtime } from './runtime.js';

/** A connector that was not loaded because of its state: parked (`failing`, with its reason) or `paused`. */
export interface NotLoaded {
  readonly connector: string;
  readonly state: 'failing' | 'paused';
  readonly reason: string | null;
}

export interface ConnectorsRun {
  /** Warehouse connectors' loads. */
  connectors: LoadSummary[];
  /** Bucket connectors' deliveries. */
  deliveries: DeliverySummary[];
  failures: { connector: string; error: string }[];
  /** Connectors another process was loading (it holds their lock): which process, in `heldBy`. */
  skipped: { connector: string; heldBy: string }[];
  /** Connectors left out because they are parked or paused (never with `connector`, which loads it anyway). */
  notLoaded: NotLoaded[];
}

/** Follows one connector's job (a progress bar in a terminal). */
export interface JobProgress {
  update(event: LoadProgress): void;
  stop(): void;
}

export interface ConnectorsRunOptions {
  /** Only this connector (its failure is thrown), whatever its state; default every active connector. */
  readonly connector?: string;
  readonly replay?: { readonly from?: Date; readonly to?: Date };
  readonly progress?: (connectorId: string) => JobProgress;
}

/**
 * Runs the job of one connector (or of every active one, one after the other), each under its lock; a failure
 * of one does not stop the others and is reported in one line. Parked and paused connectors are named, not
 * loaded. What `wharf load`, `sync` and `replay` do.
 */
export async function runConnectors(rt: Runtime, options: ConnectorsRunOptions = {}): Promise<ConnectorsRun> {
  const store = await rt.connectors();
  const all = options.connector ? [await store.get(options.connector)] : await store.list();
  const out: ConnectorsRun = { connectors: [], deliveries: [], failures: [], skipped: [], notLoaded: [] };
  const targets: Connector[] = [];
  for (const c of all) {
    if (options.connector || c.state === 'active') targets.push(c);
    else if (c.state === 'failing' || c.state === 'paused') {
      out.notLoaded.push({ connector: String(c.id), state: c.state, reason: c.stateReason ?? null });
    }
  }
  for (const connector of targets) {
    const bar = options.progress?.(String(connector.id));
    try {
      const result = await runConnectorJob(rt, connector, {
        ...(options.replay ? { replay: options.replay } : {}),
        ...(bar ? { onProgress: (e: LoadProgress) => bar.update(e) } : {}),
      });
      if (result.status === 'skipped') {
        out.skipped.push({ connector: String(connector.id), heldBy: result.heldBy });
      } else {
        if (result.family === 'warehouse') out.connectors.push(result.summary);
        else out.deliveries.push(result.summary);
      }
    } catch (error) {
      const e = withContext(error, { connector: String(connector.id) });
      if (options.connector) throw e;
      // reported once by the caller (one line per failure), not logged here as well
      rt.logger.debug({ connector: connector.id, err: e.oneLine() }, `connector ${connector.id} failed`);
      out.failures.push({ connector: String(connector.id), error: e.oneLine() });
    } finally {
      bar?.stop();
    }
  }
  return out;
}
