import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { WharfError } from '../core/errors.js';

/**
 * The scheduler's Prometheus metrics, on a registry of their own (never prom-client's global one), so
 * several schedulers in one process do not share counters.
 */
export class SchedulerMetrics {
  readonly registry: Registry;
  readonly windowsExported: Counter;
  readonly rowsExported: Counter;
  readonly rowsLoaded: Counter<'connector'>;
  readonly loadFailures: Counter<'connector' | 'kind'>;
  readonly loadSkips: Counter<'connector'>;
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

/** What `/healthz` reports. */
export interface Health {
  readonly ok: boolean;
  readonly [key: string]: unknown;
}

export interface MetricsServerOptions {
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** Default 127.0.0.1: the metrics say which accounts exist, so they are not exposed unless asked. */
  readonly host?: string;
  readonly metrics: SchedulerMetrics;
  /** `/healthz` answers 200 when `ok`, 503 otherwise, with the object as JSON. */
  readonly health: () => Health;
}

/** A listening metrics server. */
export interface MetricsServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `/metrics` (Prometheus text) and `/healthz` (JSON) over plain HTTP. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      options.metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': options.metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
      return;
    }
    if (path === '/healthz') {
      const health = options.health();
      res
        .writeHead(health.ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(`${JSON.stringify(health)}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics or /healthz\n');
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new WharfError(`cannot serve metrics on ${host}:${options.port}: ${error.message}`, {
          cause: error,
          hint: 'choose another --metrics-port',
        }),
      ),
    );
    server.listen(options.port, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
