import { statSync } from 'node:fs';
import pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Stream } from '../catalog/types.js';
import { getStream } from '../catalog/types.js';
import { copySql } from '../exporter/export.js';
import type { ReadOrder } from '../exporter/read-order.js';
import { formatByName } from '../exporter/writers/formats.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import type { BenchServer } from './bench-postgres.js';
import { createBenchDatabase } from './bench-postgres.js';

/** One line of the results table. */
export interface BenchRow {
  readonly section:
    | 'export'
    | 'load'
    | 'merge'
    | 'lag'
    | 'connectors'
    | 'delivery'
    | 'retl'
    | 'api'
    | 'startup'
    | 'scheduling';
  readonly name: string;
  readonly seconds?: number;
  readonly rows?: number;
  readonly rowsPerSecond?: number;
  readonly mbPerSecond?: number;
  /** Peak RSS of the Wharf process (MB). */
  readonly rssMB?: number;
  /** Wharf's throughput over the baseline's, or the figure a goal is about. */
  readonly ratio?: number;
  readonly goal?: string;
  readonly met?: boolean;
  readonly note?: string;
}

/** What every section gets. */
export interface BenchContext {
  readonly server: BenchServer;
  readonly workDir: string;
  readonly clicks: number;
  readonly options: BenchOptions;
  readonly rows: BenchRow[];
  readonly extra: Record<string, unknown>;
  log(line: string): void;
}

export interface BenchOptions {
  readonly clicks: number;
  readonly naiveRows: number;
  readonly mergeRows: number;
  readonly lagScale: number;
  readonly lagMinutes: number;
  readonly connectors: number;
  readonly connectorClicks: number;
  /** Rounds of the export cases (the figures are medians). */
  readonly exportRuns: number;
  /** Rounds of the reverse-ETL cases (the figures are medians). */
  readonly retlRuns: number;
  /** Rounds of the load cases (the figures are medians). */
  readonly loadRounds: number;
  /** Servers the load cases run on: `18` (the bench's embedded server), `15` (Debian's, when installed). */
  readonly loadServers: readonly string[];
  /** The fsync settings the load cases run with, in turn. */
  readonly loadFsync: readonly ('on' | 'off')[];
}

export const clicksStream: Stream = getStream(trackingCatalog, 'clicks');
export const COARSE_MS = 30 * 86_400_000;

/** The big source: one account, `clicks` clicks, all history inside one 30-day window that is closed. */
export interface BigSource {
  readonly url: string;
  readonly seedSeconds: number;
  readonly rowsByStream: Record<string, number>;
}

const bigSources = new Map<number, Promise<BigSource>>();

/** Creates and seeds the big source once per run and server. */
export function prepareBigSource(ctx: BenchContext): Promise<BigSource> {
  const known = bigSources.get(ctx.server.port);
  if (known) return known;
  const bigSource = (async () => {
    const url = await createBenchDatabase(ctx.server, 'bench_source');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await initSource(client);
      // the data ends before the last 30-day boundary, so that the whole history is one closed window
      const boundary = Math.floor((Date.now() - 120_000) / COARSE_MS) * COARSE_MS;
      ctx.log(
        `seeding ${ctx.clicks} clicks (1 account, 7 days ending ${new Date(boundary - 60_000).toISOString()})`,
      );
      const seeded = await seedSource(client, {
        accounts: 1,
        rows: ctx.clicks,
        seed: 7,
        days: 7,
        end: new Date(boundary - 60_000),
      });
      await client.query('vacuum analyze');
      return { url, seedSeconds: seeded.seconds, rowsByStream: seeded.rowsByStream };
    } finally {
      await client.end();
    }
  })();
  bigSources.set(ctx.server.port, bigSource);
  return bigSource;
}

/** The SELECT Wharf's csv export runs for one window of clicks (same columns, where and order by). */
export function clicksSelect(start: Date, end: Date, order: ReadOrder = 'account'): string {
  const sql = copySql(clicksStream, formatByName('csv'), 'public', start, end, order);
  return sql.replace(/^copy \(/, '').replace(/\) to stdout \(format csv\)$/, '');
}

/** The window Wharf exported, from its control schema. */
export async function exportedWindow(
  url: string,
  controlSchema: string,
): Promise<{ start: Date; end: Date }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ s: Date; e: Date }>(
      `select min(start_at) as s, max(end_at) as e from "${controlSchema}".windows`,
    );
    return { start: r.rows[0]!.s, end: r.rows[0]!.e };
  } finally {
    await client.end();
  }
}

export function fileMB(path: string): number {
  return statSync(path).size / 1_048_576;
}

export const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits;

/** Runs SQL on a database with a fresh connection. */
export async function sql(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
