// `npm run bench`: Wharf's export, load, lag and per-connector figures beside their baselines, in one run.
// Sections: `npm run bench -- scheduling` (one or more names first) or --only startup,export,load,merge,lag,connectors,delivery,retl,api,scheduling.
// Flags: --clicks N (default 1,000,000; env BENCH_CLICKS),
// --naive-rows N, --load-rounds N (default 3), --load-servers 18,15, --load-fsync on,off, --merge-rows N, --export-runs N (default 3; medians), --retl-runs N (default 3), --lag-scale N (default 60), --lag-minutes N, --connectors N, --keep.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { apiBench } from './api-bench.js';
import { type BenchContext, type BenchOptions, type BenchRow, round, sql } from './bench-context.js';
import { startBenchPostgres } from './bench-postgres.js';
import { connectorsBench } from './connectors-bench.js';
import { deliveryBench } from './delivery-bench.js';
import { exportBench } from './export-bench.js';
import { lagBench } from './lag-bench.js';
import { loadBench } from './load-bench.js';
import { mergeBench } from './merge-bench.js';
import { renderMarkdown, renderTable } from './report.js';
import { retlBench } from './retl-bench.js';
import { schedulingBench } from './scheduling-bench.js';
import { startupBench } from './startup-bench.js';

const SECTIONS = [
  'startup',
  'export',
  'load',
  'merge',
  'lag',
  'connectors',
  'delivery',
  'retl',
  'api',
  'scheduling',
] as const;
type Section = (typeof SECTIONS)[number];

function flag(name: string): string | undefined {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

function number(name: string, env: string, fallback: number): number {
  const raw = flag(name) ?? process.env[env];
  if (raw === undefined) return fallback;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`--${name} must be a positive number, got ${raw}\n`);
    process.exit(2);
  }
  return n;
}

const clicks = number('clicks', 'BENCH_CLICKS', 1_000_000);
const options: BenchOptions = {
  clicks,
  naiveRows: number('naive-rows', 'BENCH_NAIVE_ROWS', Math.min(clicks, 250_000)),
  mergeRows: number('merge-rows', 'BENCH_MERGE_ROWS', clicks),
  lagScale: number('lag-scale', 'BENCH_LAG_SCALE', 60),
  lagMinutes: number('lag-minutes', 'BENCH_LAG_MINUTES', 30),
  connectors: number('connectors', 'BENCH_CONNECTORS', 100),
  connectorClicks: number('connector-clicks', 'BENCH_CONNECTOR_CLICKS', 50_000),
  exportRuns: number('export-runs', 'BENCH_EXPORT_RUNS', 3),
  retlRuns: number('retl-runs', 'BENCH_RETL_RUNS', 3),
  loadRounds: number('load-rounds', 'BENCH_LOAD_ROUNDS', 3),
  loadServers: (flag('load-servers') ?? process.env.BENCH_LOAD_SERVERS ?? '18,15').split(','),
  loadFsync: (flag('load-fsync') ?? process.env.BENCH_LOAD_FSYNC ?? 'on,off').split(',') as ('on' | 'off')[],
};
for (const f of options.loadFsync) {
  if (f !== 'on' && f !== 'off') {
    process.stderr.write(`--load-fsync takes on, off or on,off; got ${f}\n`);
    process.exit(2);
  }
}
// section names before the first flag: `npm run bench -- scheduling`
const named = process.argv
  .slice(2)
  .filter((a, i, all) => !a.startsWith('--') && (i === 0 || !all[i - 1]!.startsWith('--')));
const only = (
  flag('only') ??
  (named.length > 0 ? named.join(',') : undefined) ??
  process.env.BENCH_ONLY ??
  SECTIONS.join(',')
).split(',') as Section[];
for (const s of only) {
  if (!SECTIONS.includes(s)) {
    process.stderr.write(`--only takes ${SECTIONS.join(', ')}; got ${s}\n`);
    process.exit(2);
  }
}

const started = Date.now();
const log = (line: string) =>
  process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
const workDir = mkdtempSync(join(tmpdir(), 'wharf-bench-'));
log(`work directory ${workDir}`);
const server = await startBenchPostgres(join(workDir, 'pg'));
const ctx: BenchContext = { server, workDir, clicks, options, rows: [] as BenchRow[], extra: {}, log };
const failures: string[] = [];
try {
  const plan: [Section, (c: BenchContext) => Promise<void>][] = [
    ['startup', startupBench],
    ['export', exportBench],
    ['load', loadBench],
    ['merge', mergeBench],
    ['lag', lagBench],
    ['connectors', connectorsBench],
    ['delivery', deliveryBench],
    ['retl', retlBench],
    ['api', apiBench],
    ['scheduling', schedulingBench],
  ];
  for (const [section, run] of plan) {
    if (!only.includes(section)) continue;
    try {
      // the dirty pages of the sections before are written now, not during this one
      await sql(server.url('postgres'), 'checkpoint');
      await run(ctx);
    } catch (error) {
      const message = `${section}: ${(error as Error).message}`;
      failures.push(message);
      log(`FAILED ${message}`);
    }
  }
  const cpu = cpus();
  const results = {
    date: new Date().toISOString(),
    machine: {
      cpu: cpu[0]?.model ?? 'unknown',
      cores: cpu.length,
      memoryGB: round(totalmem() / 2 ** 30, 1),
      kernel: release(),
      node: process.version,
    },
    postgres: await server.settings(),
    options,
    sections: only,
    seconds: round((Date.now() - started) / 1000, 0),
    rows: ctx.rows,
    details: ctx.extra,
    failures,
  };
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(dir, 'latest.md'), renderMarkdown(results));
  process.stdout.write(`${renderTable(ctx.rows)}\n`);
  log(`results in bench/results/latest.json and latest.md (${results.seconds} s)`);
} finally {
  await server.stop().catch(() => {});
  if (!process.argv.includes('--keep')) rmSync(workDir, { recursive: true, force: true });
}
process.exit(failures.length > 0 ? 1 : 0);
