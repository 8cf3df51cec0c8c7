import { Counter } from 'prom-client';
import type { PipelineMetrics } from './metrics.js';

/** The reverse-ETL counters, on the registry of a runtime's `PipelineMetrics` (served by `/metrics`). */
export interface SyncMetrics {
  readonly rows: Counter<'sync'>;
  readonly calls: Counter<'sync'>;
  readonly rejected: Counter<'sync'>;
  /** Runs by outcome: `ok`, `skipped`, `failed`. */
  readonly runs: Counter<'sync' | 'status'>;
  /** Failed runs by error kind: `transient`, `terminal`, `usage`. */
  readonly failures: Counter<'sync' | 'kind'>;
  /** Batch requests retried (429, 5xx, network errors). */
  readonly retries: Counter<'sync'>;
}

const created = new WeakMap<PipelineMetrics, SyncMetrics>();

/** The sync counters of `metrics`, registered on its registry the first time. */
export function syncMetrics(metrics: PipelineMetrics): SyncMetrics {
  let m = created.get(metrics);
  if (m === undefined) {
    const registers = [metrics.registry];
    m = {
      rows: new Counter({
        name: 'wharf_retl_rows_total',
        help: 'Rows a reverse-ETL sync query returned, by sync',
        labelNames: ['sync'],
        registers,
      }),
      calls: new Counter({
        name: 'wharf_retl_calls_total',
        help: 'Calls staged and delivered by reverse-ETL runs, by sync',
        labelNames: ['sync'],
        registers,
      }),
      rejected: new Counter({
        name: 'wharf_retl_rejected_total',
        help: 'Rows rejected (a required field missing, a call over 32 KB, …), by sync',
        labelNames: ['sync'],
        registers,
      }),
      runs: new Counter({
        name: 'wharf_retl_runs_total',
        help: 'Reverse-ETL runs by sync and outcome (ok, skipped, failed)',
        labelNames: ['sync', 'status'],
        registers,
      }),
      failures: new Counter({
        name: 'wharf_retl_failures_total',
        help: 'Failed reverse-ETL runs by sync and error kind (transient, terminal, usage)',
        labelNames: ['sync', 'kind'],
        registers,
      }),
      retries: new Counter({
        name: 'wharf_retl_batch_retries_total',
        help: 'Batch requests retried after a 429, a 5xx or a network error, by sync',
        labelNames: ['sync'],
        registers,
      }),
    };
    created.set(metrics, m);
  }
  return m;
}
