// One piece of Wharf's work for the benchmark, run in its own process so that its peak RSS can be read.
// The job comes as JSON in BENCH_JOB; the last line of stdout is the JSON result.
import { existsSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Catalog } from '../catalog/types.js';
import { type ExportSummary, exportWindows } from '../exporter/export.js';
import type { WindowSizes } from '../exporter/windows.js';
import { formatByName } from '../exporter/writers/formats.js';
import { type LoadSummary, loadConnector } from '../loaders/load.js';
import { PostgresWarehouse } from '../loaders/postgres/postgres-warehouse.js';
import { delayToNextTick, settledPhaseMs } from '../scheduler/scheduler.js';
import { openStagingStore } from '../staging/open-store.js';

/** Where Wharf reads, stages and writes. */
export interface ChildPlaces {
  readonly sourceUrl: string;
  readonly controlSchema: string;
  readonly stagingDir: string;
  readonly streams: readonly string[];
  readonly sizes: WindowSizes;
  readonly settleMs: number;
  readonly maxWindows?: number;
  /** Streams of a window read at once (the export's `readConcurrency`; its default when absent). */
  readonly readers?: number;
}

/** A job for the child process. */
export type ChildJob =
  | (ChildPlaces & { readonly kind: 'export'; readonly format: 'csv' | 'parquet' })
  | (ChildPlaces & {
      readonly kind: 'sync';
      readonly warehouseUrl: string;
      readonly schema: string;
      readonly account: number;
      readonly replay: boolean;
      /** As `wharf sync` passes them from the connector's progress: windows up to this seq are loaded. */
      readonly afterSeq?: number;
      /** Migrate the warehouse first (default true; `wharf sync` skips it when the catalog is unchanged). */
      readonly migrate?: boolean;
    })
  | (ChildPlaces & {
      readonly kind: 'lag';
      readonly warehouseUrl: string;
      readonly schema: string;
      readonly account: number;
      readonly tickMs: number;
      readonly durationMs: number;
      /** The loop ends when this file exists. */
      readonly stopFile: string;
    })
  | (ChildPlaces & {
      readonly kind: 'connectors';
      readonly warehouseUrl: string;
      readonly accounts: number;
    });

/** What the child reports. */
export interface ChildResult {
  readonly seconds: number;
  readonly maxRssMB: number;
  readonly export?: ExportSummary;
  readonly exportSeconds?: number;
  readonly load?: LoadSummary;
  readonly loadSeconds?: number;
  readonly ticks?: number;
  /** Milliseconds per connector load (connectors job). */
  readonly perConnectorMs?: number[];
}

const job = JSON.parse(process.env.BENCH_JOB ?? '{}') as ChildJob;
const catalog: Catalog = {
  ...trackingCatalog,
  streams: trackingCatalog.streams.filter((s) => job.streams.includes(s.name)),
};
const pool = new pg.Pool({ connectionString: job.sourceUrl, max: 4, application_name: 'wharf-bench' });
pool.on('error', () => {});
const store = openStagingStore(`file://${job.stagingDir}`);

function runExport(format: 'csv' | 'parquet'): Promise<ExportSummary> {
  return exportWindows({
    source: pool,
    control: pool,
    controlSchema: job.controlSchema,
    sourceSchema: 'public',
    store,
    catalog,
    format: formatByName(format),
    sizes: job.sizes,
    settleMs: job.settleMs,
    longTransactionMs: 15 * 60_000,
    spoolDir: `${job.stagingDir}-spool`,
    ...(job.maxWindows ? { maxWindows: job.maxWindows } : {}),
    ...(job.readers ? { readConcurrency: job.readers } : {}),
  });
}

async function runLoad(
  warehouseUrl: string,
  schema: string,
  account: number,
  replay: boolean,
  progress: { afterSeq?: number; migrate?: boolean } = {},
) {
  const warehouse = new PostgresWarehouse({
    client: { connectionString: warehouseUrl },
    schema,
    connectorId: `bench-${schema}`,
  });
  try {
    return await loadConnector({
      control: pool,
      controlSchema: job.controlSchema,
      store,
      catalog,
      target: { connectorId: `bench-${schema}`, account: String(account), streams: job.streams },
      warehouse,
      ...(replay ? { replay: {} } : {}),
      ...(progress.afterSeq === undefined ? {} : { afterSeq: progress.afterSeq }),
      ...(progress.migrate === undefined ? {} : { migrate: progress.migrate }),
    });
  } finally {
    await warehouse.close();
  }
}

/**
 * This process's own peak RSS. Linux's `VmHWM` belongs to the process image; `getrusage`'s maxrss is carried over
 * from the forked parent through exec, so it would report the bench's own peak for a small child.
 */
function peakRssMB(): number {
  try {
    const hwm = /VmHWM:\s+(\d+)\s*kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const started = performance.now();
const out: Record<string, unknown> = {};

switch (job.kind) {
  case 'export': {
    out.export = await runExport(job.format);
    break;
  }
  case 'sync': {
    const t0 = performance.now();
    out.export = await runExport('csv');
    const t1 = performance.now();
    out.load = await runLoad(job.warehouseUrl, job.schema, job.account, job.replay, {
      ...(job.afterSeq === undefined ? {} : { afterSeq: job.afterSeq }),
      ...(job.migrate === undefined ? {} : { migrate: job.migrate }),
    });
    out.exportSeconds = (t1 - t0) / 1000;
    out.loadSeconds = (performance.now() - t1) / 1000;
    break;
  }
  case 'lag': {
    // `wharf run` in a loop: every tick, export closed windows, then load the connector; ticks fall just after a
    // window has settled, as the scheduler places them
    let ticks = 0;
    const end = Date.now() + job.durationMs;
    const phase = settledPhaseMs(job.settleMs, job.sizes.fineMs);
    while (Date.now() < end && !existsSync(job.stopFile)) {
      const tick = Date.now();
      await runExport('csv');
      await runLoad(job.warehouseUrl, job.schema, job.account, false);
      ticks++;
      const now = Date.now();
      await sleep(now - tick >= job.tickMs ? 0 : delayToNextTick(now, job.tickMs, phase));
    }
    out.ticks = ticks;
    break;
  }
  case 'connectors': {
    const perConnectorMs: number[] = [];
    for (let account = 1; account <= job.accounts; account++) {
      const t = performance.now();
      await runLoad(job.warehouseUrl, `c${String(account).padStart(3, '0')}`, account, false);
      perConnectorMs.push(performance.now() - t);
    }
    out.perConnectorMs = perConnectorMs;
    break;
  }
}
await pool.end();
out.seconds = (performance.now() - started) / 1000;
out.maxRssMB = peakRssMB();
process.stdout.write(`${JSON.stringify(out)}\n`);
