import { join } from 'node:path';
import type { Column } from '../catalog/types.js';
import {
  type BenchContext,
  COARSE_MS,
  clicksSelect,
  clicksStream,
  exportedWindow,
  fileMB,
  median,
  prepareBigSource,
  round,
} from './bench-context.js';
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

/** Export: one window of all clicks, csv.gz and parquet, against `psql \copy | gzip -1` and DuckDB. */
export async function exportBench(ctx: BenchContext): Promise<void> {
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
      select = clicksSelect(window.start, window.end);
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
