import { join } from 'node:path';
import pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Column } from '../catalog/types.js';
import { copySql } from '../exporter/export.js';
import { countAccounts, readOrderFor } from '../exporter/read-order.js';
import { formatByName } from '../exporter/writers/formats.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { readManifest } from '../staging/manifest.js';
import { openStagingStore } from '../staging/open-store.js';
import {
  type BenchContext,
  type BenchRow,
  COARSE_MS,
  clicksStream,
  exportedWindow,
  fileMB,
  median,
  prepareBigSource,
  round,
} from './bench-context.js';
import { createBenchDatabase } from './bench-postgres.js';
import { runWharfChild, timeShell } from './bench-shell.js';
import { openDuckDb } from './duckdb.js';

const RSS_GOAL_MB = 300;

function duckType(column: Column): string {
  switch (column.type) {
    case 'bigint':
      return 'BIGINT';
    case 'uuid':
      return 'UUID';
    case 'timestamptz':
      return 'TIMESTAMPTZ';
    case 'boolean':
      return 'BOOLEAN';
    case 'date':
      return 'DATE';
    case 'numeric':
      return `DECIMAL(${column.precision ?? 18},${column.scale ?? 4})`;
    default:
      return 'VARCHAR';
  }
}

/**
 * The SELECT Wharf's csv export runs for one window of clicks: the same columns and bounds, and the same order
 * (table order for the few accounts of the big source, so the baselines do not sort either).
 */
async function wharfSelect(url: string, start: Date, end: Date): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const order = readOrderFor(await countAccounts(client, clicksStream, 'public', start, end));
    const copy = copySql(clicksStream, formatByName('csv'), 'public', start, end, order);
    return copy.replace(/^copy \(/, '').replace(/\) to stdout \(format csv\)$/, '');
  } finally {
    await client.end();
  }
}

/** Export: one window of all clicks, csv.gz and parquet, against `psql \copy | gzip -1` and DuckDB; then accounts. */
export async function exportBench(ctx: BenchContext): Promise<void> {
  await bigWindowBench(ctx);
  await accountsBench(ctx);
}

/** One window of all clicks of one account, csv.gz and parquet, against `psql \copy | gzip -1` and DuckDB. */
async function bigWindowBench(ctx: BenchContext): Promise<void> {
  const source = await prepareBigSource(ctx);
  const rows = source.rowsByStream.clicks ?? ctx.clicks;
  const places = {
    sourceUrl: source.url,
    streams: ['clicks'],
    sizes: { fineMs: 60_000, coarseMs: COARSE_MS },
    settleMs: 0,
    maxWindows: 1,
  };

  const runs = ctx.options.exportRuns;
  const wharfExport = (format: 'csv' | 'parquet', round: number) =>
    runWharfChild({
      ...places,
      kind: 'export',
      format,
      controlSchema: `bench_export_${format}_${round}`,
      stagingDir: join(ctx.workDir, `export-${format}-${round}`),
    });

  const duck = await openDuckDb();
  const conn = await duck.connect();
  const threads = (await conn.runAndReadAll("select current_setting('threads') as t")).getRows()[0]![0];
  const columns = clicksStream.columns.map((c) => `'${c.name}': '${duckType(c)}'`).join(', ');
  const toParquet = (input: string, output: string) =>
    conn.run(
      `copy (select * from read_csv('${input}', header = false, columns = {${columns}})) to '${output}' (format parquet)`,
    );
  const fifo = join(ctx.workDir, 'clicks.fifo');
  await timeShell(`mkfifo "${fifo}"`);
  const psqlGz = join(ctx.workDir, 'psql-clicks.csv.gz');
  const duckPipeOut = join(ctx.workDir, 'duckdb-pipe-clicks.parquet');

  // the cases take turns, round after round, so that a slow spell of the machine falls on all of them
  const times = {
    csv: [] as number[],
    psql: [] as number[],
    parquet: [] as number[],
    duckPipe: [] as number[],
  };
  let csv: Awaited<ReturnType<typeof wharfExport>> | undefined;
  let parquet: Awaited<ReturnType<typeof wharfExport>> | undefined;
  let csvRss = 0;
  let parquetRss = 0;
  let select = '';
  let window: { start: Date; end: Date } | undefined;
  for (let r = 1; r <= runs; r++) {
    ctx.log(`export round ${r}/${runs}: wharf csv.gz`);
    csv = await wharfExport('csv', r);
    if (csv.export!.windows !== 1 || csv.export!.rows !== rows) {
      throw new Error(`expected one window of ${rows} clicks, got ${JSON.stringify(csv.export)}`);
    }
    times.csv.push(csv.export!.seconds);
    csvRss = Math.max(csvRss, csv.maxRssMB);
    if (!window) {
      window = await exportedWindow(source.url, `bench_export_csv_${r}`);
      select = await wharfSelect(source.url, window.start, window.end);
    }

    ctx.log(`export round ${r}/${runs}: psql \\copy | gzip -1`);
    times.psql.push(
      await timeShell(
        `psql -X -q -d "$URL" -c "\\copy (${select}) to stdout (format csv)" | gzip -1 > "${psqlGz}"`,
        { URL: source.url },
      ),
    );

    ctx.log(`export round ${r}/${runs}: wharf parquet`);
    parquet = await wharfExport('parquet', r);
    times.parquet.push(parquet.export!.seconds);
    parquetRss = Math.max(parquetRss, parquet.maxRssMB);

    // DuckDB's writer fed by the same read of the source, through a FIFO
    ctx.log(`export round ${r}/${runs}: psql \\copy | DuckDB read_csv → parquet`);
    const pipeStarted = performance.now();
    const writer = timeShell(
      `psql -X -q -d "$URL" -c "\\copy (${select}) to stdout (format csv)" > "${fifo}"`,
      {
        URL: source.url,
      },
    ).catch(async (error: Error) => {
      // a failed psql never opens the FIFO: open and close it, so that DuckDB sees the end and returns
      await timeShell(`: > "${fifo}"`).catch(() => {});
      throw error;
    });
    await Promise.all([toParquet(fifo, duckPipeOut), writer]);
    times.duckPipe.push((performance.now() - pipeStarted) / 1000);
  }

  ctx.log('export: DuckDB read_csv → parquet alone (CSV file already on disk)');
  const dump = join(ctx.workDir, 'clicks.csv');
  await timeShell(`psql -X -q -d "$URL" -c "\\copy (${select}) to stdout (format csv)" > "${dump}"`, {
    URL: source.url,
  });
  const duckOut = join(ctx.workDir, 'duckdb-clicks.parquet');
  const duckStarted = performance.now();
  await toParquet(dump, duckOut);
  const duckSeconds = (performance.now() - duckStarted) / 1000;
  conn.closeSync();
  duck.closeSync();

  const csvSeconds = median(times.csv);
  const psqlSeconds = median(times.psql);
  const parquetSeconds = median(times.parquet);
  const duckPipeSeconds = median(times.duckPipe);
  const each = (list: number[]) =>
    list.length > 1 ? `; runs ${list.map((t) => round(t)).join(' / ')} s` : '';
  const csvMB = csv!.export!.bytes / 1_048_576;
  const parquetMB = parquet!.export!.bytes / 1_048_576;
  const dumpMB = fileMB(dump);
  ctx.extra.export = {
    window: { start: window!.start.toISOString(), end: window!.end.toISOString() },
    runs: times,
    rows,
    sourceCsvMB: round(dumpMB),
    wharfCsvGzMB: round(csvMB),
    psqlCsvGzMB: round(fileMB(psqlGz)),
    wharfParquetMB: round(parquetMB),
    duckdbParquetMB: round(fileMB(duckOut)),
    duckdbPipeSeconds: round(duckPipeSeconds),
    duckdbAloneSeconds: round(duckSeconds),
    duckdbThreads: String(threads),
  };
  const csvRatio = psqlSeconds / csvSeconds;
  const parquetRatio = duckPipeSeconds / parquetSeconds;
  ctx.rows.push(
    {
      section: 'export',
      name: 'Wharf export csv.gz (1 window)',
      seconds: round(csvSeconds),
      rows,
      rowsPerSecond: Math.round(rows / csvSeconds),
      mbPerSecond: round(dumpMB / csvSeconds),
      rssMB: round(csvRss, 0),
      ratio: round(csvRatio),
      goal: '≥ 0.8× psql pipe; RSS < 300 MB',
      met: csvRatio >= 0.8 && csvRss < RSS_GOAL_MB,
      note: `${round(csvMB)} MB written${each(times.csv)}`,
    },
    {
      section: 'export',
      name: 'psql \\copy | gzip -1',
      seconds: round(psqlSeconds),
      rows,
      rowsPerSecond: Math.round(rows / psqlSeconds),
      mbPerSecond: round(dumpMB / psqlSeconds),
      note: `${round(fileMB(psqlGz))} MB written${each(times.psql)}`,
    },
    {
      section: 'export',
      name: 'Wharf export parquet (1 window)',
      seconds: round(parquetSeconds),
      rows,
      rowsPerSecond: Math.round(rows / parquetSeconds),
      mbPerSecond: round(dumpMB / parquetSeconds),
      rssMB: round(parquetRss, 0),
      ratio: round(parquetRatio),
      goal: '≥ 0.75× psql | DuckDB; RSS < 300 MB',
      met: parquetRatio >= 0.75 && parquetRss < RSS_GOAL_MB,
      note: `${round(parquetMB)} MB written; includes reading the source${each(times.parquet)}`,
    },
    {
      section: 'export',
      name: `psql \\copy | DuckDB read_csv → parquet (${threads} threads)`,
      seconds: round(duckPipeSeconds),
      rows,
      rowsPerSecond: Math.round(rows / duckPipeSeconds),
      mbPerSecond: round(dumpMB / duckPipeSeconds),
      note: `${round(fileMB(duckPipeOut))} MB written; the same read of the source, through a FIFO${each(times.duckPipe)}`,
    },
    {
      section: 'export',
      name: `DuckDB read_csv → parquet alone (${threads} threads)`,
      seconds: round(duckSeconds),
      rows,
      rowsPerSecond: Math.round(rows / duckSeconds),
      mbPerSecond: round(dumpMB / duckSeconds),
      note: `${round(fileMB(duckOut))} MB written; writer alone: CSV dump already on disk, not timed`,
    },
  );
}

/** Clicks of the accounts case (env BENCH_ACCOUNTS_CLICKS) and its account counts (BENCH_ACCOUNTS, comma list). */
const ACCOUNTS_CLICKS = Number(process.env.BENCH_ACCOUNTS_CLICKS ?? 500_000);
const ACCOUNT_COUNTS = (process.env.BENCH_ACCOUNTS ?? '10,1000,10000').split(',').map(Number);
/** Goals: seconds over the smallest case's, per account count. */
const ACCOUNT_GOALS: Readonly<Record<number, number>> = { 1000: 1.5, 10000: 2 };
const ALL_STREAMS = trackingCatalog.streams.map((s) => s.name);

/** One export case of the accounts section: a source, its streams, how many streams are read at once. */
interface ExportCase {
  readonly name: string;
  readonly sourceUrl: string;
  readonly streams: readonly string[];
  readonly readers: number;
}

/** What the rounds of one case measured. */
interface CaseRuns {
  readonly seconds: number[];
  rss: number;
  objects: number;
  parts: number;
  rows: number;
  mb: number;
}

/**
 * The same clicks over 10, 1,000 and 10,000 accounts, all in one closed window: the export's cost should not
 * follow the number of accounts. Only the clicks stream is exported (the same rows in every case; the other
 * streams grow with the accounts). Then every stream of the 1,000-account source, read one stream at a time
 * and two side by side. Rounds take turns like the cases above; medians and ranges.
 */
async function accountsBench(ctx: BenchContext): Promise<void> {
  const urls = new Map<number, string>();
  for (const accounts of ACCOUNT_COUNTS) urls.set(accounts, await seedAccounts(ctx, accounts));
  const cases: ExportCase[] = ACCOUNT_COUNTS.map((accounts) => ({
    name: `clicks-${accounts}`,
    sourceUrl: urls.get(accounts)!,
    streams: ['clicks'],
    readers: 2,
  }));
  const wide = ACCOUNT_COUNTS.includes(1000) ? 1000 : ACCOUNT_COUNTS.at(-1)!;
  for (const readers of [1, 2]) {
    cases.push({ name: `all-${readers}`, sourceUrl: urls.get(wide)!, streams: ALL_STREAMS, readers });
  }
  const results = await exportTurns(ctx, cases);

  const base = median(results.get(`clicks-${ACCOUNT_COUNTS[0]}`)!.seconds);
  const details: Record<string, unknown> = {};
  for (const accounts of ACCOUNT_COUNTS) {
    const x = results.get(`clicks-${accounts}`)!;
    const ratio = median(x.seconds) / base;
    const goal = ACCOUNT_GOALS[accounts];
    details[String(accounts)] = {
      runs: x.seconds,
      objects: x.objects,
      parts: x.parts,
      rssMB: round(x.rss, 0),
    };
    ctx.rows.push({
      ...caseRow(
        `Wharf export csv.gz, ${ACCOUNTS_CLICKS.toLocaleString('en-US')} clicks over ${accounts.toLocaleString('en-US')} accounts (1 window)`,
        x,
      ),
      ratio: round(ratio),
      ...(goal === undefined
        ? {}
        : { goal: `≤ ${goal}× the ${ACCOUNT_COUNTS[0]}-account case`, met: ratio <= goal }),
    });
  }
  const one = results.get('all-1')!;
  const two = results.get('all-2')!;
  for (const [readers, x] of [
    [1, one],
    [2, two],
  ] as const) {
    ctx.rows.push({
      ...caseRow(
        `Wharf export csv.gz, all ${ALL_STREAMS.length} streams over ${wide.toLocaleString('en-US')} accounts, ${readers === 1 ? 'one stream at a time' : 'two streams side by side'}`,
        x,
      ),
      ...(readers === 2 ? { ratio: round(median(one.seconds) / median(two.seconds)) } : {}),
    });
  }
  ctx.extra.accounts = {
    clicks: ACCOUNTS_CLICKS,
    cases: details,
    allStreams: { accounts: wide, oneReader: one.seconds, twoReaders: two.seconds },
  };
}

/** A source of `ACCOUNTS_CLICKS` clicks over `accounts` accounts, in one closed 30-day window; its URL. */
async function seedAccounts(ctx: BenchContext, accounts: number): Promise<string> {
  const boundary = Math.floor((Date.now() - 120_000) / COARSE_MS) * COARSE_MS;
  const url = await createBenchDatabase(ctx.server, `bench_accounts_${accounts}`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await initSource(client);
    ctx.log(`seeding ${ACCOUNTS_CLICKS} clicks over ${accounts} accounts`);
    await seedSource(client, {
      accounts,
      rows: ACCOUNTS_CLICKS,
      seed: 7,
      days: 7,
      end: new Date(boundary - 60_000),
    });
    await client.query('vacuum analyze');
  } finally {
    await client.end();
  }
  return url;
}

/** Runs every case once per round, the cases taking turns; each run in a fresh staging folder and control schema. */
async function exportTurns(ctx: BenchContext, cases: readonly ExportCase[]): Promise<Map<string, CaseRuns>> {
  const runs = ctx.options.exportRuns;
  const results = new Map<string, CaseRuns>();
  for (let r = 1; r <= runs; r++) {
    for (const c of cases) {
      ctx.log(`export round ${r}/${runs}: ${c.name}`);
      const stagingDir = join(ctx.workDir, `${c.name}-${r}`);
      const out = await runWharfChild({
        kind: 'export',
        format: 'csv',
        sourceUrl: c.sourceUrl,
        streams: c.streams,
        sizes: { fineMs: 60_000, coarseMs: COARSE_MS },
        settleMs: 0,
        maxWindows: 1,
        readers: c.readers,
        controlSchema: `bench_${c.name.replace('-', '_')}_${r}`,
        stagingDir,
      });
      const e = out.export!;
      if (e.windows !== 1 || e.rows < ACCOUNTS_CLICKS) {
        throw new Error(`expected one window of at least ${ACCOUNTS_CLICKS} rows, got ${JSON.stringify(e)}`);
      }
      const seen = results.get(c.name) ?? { seconds: [], rss: 0, objects: 0, parts: 0, rows: 0, mb: 0 };
      seen.seconds.push(e.seconds);
      seen.rss = Math.max(seen.rss, out.maxRssMB);
      seen.objects = e.files;
      seen.rows = e.rows;
      seen.mb = e.bytes / 1_048_576;
      seen.parts = await windowParts(stagingDir);
      results.set(c.name, seen);
    }
  }
  return results;
}

/** The row of a case: median seconds, rows/s, peak RSS, what was written and every run with its range. */
function caseRow(name: string, x: CaseRuns): BenchRow {
  const seconds = median(x.seconds);
  return {
    section: 'export',
    name,
    seconds: round(seconds),
    rows: x.rows,
    rowsPerSecond: Math.round(x.rows / seconds),
    rssMB: round(x.rss, 0),
    note: `${x.objects} object(s), ${x.parts} parts, ${round(x.mb)} MB; runs ${x.seconds.map((t) => round(t)).join(' / ')} s (range ${round(Math.min(...x.seconds))}–${round(Math.max(...x.seconds))})`,
  };
}

/** Parts (one per account and stream) of the window staged in `stagingDir`, from its manifest. */
async function windowParts(stagingDir: string): Promise<number> {
  const store = openStagingStore(`file://${stagingDir}`);
  let parts = 0;
  for await (const key of store.list('csv/')) {
    if (key.endsWith('/_manifest.json')) parts += (await readManifest(store, key)).files.length;
  }
  return parts;
}
