import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import pg from 'pg';
import { freePort, startEmbeddedPostgres } from '../core/embedded-postgres.js';

/** A PostgreSQL started for the benchmark, with durable settings (fsync on). */
export interface BenchServer {
  readonly port: number;
  /** URL of one database on this server. */
  url(database: string): string;
  /** The settings that matter for the figures, as the server reports them. */
  settings(): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/** Settings reported with the results. */
export const REPORTED_SETTINGS = [
  'server_version',
  'fsync',
  'synchronous_commit',
  'full_page_writes',
  'wal_level',
  'shared_buffers',
  'work_mem',
  'maintenance_work_mem',
  'max_wal_size',
  'checkpoint_timeout',
] as const;

/**
 * Starts the embedded PostgreSQL (core/embedded-postgres.ts) with PostgreSQL's defaults for durability (fsync,
 * synchronous_commit and full_page_writes on), unlike the test server, which turns fsync off.
 */
export async function startBenchPostgres(dataDir: string): Promise<BenchServer> {
  const server = await startEmbeddedPostgres({
    dataDir,
    port: 0,
    user: USER,
    password: PASSWORD,
    // fsync from the configuration (on, PostgreSQL's default), so that setFsync can turn it off and on
    settings: { max_connections: '300', fsync: null },
  });
  const port = server.port;
  const url = (database: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    settings: () => reportedSettings(url('postgres')),
    stop: () => server.stop(),
  };
}

/** Creates a database (dropping one of the same name first). */
export async function createBenchDatabase(server: BenchServer, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: server.url('postgres') });
  await client.connect();
  try {
    await client.query(`drop database if exists "${name}" with (force)`);
    await client.query(`create database "${name}"`);
  } finally {
    await client.end();
  }
  return server.url(name);
}

/**
 * Sets the server's `fsync` (a reload setting: `ALTER SYSTEM` and `pg_reload_conf()`) and waits until new
 * sessions see it. Everything else stays as started.
 */
export async function setFsync(server: BenchServer, value: 'on' | 'off'): Promise<void> {
  const client = new pg.Client({ connectionString: server.url('postgres') });
  await client.connect();
  try {
    await client.query(`alter system set fsync = ${value}`);
    await client.query('select pg_reload_conf()');
  } finally {
    await client.end();
  }
  for (let i = 0; i < 100; i++) {
    const now = (await server.settings()).fsync;
    if (now === value) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`fsync is still not ${value} after the reload`);
}

const DEBIAN_15 = '/usr/lib/postgresql/15/bin';

/**
 * Starts Debian's PostgreSQL 15 (`apt-get install postgresql-15`) as the `postgres` user, with the embedded
 * server's settings (max_connections=300, PostgreSQL's defaults otherwise: fsync on). Returns the reason as a
 * string when it is not installed or cannot start.
 */
export async function startDebianPostgres15(dataDir: string): Promise<BenchServer | string> {
  if (!existsSync(`${DEBIAN_15}/postgres`))
    return `PostgreSQL 15 is not installed (${DEBIAN_15}; apt-get install -y postgresql-15)`;
  if (process.getuid?.() !== 0) return 'PostgreSQL 15 is started as the postgres user, which needs root';
  const port = await freePort();
  const su = (command: string) =>
    execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    mkdirSync(dataDir, { recursive: true });
    execFileSync('chown', ['postgres', dataDir]);
    su(`${DEBIAN_15}/initdb -D ${dataDir}/data -U ${USER} --auth=trust >/dev/null`);
    su(
      `${DEBIAN_15}/pg_ctl -D ${dataDir}/data -l ${dataDir}/log -w -o '-p ${port} -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300' start >/dev/null`,
    );
  } catch (error) {
    return `PostgreSQL 15 did not start: ${(error as Error).message.split('\n')[0]}`;
  }
  const url = (database: string) => `postgres://${USER}@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    settings: () => reportedSettings(url('postgres')),
    stop: async () => {
      su(`${DEBIAN_15}/pg_ctl -D ${dataDir}/data -m fast stop >/dev/null`);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function reportedSettings(url: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, string> = {};
    for (const name of REPORTED_SETTINGS) {
      const r = await client.query<{ v: string }>('select current_setting($1) as v', [name]);
      out[name] = r.rows[0]!.v;
    }
    return out;
  } finally {
    await client.end();
  }
}
