import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parse } from 'csv-parse';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { quotePg } from '../db/postgres/quote.js';
import { pgColumnType } from '../loaders/postgres/postgres-dialect.js';
import {
  type BenchContext,
  COARSE_MS,
  clicksSelect,
  clicksStream,
  exportedWindow,
  prepareBigSource,
  round,
  sql,
} from './bench-context.js';
import { createBenchDatabase } from './bench-postgres.js';
import { hasProgram, runWharfChild, timeShell } from './bench-shell.js';

const q = quotePg;
const cols = clicksStream.columns.map((c) => q(c.name));
const nonKey = clicksStream.columns.filter((c) => c.name !== 'event_id').map((c) => q(c.name));

/** DDL of a clicks table like the warehouse's: primary key and an index on updated_at. */
export function clicksTableDdl(table: string, withKeys = true): string[] {
  const defs = clicksStream.columns.map((c) => `${q(c.name)} ${pgColumnType(c)}`);
  if (!withKeys) return [`create table ${table} (${defs.join(', ')})`];
  return [
    `create table ${table} (${defs.join(', ')}, primary key (event_id))`,
    `create index on ${table} (updated_at)`,
  ];
}

/** The hand-made pipeline: psql dump | gzip -1, gunzip | psql \copy into an unlogged table, INSERT … ON CONFLICT. */
async function handMade(sourceUrl: string, whUrl: string, select: string, dir: string): Promise<number> {
  const gz = join(dir, 'handmade.csv.gz');
  const env = { SRC: sourceUrl, WH: whUrl };
  const sets = nonKey.map((c) => `${c} = excluded.${c}`).join(', ');
  let seconds = await timeShell(
    `psql -X -q -d "$SRC" -c "\\copy (${select}) to stdout (format csv)" | gzip -1 > "${gz}"`,
    env,
  );
  const stage = clicksTableDdl('handmade.stage', false)[0]!.replace('create table', 'create unlogged table');
  seconds += await timeShell(
    `psql -X -q -v ON_ERROR_STOP=1 -d "$WH" -c "drop table if exists handmade.stage" -c '${stage}' && ` +
      `gunzip -c "${gz}" | psql -X -q -v ON_ERROR_STOP=1 -d "$WH" -c "\\copy handmade.stage from stdin (format csv)"`,
    env,
  );
  const upsert = `insert into handmade.clicks select * from handmade.stage on conflict (event_id) do update set ${sets}`;
  seconds += await timeShell(
    `psql -X -q -v ON_ERROR_STOP=1 -d "$WH" -c '${upsert}' -c "drop table handmade.stage"`,
    env,
  );
  return seconds;
}

/** A naive loader: read the source, INSERT 1,000 rows per statement through pg. */
async function naiveLoad(sourceUrl: string, whUrl: string, select: string, limit: number): Promise<number> {
  const src = new pg.Client({ connectionString: sourceUrl });
  const wh = new pg.Client({ connectionString: whUrl });
  await src.connect();
  await wh.connect();
  const started = performance.now();
  try {
    await src.query("set timezone = 'UTC'");
    const batchSize = 1000;
    const width = cols.length;
    const statement = (n: number) =>
      `insert into naive.clicks (${cols.join(', ')}) values ${Array.from(
        { length: n },
        (_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(', ')})`,
      ).join(', ')}`;
    const full = statement(batchSize);
    let batch: (string | null)[] = [];
    let rows = 0;
    const copy = src.query(copyTo(`copy (${select} limit ${limit}) to stdout (format csv)`));
    const parser = parse({
      cast: (value: string, context: { quoting: boolean }) =>
        value === '' && !context.quoting ? null : value,
    });
    const consume = async (records: AsyncIterable<(string | null)[]>) => {
      for await (const record of records) {
        batch.push(...record);
        rows++;
        if (rows % batchSize === 0) {
          await wh.query(full, batch);
          batch = [];
        }
      }
      if (batch.length > 0) await wh.query(statement(batch.length / width), batch);
    };
    await pipeline(copy, parser, consume);
    return (performance.now() - started) / 1000;
  } finally {
    await src.end();
    await wh.end();
  }
}

/** pgloader: CSV file → table, through a command file. */
async function pgloaderLoad(whUrl: string, csvPath: string, dir: string): Promise<number> {
  const names = clicksStream.columns.map((c) => c.name).join(', ');
  const command = join(dir, 'clicks.load');
  const text = `LOAD CSV FROM '${csvPath}' (${names})
  INTO ${whUrl}?tablename=clicks
  TARGET COLUMNS (${names})
  WITH fields optionally enclosed by '"', fields escaped by double-quote, fields terminated by ','
  SET search_path to 'pgl';
`;
  await timeShell(`cat > "${command}" <<'PGLOADER_EOF'\n${text}PGLOADER_EOF`);
  return timeShell(`pgloader --quiet "${command}" > "${join(dir, 'pgloader.log')}" 2>&1`);
}

async function ensurePgloader(ctx: BenchContext): Promise<string | null> {
  if (await hasProgram('pgloader')) return null;
  ctx.log('pgloader: not installed, trying apt-get install -y pgloader');
  try {
    await timeShell(
      'apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgloader',
    );
  } catch (error) {
    return `pgloader could not be installed: ${(error as Error).message.split('\n')[0]}`;
  }
  return (await hasProgram('pgloader')) ? null : 'pgloader is not on the PATH after apt-get install';
}

/** Load: Wharf sync into an empty and a full warehouse, against the hand-made pipeline, a naive loader and pgloader. */
export async function loadBench(ctx: BenchContext): Promise<void> {
  const source = await prepareBigSource(ctx);
  const rows = source.rowsByStream.clicks ?? ctx.clicks;
  const whUrl = await createBenchDatabase(ctx.server, 'bench_warehouse');
  const places = {
    sourceUrl: source.url,
    streams: ['clicks'],
    sizes: { fineMs: 60_000, coarseMs: COARSE_MS },
    settleMs: 0,
    maxWindows: 1,
    warehouseUrl: whUrl,
    schema: 'tracking',
    account: 1,
  };

  ctx.log('load: wharf sync into an empty warehouse');
  const empty = await runWharfChild({
    ...places,
    kind: 'sync',
    controlSchema: 'bench_sync_empty',
    stagingDir: join(ctx.workDir, 'sync-empty'),
    replay: false,
  });
  ctx.log('load: wharf sync into the full warehouse (fresh export, every window replayed)');
  const full = await runWharfChild({
    ...places,
    kind: 'sync',
    controlSchema: 'bench_sync_full',
    stagingDir: join(ctx.workDir, 'sync-full'),
    replay: true,
  });
  const loaded = await sql(whUrl, 'select count(*)::int as n from tracking.clicks');
  if (loaded.rows[0].n !== rows)
    throw new Error(`warehouse holds ${loaded.rows[0].n} clicks, expected ${rows}`);

  const window = await exportedWindow(source.url, 'bench_sync_empty');
  const select = clicksSelect(window.start, window.end);

  ctx.log('load: hand-made pipeline, empty then full');
  await sql(whUrl, `create schema handmade; ${clicksTableDdl('handmade.clicks').join('; ')}`);
  const hmEmpty = await handMade(source.url, whUrl, select, ctx.workDir);
  const hmFull = await handMade(source.url, whUrl, select, ctx.workDir);

  const naiveRows = Math.min(ctx.options.naiveRows, rows);
  ctx.log(`load: naive loader (${naiveRows} rows, 1,000 per INSERT)`);
  await sql(whUrl, `create schema naive; ${clicksTableDdl('naive.clicks').join('; ')}`);
  const naiveSeconds = await naiveLoad(source.url, whUrl, select, naiveRows);

  const wharfEmptyRate = rows / empty.seconds;
  const wharfFullRate = rows / full.seconds;
  const rss = Math.max(empty.maxRssMB, full.maxRssMB);
  const naiveRate = naiveRows / naiveSeconds;
  ctx.rows.push(
    {
      section: 'load',
      name: 'Wharf sync → empty warehouse',
      seconds: round(empty.seconds),
      rows,
      rowsPerSecond: Math.round(wharfEmptyRate),
      rssMB: round(empty.maxRssMB, 0),
      ratio: round(hmEmpty / empty.seconds),
      goal: '≥ 1.2× hand-made (empty)',
      met: hmEmpty / empty.seconds >= 1.2,
      note: `export ${round(empty.exportSeconds!)} s + load ${round(empty.loadSeconds!)} s`,
    },
    {
      section: 'load',
      name: 'Wharf sync → full warehouse (replay)',
      seconds: round(full.seconds),
      rows,
      rowsPerSecond: Math.round(wharfFullRate),
      rssMB: round(full.maxRssMB, 0),
      ratio: round(hmFull / full.seconds),
      goal: '≥ 0.8× hand-made (full)',
      met: hmFull / full.seconds >= 0.8,
      note: `export ${round(full.exportSeconds!)} s + load ${round(full.loadSeconds!)} s; same rows, guard skips them`,
    },
    {
      section: 'load',
      name: 'hand-made → empty',
      seconds: round(hmEmpty),
      rows,
      rowsPerSecond: Math.round(rows / hmEmpty),
      note: 'psql dump | gzip -1; gunzip | psql \\copy unlogged; INSERT … ON CONFLICT DO UPDATE',
    },
    {
      section: 'load',
      name: 'hand-made → full',
      seconds: round(hmFull),
      rows,
      rowsPerSecond: Math.round(rows / hmFull),
      note: 'same; every row updated (no version guard)',
    },
    {
      section: 'load',
      name: 'naive INSERT (1,000 rows/statement) → empty',
      seconds: round(naiveSeconds),
      rows: naiveRows,
      rowsPerSecond: Math.round(naiveRate),
      ratio: round(wharfEmptyRate / naiveRate),
      goal: 'Wharf (empty) ≥ 5× naive',
      met: wharfEmptyRate / naiveRate >= 5,
      note: 'ratio = Wharf empty rows/s over naive rows/s',
    },
  );

  const missing = await ensurePgloader(ctx);
  if (missing) {
    ctx.log(`load: skipping pgloader: ${missing}`);
    ctx.rows.push({ section: 'load', name: 'pgloader', note: `skipped: ${missing}` });
  } else {
    ctx.log('load: pgloader (CSV file → table)');
    const dump = join(ctx.workDir, 'clicks.csv');
    const dumpSeconds = await timeShell(
      `psql -X -q -d "$SRC" -c "\\copy (${select}) to stdout (format csv)" > "${dump}"`,
      { SRC: source.url },
    );
    await sql(whUrl, `create schema pgl; ${clicksTableDdl('pgl.clicks').join('; ')}`);
    try {
      const pgloaderSeconds = await pgloaderLoad(whUrl, dump, ctx.workDir);
      const n = (await sql(whUrl, 'select count(*)::int as n from pgl.clicks')).rows[0].n as number;
      const total = dumpSeconds + pgloaderSeconds;
      ctx.rows.push({
        section: 'load',
        name: 'psql dump + pgloader → empty',
        seconds: round(total),
        rows: n,
        rowsPerSecond: Math.round(n / total),
        ratio: round(wharfEmptyRate / (n / total)),
        goal: 'Wharf (empty) ≥ 5× pgloader',
        met: wharfEmptyRate / (n / total) >= 5,
        note: `dump ${round(dumpSeconds)} s + pgloader ${round(pgloaderSeconds)} s (${Math.round(n / pgloaderSeconds)} rows/s alone)${n === rows ? '' : `; loaded ${n} of ${rows}`}`,
      });
    } catch (error) {
      const log = join(ctx.workDir, 'pgloader.log');
      ctx.rows.push({
        section: 'load',
        name: 'pgloader',
        note: `failed: ${(error as Error).message.split('\n')[0]}${existsSync(log) ? ` (see ${log})` : ''}`,
      });
    }
  }
  ctx.rows.push({
    section: 'load',
    name: 'Wharf load peak RSS',
    rssMB: round(rss, 0),
    goal: 'RSS < 300 MB',
    met: rss < 300,
  });
}
