import type { Connector } from '../connectors/connector-store.js';
import { withContext } from '../core/errors.js';
import type { DeliverySummary } from '../delivery/deliver-connector.js';
import type { LoadProgress, LoadSummary } from '../loaders/load.js';
import { runConnectorJob } from './connector-job.js';
import type { Runtime } from './runtime.js';

export interface ConnectorsRun {
  /** Warehouse connectors' loads. */
  connectors: LoadSummary[];
  /** Bucket connectors' deliveries. */
  deliveries: DeliverySummary[];
  failures: { connector: string; error: string }[];
  skipped: string[];
}

/** Follows one connector's job (a progress bar in a terminal). */
export interface JobProgress {
  update(event: LoadProgress): void;
  stop(): void;
}

export interface ConnectorsRunOptions {
  /** Only this connector (its failure is thrown); default every active connector. */
  readonly connector?: string;
  readonly replay?: { readonly from?: Date; readonly to?: Date };
  readonly progress?: (connectorId: string) => JobProgress;
}

/**
 * Runs the job of one connector (or of every active one, one after the other), each under its lock; a failure
 * of one does not stop the others and is reported in one line. What `wharf load`, `sync` and `replay` do.
 */
export async function runConnectors(rt: Runtime, options: ConnectorsRunOptions = {}): Promise<ConnectorsRun> {
  const store = await rt.connectors();
  const targets: Connector[] = options.connector
    ? [await store.get(options.connector)]
    : (await store.list()).filter((c) => c.state === 'active');
  const out: ConnectorsRun = { connectors: [], deliveries: [], failures: [], skipped: [] };
  for (const connector of targets) {
    const bar = options.progress?.(String(connector.id));
    try {
      const result = await runConnectorJob(rt, connector, {
        ...(options.replay ? { replay: options.replay } : {}),
        ...(bar ? { onProgress: (e: LoadProgress) => bar.update(e) } : {}),
      });
      if (result.status === 'skipped') {
        rt.logger.info(
          { connector: connector.id },
          `connector ${connector.id} is being loaded by another process; skipped`,
        );
        out.skipped.push(String(connector.id));
      } else {
        if (result.family === 'warehouse') out.connectors.push(result.summary);
        else out.deliveries.push(result.summary);
      }
    } catch (error) {
      const e = withContext(error, { connector: String(connector.id) });
      if (options.connector) throw e;
      rt.logger.error({ connector: connector.id, err: e.oneLine() }, `connector ${connector.id} failed`);
      out.failures.push({ connector: String(connector.id), error: e.oneLine() });
    } finally {
      bar?.stop();
    }
  }
  return out;
}
