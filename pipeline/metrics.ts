import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Wharf's Prometheus metrics, counted by the jobs whoever runs them, on a registry of their own (never
 * prom-client's global one), so several runtimes in one process do not share counters.
 */
export class PipelineMetrics {
  readonly registry: Registry;
  readonly windowsExported: Counter;
  readonly rowsExported: Counter;
  readonly rowsLoaded: Counter<'connector'>;
  readonly loadFailures: Counter<'connector' | 'kind'>;
  readonly loadSkips: Counter<'connector'>;
  readonly lockTimeouts: Counter<'connector'>;
  readonly connectorLag: Gauge<'connector'>;
  readonly tickDuration: Histogram;

  constructor() {
    const registers = [(this.registry = new Registry())];
    this.windowsExported = new Counter({
      name: 'wharf_windows_exported_total',
      help: 'Windows exported to staging by this process',
      registers,
    });
    this.rowsExported = new Counter({
      name: 'wharf_rows_exported_total',
      help: 'Rows written to staging files by this process',
      registers,
    });
    this.rowsLoaded = new Counter({
      name: 'wharf_rows_loaded_total',
      help: "Rows staged into a connector's warehouse and merged, by connector",
      labelNames: ['connector'],
      registers,
    });
    this.loadFailures = new Counter({
      name: 'wharf_load_failures_total',
      help: 'Failed load attempts, by connector and error kind (transient, terminal)',
      labelNames: ['connector', 'kind'],
      registers,
    });
    this.loadSkips = new Counter({
      name: 'wharf_load_skips_total',
      help: 'Loads skipped because another load of the connector was still running',
      labelNames: ['connector'],
      registers,
    });
    this.lockTimeouts = new Counter({
      name: 'wharf_lock_timeouts_total',
      help: "Load attempts that gave up waiting for a lock in the connector's warehouse (lock_timeout), by connector",
      labelNames: ['connector'],
      registers,
    });
    this.connectorLag = new Gauge({
      name: 'wharf_connector_lag_seconds',
      help: "Seconds between the database clock and the end of the newest window in the connector's ledger",
      labelNames: ['connector'],
      registers,
    });
    this.tickDuration = new Histogram({
      name: 'wharf_tick_duration_seconds',
      help: 'Duration of one scheduler tick (export, then loads)',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
  }

  /** The exposition text (what `/metrics` serves). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
