import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WharfError } from '../core/errors.js';
import type { PipelineMetrics } from '../pipeline/metrics.js';

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
  readonly metrics: PipelineMetrics;
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
