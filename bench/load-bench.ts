import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parse } from 'csv-parse';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { trackingCatalog } from '../catalog/tracking.js';
import { migrateControl } from '../control/control-schema.js';
import { literalPg, quotePg } from '../db/postgres/quote.js';
import { windowId } from '../exporter/windows.js';
import { LEDGER_TABLE, LOADED_AT_COLUMN, WINDOW_COLUMN } from '../loaders/dialect.js';
import { pgColumnType } from '../loaders/postgres/postgres-dialect.js';
import { PostgresWarehouse } from '../loaders/postgres/postgres-warehouse.js';
import {
  type BenchContext,
  COARSE_MS,
  clicksSelect,
  clicksStream,
  median,
  prepareBigSource,
  round,
  sql,
} from './bench-context.js';
import { type BenchServer, createBenchDatabase, setFsync, startDebianPostgres15 } from './bench-postgres.js';
import { hasProgram, runWharfChild, timeShell } from './bench-shell.js';
import {
  type CaseId,
  cols,
  fingerprintSql,
  handMadePrefill,
  handMadeUpsert,
  historySql,
  LOAD_CASES,
  TEMPLATE_SCHEMA,
  templateDdl,
  wharfPrefill,
} from './load-cases.js';

const q = quotePg;

/** DDL of a clicks table like the warehouse's: primary key and an index on updated_at. */
export function clicksTableDdl(table: string, withKeys = true): string[] {
  const defs = clicksStream.columns.map((c) => `${q(c.name)} ${pgColumnType(c)}`);
  if (!withKeys) return [`create table ${table} (${defs.join(', ')})`];
  return [
    `create table ${table} (${defs.join(', ')}, primary key (event_id))`,
    `create index on ${table} (updated_at)`,
  ];
}

/**
 * The hand-made pipeline: psql dump | gzip -1, gunzip | psql \\copy into an unlogged table, INSERT … ON CONFLICT with
 * the same version guard as Wharf's, into `schema`.clicks. Resolves to the seconds of the three steps.
 */
export async function handMade(
  sourceUrl: string,
  whUrl: string,
  select: string,
  dir: string,
  schema = 'handmade',
): Promise<{ seconds: number; dump: number; copy: number; merge: number }> {
  const gz = join(dir, 'handmade.csv.gz');
  const env = { SRC: sourceUrl, WH: whUrl };
  const stageName = `${schema}.stage`;
  const dump = await timeShell(
    `psql -X -q -d "$SRC" -c "\\copy (${select}) to stdout (format csv)" | gzip -1 > "${gz}"`,
    env,
  );
  const stage = clicksTableDdl(stageName, false)[0]!.replace('create table', 'create unlogged table');
  const copy = await timeShell(
    `psql -X -q -v ON_ERROR_STOP=1 -d "$WH" -c "drop table if exists ${stageName}" -c '${stage}' && ` +
      `gunzip -c "${gz}" | psql -X -q -v ON_ERROR_STOP=1 -d "$WH" -c "\\copy ${stageName} from stdin (format csv)"`,
    env,
  );
  const merge = await timeShell(
    `psql -X -q -v ON_ERROR_STOP=1 -d "$WH" -c '${handMadeUpsert(schema, stageName)}' -c "drop table ${stageName}"`,
    env,
  );
  rmSync(gz, { force: true });
  return { seconds: dump + copy + merge, dump, copy, merge };
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

/** One server and fsync setting the cases run on. */
interface LoadConfig {
  readonly label: string;
  readonly server: BenchServer;
  readonly fsync: 'on' | 'off';
}

interface Round {
  readonly seconds: number;
  readonly exportSeconds?: number;
  readonly loadSeconds?: number;
  readonly rssMB?: number;
}

const HOUR = 3_600_000;
const WHARF_SCHEMA = 'tracking';
const HAND_SCHEMA = 'handmade';

const secs = (values: readonly number[]) => values.map((v) => round(v).toFixed(2)).join(' / ');
const range = (values: readonly number[]) =>
  `${round(Math.min(...values)).toFixed(2)}–${round(Math.max(...values)).toFixed(2)}`;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

async function run(url: string, statements: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}

/** Start-up of the compiled CLI (`node bin/wharf.js --version`), median of 3: a `wharf sync` pays it once. */
async function cliStartSeconds(): Promise<number> {
  // dist/ up to date first: bin/wharf.js runs the TypeScript sources through tsx when it is not
  await timeShell('node scripts/build.js > /dev/null');
  const times: number[] = [];
  for (let i = 0; i < 3; i++) times.push(await timeShell('node bin/wharf.js --version > /dev/null'));
  return median(times);
}

/** The source, its window, the warehouse database and the template tables, once per server. */
async function prepareServer(ctx: BenchContext) {
  const source = await prepareBigSource(ctx);
  const rows = source.rowsByStream.clicks ?? ctx.clicks;
  const high = await sql(source.url, 'select max(updated_at) as h from public.clicks');
  const boundary = Math.floor((high.rows[0].h as Date).getTime() / COARSE_MS) * COARSE_MS + COARSE_MS;
  const window = { start: new Date(boundary - COARSE_MS), end: new Date(boundary) };
  const select = clicksSelect(window.start, window.end, 'table');
  const whUrl = await createBenchDatabase(ctx.server, 'bench_warehouse');
  await run(whUrl, templateDdl());
  await timeShell(
    `psql -X -q -v ON_ERROR_STOP=1 -d "$SRC" -c "\\copy (${select}) to stdout (format csv)" | ` +
      `psql -X -q -v ON_ERROR_STOP=1 -d "$WH" -c "\\copy ${TEMPLATE_SCHEMA}.clicks from stdin (format csv)"`,
    { SRC: source.url, WH: whUrl },
  );
  await run(whUrl, [historySql(), `vacuum analyze ${TEMPLATE_SCHEMA}.clicks`]);
  const n = (await sql(whUrl, `select count(*)::int as n from ${TEMPLATE_SCHEMA}.clicks`)).rows[0]
    .n as number;
  if (n !== rows) throw new Error(`the window holds ${n} clicks, the source ${rows}`);
  // each case's warehouse once, as a database of its own that every round copies (CREATE DATABASE … TEMPLATE):
  // Wharf's schema and the hand-made one in the same state, keys built, vacuumed and analyzed
  for (const c of LOAD_CASES) {
    ctx.log(`load: preparing the warehouse of "${c.name}"`);
    const url = await copyDatabase(ctx.server, 'bench_warehouse', caseDatabase(c.id));
    await run(url, [
      ...wharfPrefill(WHARF_SCHEMA, c.id),
      ...handMadePrefill(HAND_SCHEMA, c.id),
      `drop schema ${TEMPLATE_SCHEMA} cascade`,
    ]);
  }
  return { source, rows, boundary, select, whUrl };
}

type Prepared = Awaited<ReturnType<typeof prepareServer>>;

const caseDatabase = (id: CaseId) => `bench_case_${id}`;

/** A copy of database `from` (which nobody may be connected to), made as files (STRATEGY FILE_COPY, PostgreSQL 15+). */
async function copyDatabase(server: BenchServer, from: string, to: string): Promise<string> {
  const client = new pg.Client({ connectionString: server.url('postgres') });
  await client.connect();
  try {
    await client.query(`drop database if exists "${to}" with (force)`);
    await client.query(`create database "${to}" template "${from}" strategy file_copy`);
  } finally {
    await client.end();
  }
  return server.url(to);
}

/** Fresh control schema and staging folder per Wharf run; the previous ones are dropped. */
function wharfSync(ctx: BenchContext, p: Prepared, whUrl: string, name: string) {
  const stagingDir = join(ctx.workDir, `load-${name}`);
  return {
    stagingDir,
    run: () =>
      runWharfChild({
        sourceUrl: p.source.url,
        streams: ['clicks'],
        sizes: { fineMs: 60_000, coarseMs: COARSE_MS },
        settleMs: 0,
        maxWindows: 1,
        warehouseUrl: whUrl,
        schema: WHARF_SCHEMA,
        account: 1,
        kind: 'sync',
        controlSchema: `bench_${name}`,
        stagingDir,
        replay: false,
      }),
    cleanup: async () => {
      await sql(p.source.url, `drop schema if exists "bench_${name}" cascade`);
      rmSync(stagingDir, { recursive: true, force: true });
      rmSync(`${stagingDir}-spool`, { recursive: true, force: true });
    },
  };
}

/** The four cases on one configuration, Wharf and the hand-made pipeline taking turns over the rounds. */
async function runCases(ctx: BenchContext, p: Prepared, cfg: LoadConfig, startup: number) {
  const rounds = ctx.options.loadRounds;
  const out: Record<string, { wharf: Round[]; hand: Round[]; load: string[]; rss: number[] }> = {};
  for (const c of LOAD_CASES) out[c.id] = { wharf: [], hand: [], load: [], rss: [] };
  for (let r = 0; r < rounds; r++) {
    for (const c of LOAD_CASES) {
      ctx.log(`load: ${cfg.label}, fsync ${cfg.fsync}: ${c.name}, round ${r + 1} of ${rounds}`);
      const whUrl = await copyDatabase(ctx.server, caseDatabase(c.id), 'bench_round');
      const sync = wharfSync(ctx, p, whUrl, `load_${c.id}_${r}`);
      const wharf = async () => {
        await sql(ctx.server.url('postgres'), 'checkpoint');
        const result = await sync.run();
        out[c.id]!.wharf.push({
          seconds: result.seconds + startup,
          exportSeconds: result.exportSeconds!,
          loadSeconds: result.loadSeconds!,
        });
        out[c.id]!.rss.push(result.maxRssMB);
      };
      const hand = async () => {
        await sql(ctx.server.url('postgres'), 'checkpoint');
        const h = await handMade(p.source.url, whUrl, p.select, ctx.workDir, HAND_SCHEMA);
        out[c.id]!.hand.push({ seconds: h.seconds, exportSeconds: h.dump, loadSeconds: h.copy + h.merge });
      };
      // turns: Wharf first in even rounds, the hand-made pipeline first in odd ones
      if (r % 2 === 0) {
        await wharf();
        await hand();
      } else {
        await hand();
        await wharf();
      }
      out[c.id]!.load.push(load());
      await sync.cleanup();
      const a = (await sql(whUrl, fingerprintSql(WHARF_SCHEMA))).rows[0];
      const b = (await sql(whUrl, fingerprintSql(HAND_SCHEMA))).rows[0];
      if (a.n !== b.n || a.h !== b.h)
        throw new Error(
          `${c.name}: Wharf's warehouse (${a.n} rows, ${a.h}) differs from the hand-made one (${b.n} rows, ${b.h})`,
        );
    }
  }
  const label = `${cfg.label}, fsync ${cfg.fsync}`;
  const summary: Record<string, unknown> = {};
  for (const c of LOAD_CASES) {
    const o = out[c.id]!;
    const w = o.wharf.map((x) => x.seconds);
    const h = o.hand.map((x) => x.seconds);
    const ratio = median(h) / median(w);
    const rss = Math.max(...o.rss);
    summary[c.id] = { wharf: o.wharf, hand: o.hand, loadavg: o.load, rssMB: o.rss, ratio };
    ctx.rows.push(
      {
        section: 'load',
        name: `${label} · ${c.name} · Wharf sync`,
        seconds: round(median(w)),
        rows: p.rows,
        rowsPerSecond: Math.round(p.rows / median(w)),
        rssMB: round(rss, 0),
        ratio: round(ratio),
        ...(c.goal === undefined
          ? {}
          : { goal: `≥ ${c.goal.toFixed(1)}× hand-made, RSS < 300 MB`, met: ratio >= c.goal && rss < 300 }),
        note:
          `rounds ${secs(w)} s (range ${range(w)}); export ${round(median(o.wharf.map((x) => x.exportSeconds!)))} s + ` +
          `load ${round(median(o.wharf.map((x) => x.loadSeconds!)))} s + CLI start ${round(startup)} s; load average ${o.load.join(', ')}`,
      },
      {
        section: 'load',
        name: `${label} · ${c.name} · hand-made`,
        seconds: round(median(h)),
        rows: p.rows,
        rowsPerSecond: Math.round(p.rows / median(h)),
        note: `rounds ${secs(h)} s (range ${range(h)}); dump ${round(median(o.hand.map((x) => x.exportSeconds!)))} s + copy and upsert ${round(median(o.hand.map((x) => x.loadSeconds!)))} s`,
      },
    );
  }
  return summary;
}

/**
 * One incremental load (the next hour of clicks, about 1/168 of the source) into a connector whose ledger and
 * control database already hold `stored` windows: the stored windows are written straight into the control
 * `windows` table and the warehouse ledger (hour windows before the new one), the warehouse holds the rows of
 * every earlier hour. Cases of 100 and 10,000 stored windows take turns; each round exports and loads the hour.
 */
async function incrementalCase(ctx: BenchContext, p: Prepared, cfg: LoadConfig) {
  const rounds = ctx.options.loadRounds;
  const lastHour = Math.floor((p.boundary - 120_000) / HOUR) * HOUR;
  const newId = windowId(new Date(lastHour), new Date(lastHour + HOUR));
  const counts = [100, 10_000];
  const schemaOf = (n: number) => `incr_${n}`;
  for (const n of counts) {
    const schema = schemaOf(n);
    const warehouse = new PostgresWarehouse({ client: { connectionString: p.whUrl }, schema });
    try {
      await warehouse.migrate(trackingCatalog, ['clicks']);
    } finally {
      await warehouse.close();
    }
    const table = `${q(schema)}.clicks`;
    const starts = Array.from({ length: n }, (_, i) => lastHour - (i + 1) * HOUR);
    await run(p.whUrl, [
      `truncate ${table}`,
      `insert into ${table} (${cols.join(', ')}, ${q(WINDOW_COLUMN)}, ${q(LOADED_AT_COLUMN)}) select *, 'prefill', now() from ${TEMPLATE_SCHEMA}.clicks where updated_at < ${literalPg(new Date(lastHour).toISOString())}`,
      `delete from ${q(schema)}.${q(LEDGER_TABLE)}`,
      `vacuum analyze ${table}`,
    ]);
    const client = new pg.Client({ connectionString: p.whUrl });
    await client.connect();
    try {
      await client.query(
        `insert into ${q(schema)}.${q(LEDGER_TABLE)} (window_id, stream, rows, sha256, files, window_start, window_end)
         select w, 'clicks', 6000, 'stored', 1, s, s + interval '1 hour' from unnest($1::text[], $2::timestamptz[]) as u(w, s)`,
        [starts.map((s) => windowId(new Date(s), new Date(s + HOUR))), starts.map((s) => new Date(s))],
      );
    } finally {
      await client.end();
    }
  }
  const times: Record<number, Round[]> = { 100: [], 10000: [] };
  const loads: string[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const n of r % 2 === 0 ? counts : [...counts].reverse()) {
      ctx.log(
        `load: ${cfg.label}, fsync ${cfg.fsync}: one new window, ${n} stored, round ${r + 1} of ${rounds}`,
      );
      const schema = schemaOf(n);
      const control = `bench_incr_${n}_${r}`;
      const client = new pg.Client({ connectionString: p.source.url });
      await client.connect();
      try {
        await migrateControl(client, control);
        const starts = Array.from({ length: n }, (_, i) => lastHour - (n - i) * HOUR);
        const ids = starts.map((s) => windowId(new Date(s), new Date(s + HOUR)));
        await client.query(
          `insert into ${q(control)}.windows (format, window_id, start_at, end_at, manifest_key, files, rows, bytes)
           select 'csv', w, s, s + interval '1 hour', 'csv/' || w || '/manifest.json', 1, 6000, 400000
             from unnest($1::text[], $2::timestamptz[]) as u(w, s) order by s`,
          [ids, starts.map((s) => new Date(s))],
        );
      } finally {
        await client.end();
      }
      await run(p.whUrl, [
        `delete from ${q(schema)}.clicks where ${q(WINDOW_COLUMN)} = ${literalPg(newId)}`,
        `delete from ${q(schema)}.${q(LEDGER_TABLE)} where window_id = ${literalPg(newId)}`,
        'checkpoint',
      ]);
      const stagingDir = join(ctx.workDir, `incr-${n}-${r}`);
      const result = await runWharfChild({
        sourceUrl: p.source.url,
        streams: ['clicks'],
        sizes: { fineMs: HOUR, coarseMs: HOUR },
        settleMs: 0,
        maxWindows: 1,
        warehouseUrl: p.whUrl,
        schema,
        account: 1,
        kind: 'sync',
        controlSchema: control,
        stagingDir,
        replay: false,
        // as `wharf sync` runs it: the connector's progress has seen the stored windows, the schema is current
        afterSeq: n,
        migrate: false,
      });
      if (result.load?.lastWindow !== newId || result.load.windows !== 1)
        throw new Error(
          `incremental load of ${newId} loaded ${result.load?.windows} window(s) up to ${result.load?.lastWindow}`,
        );
      times[n]!.push({
        seconds: result.seconds,
        exportSeconds: result.exportSeconds!,
        loadSeconds: result.loadSeconds!,
        rssMB: result.maxRssMB,
      });
      loads.push(load());
      await sql(p.source.url, `drop schema if exists "${control}" cascade`);
      rmSync(stagingDir, { recursive: true, force: true });
      rmSync(`${stagingDir}-spool`, { recursive: true, force: true });
    }
  }
  const label = `${cfg.label}, fsync ${cfg.fsync}`;
  const med = (n: number) => median(times[n]!.map((t) => t.seconds));
  const ratio = med(10_000) / med(100);
  const windowRows = (
    await sql(
      p.whUrl,
      `select count(*)::int as n from incr_100.clicks where ${q(WINDOW_COLUMN)} = ${literalPg(newId)}`,
    )
  ).rows[0].n as number;
  for (const n of counts) {
    const t = times[n]!;
    ctx.rows.push({
      section: 'load',
      name: `${label} · one new window, ${n.toLocaleString('en-US')} stored · Wharf sync`,
      seconds: round(med(n)),
      rows: windowRows,
      rssMB: round(Math.max(...t.map((x) => x.rssMB!)), 0),
      ...(n === 10_000 ? { ratio: round(ratio), goal: '≤ 1.5× the 100-window load', met: ratio <= 1.5 } : {}),
      note: `rounds ${secs(t.map((x) => x.seconds))} s; export ${round(median(t.map((x) => x.exportSeconds!)))} s + load ${round(median(t.map((x) => x.loadSeconds!)))} s (without CLI start)`,
    });
  }
  return { times, loadavg: loads, ratio, windowRows };
}

/** Naive INSERTs and pgloader into an empty table: one run each, on the first configuration. */
async function otherBaselines(ctx: BenchContext, p: Prepared, wharfEmptySeconds: number) {
  const naiveRows = Math.min(ctx.options.naiveRows, p.rows);
  ctx.log(`load: naive loader (${naiveRows} rows, 1,000 per INSERT)`);
  await run(p.whUrl, [
    `drop schema if exists naive cascade`,
    `create schema naive`,
    ...clicksTableDdl('naive.clicks'),
  ]);
  const naiveSeconds = await naiveLoad(p.source.url, p.whUrl, p.select, naiveRows);
  const wharfRate = p.rows / wharfEmptySeconds;
  const naiveRate = naiveRows / naiveSeconds;
  ctx.rows.push({
    section: 'load',
    name: 'naive INSERT (1,000 rows/statement) → empty',
    seconds: round(naiveSeconds),
    rows: naiveRows,
    rowsPerSecond: Math.round(naiveRate),
    ratio: round(wharfRate / naiveRate),
    goal: 'Wharf (empty) ≥ 5× naive',
    met: wharfRate / naiveRate >= 5,
    note: 'one run; ratio = Wharf empty rows/s (median) over naive rows/s',
  });
  const missing = await ensurePgloader(ctx);
  if (missing) {
    ctx.log(`load: skipping pgloader: ${missing}`);
    ctx.rows.push({ section: 'load', name: 'pgloader', note: `skipped: ${missing}` });
    return;
  }
  ctx.log('load: pgloader (CSV file → table)');
  const dump = join(ctx.workDir, 'clicks.csv');
  const dumpSeconds = await timeShell(
    `psql -X -q -d "$SRC" -c "\\copy (${p.select}) to stdout (format csv)" > "${dump}"`,
    { SRC: p.source.url },
  );
  await run(p.whUrl, [
    `drop schema if exists pgl cascade`,
    `create schema pgl`,
    ...clicksTableDdl('pgl.clicks'),
  ]);
  try {
    const pgloaderSeconds = await pgloaderLoad(p.whUrl, dump, ctx.workDir);
    const n = (await sql(p.whUrl, 'select count(*)::int as n from pgl.clicks')).rows[0].n as number;
    const total = dumpSeconds + pgloaderSeconds;
    ctx.rows.push({
      section: 'load',
      name: 'psql dump + pgloader → empty',
      seconds: round(total),
      rows: n,
      rowsPerSecond: Math.round(n / total),
      ratio: round(wharfRate / (n / total)),
      goal: 'Wharf (empty) ≥ 5× pgloader',
      met: wharfRate / (n / total) >= 5,
      note: `one run; dump ${round(dumpSeconds)} s + pgloader ${round(pgloaderSeconds)} s (${Math.round(n / pgloaderSeconds)} rows/s alone)${n === p.rows ? '' : `; loaded ${n} of ${p.rows}`}`,
    });
  } catch (error) {
    const log = join(ctx.workDir, 'pgloader.log');
    ctx.rows.push({
      section: 'load',
      name: 'pgloader',
      note: `failed: ${(error as Error).message.split('\n')[0]}${existsSync(log) ? ` (see ${log})` : ''}`,
    });
  } finally {
    rmSync(dump, { force: true });
  }
}

/**
 * Load: the four cases (empty warehouse, every row updated, identical replay, steady state) against the hand-made
 * pipeline, taking turns over the rounds, with fsync on and off, on the bench's PostgreSQL 18 and on Debian's
 * PostgreSQL 15 when it is installed; then one incremental window with 100 and 10,000 windows stored.
 */
export async function loadBench(ctx: BenchContext): Promise<void> {
  const startup = await cliStartSeconds();
  ctx.log(`load: the compiled CLI starts in ${round(startup)} s (added to every Wharf sync)`);
  const details: Record<string, unknown> = { cliStartSeconds: startup, configs: {} };
  mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
  ctx.extra.load = details;
  const servers: { label: string; server: BenchServer | string; own: boolean }[] = [];
  if (ctx.options.loadServers.includes('18'))
    servers.push({ label: 'PostgreSQL 18', server: ctx.server, own: false });
  if (ctx.options.loadServers.includes('15')) {
    // its own folder: the postgres user cannot enter the bench's work directory
    const pg15 = await startDebianPostgres15(mkdtempSync(join(tmpdir(), 'wharf-bench-pg15-')));
    servers.push({ label: 'PostgreSQL 15', server: pg15, own: true });
  }
  // every server is prepared first; then each server with each fsync setting in turn
  const ready: { label: string; server: BenchServer; p: Prepared }[] = [];
  try {
    for (const s of servers) {
      if (typeof s.server === 'string') {
        ctx.log(`load: ${s.label} skipped: ${s.server}`);
        ctx.rows.push({ section: 'load', name: `${s.label}: every case`, note: `not run: ${s.server}` });
        continue;
      }
      const server = s.server;
      const version = (await server.settings()).server_version?.split(' ')[0] ?? '?';
      ready.push({ label: `PostgreSQL ${version}`, server, p: await prepareServer({ ...ctx, server }) });
    }
    let emptyOfFirst: number | undefined;
    for (const { label, server, p } of ready) {
      for (const fsync of ctx.options.loadFsync) {
        const sctx: BenchContext = { ...ctx, server };
        await setFsync(server, fsync);
        const cfg: LoadConfig = { label, server, fsync };
        const settings = await server.settings();
        const before = load();
        const cases = await runCases(sctx, p, cfg, startup);
        const incremental = await incrementalCase(sctx, p, cfg);
        (details.configs as Record<string, unknown>)[`${label}, fsync ${fsync}`] = {
          settings,
          loadavgBefore: before,
          loadavgAfter: load(),
          cases,
          incremental,
        };
        emptyOfFirst ??= median((cases.empty as { wharf: Round[] }).wharf.map((x) => x.seconds));
        // what is measured so far, in case the run is cut short
        writeFileSync(
          join(import.meta.dirname, 'results', 'load-partial.json.tmp'),
          `${JSON.stringify({ date: new Date().toISOString(), rows: ctx.rows, details }, null, 2)}\n`,
        );
      }
    }
    for (const { label, server } of ready) {
      await setFsync(server, 'on');
      await run(server.url('postgres'), [
        'drop database if exists bench_round with (force)',
        ...LOAD_CASES.map((c) => `drop database if exists ${caseDatabase(c.id)} with (force)`),
      ]);
      const rss = ctx.rows
        .filter((r) => r.name.startsWith(`${label},`) && r.rssMB !== undefined)
        .map((r) => r.rssMB!);
      ctx.rows.push({
        section: 'load',
        name: `${label} · Wharf peak RSS (every sync)`,
        rssMB: Math.max(...rss),
        goal: 'RSS < 300 MB',
        met: Math.max(...rss) < 300,
      });
    }
    // the other baselines last, once, on the first server with the first fsync setting
    const firstReady = ready[0];
    if (firstReady && emptyOfFirst !== undefined) {
      await setFsync(firstReady.server, ctx.options.loadFsync[0]!);
      await otherBaselines({ ...ctx, server: firstReady.server }, firstReady.p, emptyOfFirst);
      await setFsync(firstReady.server, 'on');
    }
  } finally {
    for (const s of servers) {
      if (!s.own || typeof s.server === 'string') continue;
      await s.server
        .stop()
        .catch((error) => ctx.log(`load: ${s.label} did not stop: ${(error as Error).message}`));
    }
  }
}
