import pg from 'pg';
import { startEmbeddedPostgres } from '../core/embedded-postgres.js';

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
    settings: { max_connections: '300', fsync: 'on' },
  });
  const port = server.port;
  const url = (database: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    settings: async () => {
      const client = new pg.Client({ connectionString: url('postgres') });
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
    },
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
