import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { WharfError } from '../core/errors.js';
import { type AppOptions, createApp } from './app.js';

export interface ApiServerOptions extends AppOptions {
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
}

/** A listening API server. */
export interface ApiServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Serves the API and the console over HTTP (put TLS in front of it: a proxy or a load balancer). */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const app = createApp(options);
  const host = options.host ?? '127.0.0.1';
  const server = serve({ fetch: app.fetch, port: options.port, hostname: host, autoCleanupIncoming: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new WharfError(`cannot serve the API on ${host}:${options.port}: ${error.message}`, {
          kind: 'usage',
          cause: error,
          hint: error.code === 'EADDRINUSE' ? 'choose another --port' : 'check --host and --port',
        }),
      ),
    );
    server.once('listening', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeIdleConnections' in server) server.closeIdleConnections();
      }),
  };
}
