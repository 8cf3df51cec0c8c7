import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { addSource, addSync } from '../pipeline/retl-flows.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { type BenchContext, median, round, sql } from './bench-context.js';
import { createBenchDatabase } from './bench-postgres.js';
import { hasProgram, timeShell } from './bench-shell.js';

const RSS_GOAL_MB = 300;
const RATIO_GOAL = 0.3;

/** The identify query of the bench, as a customer would write it. */
const QUERY =
  'SELECT id AS userId, email_address AS email, fname, lname, msisdn AS phone, plan, score, created_at ' +
  'FROM users WHERE last_updated >= {{last_sync_time}}';

/** A receiver process on 127.0.0.1 that counts the calls it is sent. */
interface ReceiverProcess {
  readonly url: string;
  counts(): Promise<{ calls: number; requests: number; bytes: number }>;
  stop(): Promise<void>;
}

async function startReceiver(): Promise<ReceiverProcess> {
  const child = spawn(process.execPath, ['bin/run-ts.js', 'bench/retl-receiver.ts'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => JSON.parse(((await lines.next()).value as string) ?? '{}');
  const { port } = (await next()) as { port: number };
  return {
    url: `http://wk_bench@127.0.0.1:${port}/v1/batch`,
    counts: async () => {
      child.stdin!.write('\n');
      return next();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        child.on('exit', () => resolve());
        child.stdin!.end();
      }),
  };
}

interface ChildRun {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly maxRssMB: number;
  readonly rows: number;
  readonly calls: number;
  readonly batches: number;
  readonly bytes: number;
}

function runChild(job: Record<string, string>): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/run-ts.js', 'bench/retl-child.ts'], {
      env: { ...process.env, BENCH_RETL: JSON.stringify(job) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{'))
        reject(new Error(`the retl run failed (${code}):\n${stderr.slice(-3000)}`));
      else resolve(JSON.parse(last) as ChildRun);
    });
  });
}

/**
 * Reverse ETL: a 1M-row identify query on a PostgreSQL warehouse, through `runSyncJob` (read, map, stage, deliver)
 * to a receiver in its own process on 127.0.0.1, beside the raw read of the same rows with `psql \copy`.
 * The cases take turns for `--retl-runs` rounds; the figures are medians.
 */
export async function retlBench(ctx: BenchContext): Promise<void> {
  const rows = ctx.clicks;
  const warehouseUrl = await createBenchDatabase(ctx.server, 'bench_retl_warehouse');
  const controlUrl = await createBenchDatabase(ctx.server, 'bench_retl_control');
  ctx.log(`retl: ${rows} users in the warehouse`);
  await sql(
    warehouseUrl,
    `create table users (id bigint primary key, email_address text, fname text, lname text, msisdn text, plan text,
       score numeric(10,2), created_at timestamptz, last_updated bigint);
     insert into users select i, 'user' || i || '@example.com', 'First' || (i % 1000), 'Last' || (i % 777),
       '+44' || (7000000000 + i), case when i % 3 = 0 then 'pro' else 'free' end, (i % 10000) / 100.0,
       timestamptz '2024-01-01' + i * interval '1 second', 1700000000 + i
     from generate_series(1, ${rows}) i`,
  );
  await sql(warehouseUrl, 'vacuum analyze users');
  const psql = await hasProgram('psql');
  const receiver = await startReceiver();
  process.env.WHARF_MASTER_KEY ??= randomBytes(32).toString('base64');
  const stagingDir = join(ctx.workDir, 'retl-staging');
  const spoolDir = join(ctx.workDir, 'retl-spool');
  const rt = new Runtime(
    resolveSettings({ sourceUrl: controlUrl, stagingUrl: `file://${stagingDir}`, spoolDir }, {}),
  );
  const times = { wharf: [] as number[], cpu: [] as number[], psql: [] as number[] };
  let rss = 0;
  let last: ChildRun | undefined;
  const loads: number[] = [];
  try {
    const url = new URL(warehouseUrl);
    url.searchParams.set('sslmode', 'disable');
    const source = await addSource(rt, { account: 1, engine: 'postgres', url: url.href });
    const rounds = ctx.options.retlRuns;
    for (let r = 1; r <= rounds; r++) {
      // a new sync each round: its first run reads every row
      const { id } = await addSync(rt, {
        source: source.id,
        name: `bench-${r}`,
        type: 'identify',
        query: QUERY,
        every: '1h',
        deliverTo: receiver.url,
      });
      loads.push(loadavg()[0]!);
      ctx.log(`retl round ${r}/${rounds}: wharf retl run (${rows} rows → calls → receiver)`);
      const before = (await receiver.counts()).calls;
      last = await runChild({ controlUrl, stagingDir, spoolDir, syncId: id });
      const received = (await receiver.counts()).calls - before;
      if (last.calls !== rows || received !== rows) {
        throw new Error(
          `expected ${rows} calls at the receiver, the run sent ${last.calls} and it got ${received}`,
        );
      }
      times.wharf.push(last.seconds);
      times.cpu.push(last.cpuSeconds);
      rss = Math.max(rss, last.maxRssMB);
      rmSync(stagingDir, { recursive: true, force: true });
      if (psql) {
        ctx.log(`retl round ${r}/${rounds}: psql \\copy of the same query`);
        times.psql.push(
          await timeShell(
            `psql -X -q -d "$URL" -c "\\copy (${QUERY.replace('{{last_sync_time}}', '0')}) to stdout (format csv)" > /dev/null`,
            { URL: warehouseUrl },
          ),
        );
      }
    }
  } finally {
    await rt.close();
    await receiver.stop();
  }
  const wharfSeconds = median(times.wharf);
  const each = (list: number[]) =>
    list.length > 1 ? `; runs ${list.map((t) => round(t)).join(' / ')} s` : '';
  const load = `load average ${loads.map((l) => round(l, 1)).join(' / ')}`;
  ctx.extra.retl = {
    rows,
    runs: times,
    load: loads,
    batches: last?.batches,
    requestMB: round((last?.bytes ?? 0) / 1e6),
  };
  const psqlSeconds = psql ? median(times.psql) : undefined;
  const ratio = psqlSeconds === undefined ? undefined : psqlSeconds / wharfSeconds;
  ctx.rows.push({
    section: 'retl',
    name: 'Wharf retl run: identify query → calls at a receiver',
    seconds: round(wharfSeconds),
    rows,
    rowsPerSecond: Math.round(rows / wharfSeconds),
    rssMB: round(rss, 0),
    ...(ratio === undefined ? {} : { ratio: round(ratio) }),
    goal: `≥ ${RATIO_GOAL}× psql \\copy; RSS < ${RSS_GOAL_MB} MB`,
    met: ratio !== undefined && ratio >= RATIO_GOAL && rss < RSS_GOAL_MB,
    note: `${last?.batches} batches, ${round((last?.bytes ?? 0) / 1e6)} MB of requests; CPU ${round(median(times.cpu))} s; ${load}${each(times.wharf)}`,
  });
  if (psqlSeconds !== undefined) {
    ctx.rows.push({
      section: 'retl',
      name: 'psql \\copy (same query) > /dev/null',
      seconds: round(psqlSeconds),
      rows,
      rowsPerSecond: Math.round(rows / psqlSeconds),
      note: `the raw read of the same rows${each(times.psql)}`,
    });
  } else {
    ctx.log('retl: psql is not installed; the baseline (and the ratio) is left out');
  }
}
