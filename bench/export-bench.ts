import { join } from 'node:path';
import type { Column } from '../catalog/types.js';
import {
  type BenchContext,
  COARSE_MS,
  clicksSelect,
  clicksStream,
  exportedWindow,
  fileMB,
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

  ctx.log('export: wharf csv.gz');
  const csv = await runWharfChild({
    ...places,
    kind: 'export',
    format: 'csv',
    controlSchema: 'bench_export_csv',
    stagingDir: join(ctx.workDir, 'export-csv'),
  });
  if (csv.export!.windows !== 1 || csv.export!.rows !== rows) {
    throw new Error(`expected one window of ${rows} clicks, got ${JSON.stringify(csv.export)}`);
  }
  const window = await exportedWindow(source.url, 'bench_export_csv');
  const select = clicksSelect(window.start, window.end);

  ctx.log('export: psql \\copy | gzip -1');
  const psqlGz = join(ctx.workDir, 'psql-clicks.csv.gz');
  const psqlSeconds = await timeShell(
    `psql -X -q -d "$URL" -c "\\copy (${select}) to stdout (format csv)" | gzip -1 > "${psqlGz}"`,
    { URL: source.url },
  );

  ctx.log('export: wharf parquet');
  const parquet = await runWharfChild({
    ...places,
    kind: 'export',
    format: 'parquet',
    controlSchema: 'bench_export_parquet',
    stagingDir: join(ctx.workDir, 'export-parquet'),
  });

  ctx.log('export: DuckDB read_csv → parquet');
  const dump = join(ctx.workDir, 'clicks.csv');
  await timeShell(`psql -X -q -d "$URL" -c "\\copy (${select}) to stdout (format csv)" > "${dump}"`, {
    URL: source.url,
  });
  const columns = clicksStream.columns.map((c) => `'${c.name}': '${duckType(c)}'`).join(', ');
  const duckOut = join(ctx.workDir, 'duckdb-clicks.parquet');
  const duck = await openDuckDb();
  const conn = await duck.connect();
  const threads = (await conn.runAndReadAll("select current_setting('threads') as t")).getRows()[0]![0];
  const duckStarted = performance.now();
  await conn.run(
    `copy (select * from read_csv('${dump}', header = false, columns = {${columns}})) to '${duckOut}' (format parquet)`,
  );
  const duckSeconds = (performance.now() - duckStarted) / 1000;
  conn.closeSync();
  duck.closeSync();

  const csvSeconds = csv.export!.seconds;
  const parquetSeconds = parquet.export!.seconds;
  const csvMB = csv.export!.bytes / 1_048_576;
  const parquetMB = parquet.export!.bytes / 1_048_576;
  const dumpMB = fileMB(dump);
  ctx.extra.export = {
    window: { start: window.start.toISOString(), end: window.end.toISOString() },
    rows,
    sourceCsvMB: round(dumpMB),
    wharfCsvGzMB: round(csvMB),
    psqlCsvGzMB: round(fileMB(psqlGz)),
    wharfParquetMB: round(parquetMB),
    duckdbParquetMB: round(fileMB(duckOut)),
    duckdbThreads: String(threads),
  };
  const csvRatio = psqlSeconds / csvSeconds;
  const parquetRatio = duckSeconds / parquetSeconds;
  ctx.rows.push(
    {
      section: 'export',
      name: 'Wharf export csv.gz (1 window)',
      seconds: round(csvSeconds),
      rows,
      rowsPerSecond: Math.round(rows / csvSeconds),
      mbPerSecond: round(dumpMB / csvSeconds),
      rssMB: round(csv.maxRssMB, 0),
      ratio: round(csvRatio),
      goal: '≥ 0.8× psql pipe; RSS < 300 MB',
      met: csvRatio >= 0.8 && csv.maxRssMB < RSS_GOAL_MB,
      note: `${round(csvMB)} MB written`,
    },
    {
      section: 'export',
      name: 'psql \\copy | gzip -1',
      seconds: round(psqlSeconds),
      rows,
      rowsPerSecond: Math.round(rows / psqlSeconds),
      mbPerSecond: round(dumpMB / psqlSeconds),
      note: `${round(fileMB(psqlGz))} MB written`,
    },
    {
      section: 'export',
      name: 'Wharf export parquet (1 window)',
      seconds: round(parquetSeconds),
      rows,
      rowsPerSecond: Math.round(rows / parquetSeconds),
      mbPerSecond: round(dumpMB / parquetSeconds),
      rssMB: round(parquet.maxRssMB, 0),
      ratio: round(parquetRatio),
      goal: '≥ 0.75× DuckDB; RSS < 300 MB',
      met: parquetRatio >= 0.75 && parquet.maxRssMB < RSS_GOAL_MB,
      note: `${round(parquetMB)} MB written; includes reading the source`,
    },
    {
      section: 'export',
      name: `DuckDB read_csv → parquet (${threads} threads)`,
      seconds: round(duckSeconds),
      rows,
      rowsPerSecond: Math.round(rows / duckSeconds),
      mbPerSecond: round(dumpMB / duckSeconds),
      note: `${round(fileMB(duckOut))} MB written; CSV dump already on disk, not timed`,
    },
  );
}
