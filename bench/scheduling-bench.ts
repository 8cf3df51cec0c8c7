import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { parseConnectionUrl } from '../connectors/connection-url.js';
import { ConnectorStore } from '../connectors/connector-store.js';
import { masterKeysFromEnv } from '../connectors/master-key.js';
import { migrateControl } from '../control/control-schema.js';
import { Secret } from '../core/secret.js';
import { initSource } from '../source/source-schema.js';
import { type BenchContext, round } from './bench-context.js';
import { createBenchDatabase } from './bench-postgres.js';
import type { SchedulingJob } from './scheduling-child.js';

const QUEUES = ['graphile-worker', 'pg-boss'] as const;
type QueueName = (typeof QUEUES)[number];
const CONNECTORS = 1000;
const IDLE_EVERY_MS = 10_000;
const IDLE_TICKS = 6;
/** (b) at 10 s ticks (the goal's) and at 30 s ticks: on 2 cores 1,000 stand-in jobs take longer than 10 s. */
const BUSY_TICKS_MS = [10_000, 30_000] as const;
const BUSY_WORK_MS = 20;
const CONCURRENCY = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const masterKey = randomBytes(32).toString('base64');

interface Child {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
}

function startChild(job: SchedulingJob): Child {
  const child = spawn(process.execPath, ['bin/run-ts.js', 'bench/scheduling-child.ts'], {
    env: { ...process.env, BENCH_SCHED: JSON.stringify(job), WHARF_MASTER_KEY: masterKey },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>(
    (resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

function lastJson<T>(out: { code: number | null; stdout: string; stderr: string }, what: string): T {
  const last = out.stdout.trim().split('\n').pop() ?? '';
  if (out.code !== 0 || !last.startsWith('{')) {
    throw new Error(`${what} failed (${out.code}):\n${out.stderr.slice(-3000)}`);
  }
  return JSON.parse(last) as T;
}

/** A control database with 1,000 warehouse connectors that have nothing new (nothing exported yet). */
async function idleDatabase(ctx: BenchContext, name: string): Promise<string> {
  const url = await createBenchDatabase(ctx.server, name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    const c = await pool.connect();
    try {
      await initSource(c, {});
      await migrateControl(c, 'wharf');
    } finally {
      c.release();
    }
    const store = new ConnectorStore(pool, masterKeysFromEnv({ WHARF_MASTER_KEY: masterKey }), 'wharf');
    const parsed = parseConnectionUrl(
      'postgres://loader@warehouse.invalid:5432/analytics?sslmode=verify-full',
    );
    for (let i = 0; i < CONNECTORS; i++) {
      await store.add({ account: i + 1, settings: parsed.settings, password: new Secret(`unused-${i}`) });
    }
  } finally {
    await pool.end();
  }
  return url;
}

interface IdleResult {
  readonly secondsPerTick: number;
  readonly secondsPerTickMax: number;
  readonly statementsPerTick: number;
  readonly startLagMs: number;
  readonly firstTickSeconds: number;
}

/** `wharf run --once` with 1,000 connectors and nothing new: the whole process, wall clock. */
async function once(ctx: BenchContext, url: string): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, ['bin/wharf.js', 'run', '--once', '--json'], {
    env: {
      ...process.env,
      WHARF_SOURCE_URL: url,
      WHARF_STAGING_URL: `file://${join(ctx.workDir, 'sched-once-staging')}`,
      WHARF_WINDOW: '1d',
      WHARF_SETTLE: '0s',
      WHARF_MASTER_KEY: masterKey,
      WHARF_HOME: join(ctx.workDir, 'sched-once-home'),
      WHARF_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  if (code !== 0) throw new Error(`wharf run --once failed (${code}): ${stderr.slice(-2000)}`);
  return (performance.now() - started) / 1000;
}

interface BusyResult {
  readonly killedAt: number;
  /** Slowest connector's first load start after the kill (s). */
  readonly allServedS: number;
  /** Slowest takeover of a job the killed process was running (s); 0 when it ran none at that instant. */
  readonly takeoverS: number;
  readonly inFlightAtKill: number;
  readonly overlaps: number;
  readonly skips: number;
  readonly loads: number;
  /** Connectors not loaded in some slot after the kill's (should be 0). */
  readonly missedAfterKill: number;
  readonly survivorsExit: (number | null)[];
  /** Stand-in loads per second, all processes (before the kill). */
  readonly loadsPerSecond: number;
}

async function busyCase(ctx: BenchContext, queue: QueueName, everyMs: number): Promise<BusyResult> {
  const url = await createBenchDatabase(ctx.server, `bench_sched_busy_${queue.replace('-', '_')}_${everyMs}`);
  const db = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await db.query(`create table bench_loads (id bigserial primary key, connector text not null, pid int not null,
      started_at timestamptz not null, ended_at timestamptz, skipped boolean not null default false)`);
    await db.query(
      'create table bench_plans (slot timestamptz not null, pid int not null, queued_at timestamptz not null)',
    );
    const c = await db.connect();
    try {
      await migrateControl(c, 'wharf');
    } finally {
      c.release();
    }
    const job: SchedulingJob = {
      mode: 'busy',
      queue,
      url,
      stagingDir: join(ctx.workDir, 'sched-busy'),
      everyMs,
      concurrency: CONCURRENCY,
      connectors: CONNECTORS,
      workMs: BUSY_WORK_MS,
    };
    const children = [startChild(job), startChild(job), startChild(job)];
    const victim = children[0]!;
    // three slots with everyone, then the kill 1 s into the fourth (its jobs under way), then two more slots
    const now = Date.now();
    const firstSlot = Math.floor(now / everyMs) * everyMs + everyMs;
    const killAt = firstSlot + 3 * everyMs + 1000;
    await sleep(killAt - Date.now());
    const dbKill = (await db.query<{ t: Date }>('select clock_timestamp() as t')).rows[0]!.t.getTime();
    victim.child.kill('SIGKILL');
    await sleep(2 * everyMs + 500);
    for (const ch of children.slice(1)) ch.child.kill('SIGTERM');
    const outs = await Promise.all(children.slice(1).map((ch) => ch.done));
    await victim.done;
    const victimPid = victim.child.pid!;
    const loads = (
      await db.query<{ connector: string; pid: number; s: Date; e: Date | null; skipped: boolean }>(
        'select connector, pid, started_at as s, ended_at as e, skipped from bench_loads order by started_at',
      )
    ).rows;
    const real = loads.filter((l) => !l.skipped);
    // never twice at once: for each connector, no load starts before the previous one ended
    let overlaps = 0;
    const byConnector = new Map<string, typeof real>();
    for (const l of real) byConnector.set(l.connector, [...(byConnector.get(l.connector) ?? []), l]);
    for (const list of byConnector.values()) {
      for (let i = 1; i < list.length; i++) {
        const prevEnd = list[i - 1]!.e?.getTime() ?? dbKill;
        if (list[i]!.s.getTime() < prevEnd) overlaps++;
      }
    }
    let allServed = 0;
    for (let i = 1; i <= CONNECTORS; i++) {
      const first = byConnector.get(String(i))?.find((l) => l.s.getTime() >= dbKill);
      allServed = Math.max(allServed, first ? first.s.getTime() - dbKill : Number.POSITIVE_INFINITY);
    }
    const inFlight = real.filter((l) => l.pid === victimPid && l.e === null);
    let takeover = 0;
    for (const l of inFlight) {
      const next = byConnector.get(l.connector)?.find((x) => x.pid !== victimPid && x.s.getTime() >= dbKill);
      takeover = Math.max(takeover, next ? next.s.getTime() - dbKill : Number.POSITIVE_INFINITY);
    }
    // every slot after the kill's: each connector loaded in it (by the end of the run)
    const plans = (
      await db.query<{ slot: Date }>('select distinct slot from bench_plans order by slot')
    ).rows.map((r) => r.slot.getTime());
    let missed = 0;
    const after = plans.filter((p) => p > dbKill);
    for (let k = 0; k < after.length - 1; k++) {
      const from = after[k]!;
      const to = after[k + 1]!;
      for (let i = 1; i <= CONNECTORS; i++) {
        const list = byConnector.get(String(i)) ?? [];
        if (!list.some((l) => l.s.getTime() >= from && l.s.getTime() < to)) missed++;
      }
    }
    const before = real.filter((l) => l.s.getTime() >= firstSlot && l.s.getTime() < dbKill);
    const span = before.length > 1 ? (before.at(-1)!.s.getTime() - before[0]!.s.getTime()) / 1000 : 0;
    return {
      loadsPerSecond: span > 0 ? before.length / span : 0,
      killedAt: dbKill,
      allServedS: allServed / 1000,
      takeoverS: takeover / 1000,
      inFlightAtKill: inFlight.length,
      overlaps,
      skips: loads.length - real.length,
      loads: real.length,
      missedAfterKill: missed,
      survivorsExit: outs.map((o) => o.code),
    };
  } finally {
    await db.end();
  }
}

/**
 * Scheduling on a job queue: (a) `wharf run` with 1,000 connectors and nothing new, per tick; (b) three processes
 * sharing 1,000 connectors queued every 10 s tick, one SIGKILLed mid-tick. Both on graphile-worker and pg-boss.
 */
export async function schedulingBench(ctx: BenchContext): Promise<void> {
  const idle: Record<string, IdleResult> = {};
  const busy: Record<string, BusyResult> = {};
  const busyKey = (queue: QueueName, everyMs: number) => `${queue} ${everyMs / 1000} s`;
  for (const queue of QUEUES) {
    ctx.log(`scheduling: (a) ${queue}, 1,000 connectors, nothing new, ${IDLE_TICKS} ticks of 10 s`);
    const url = await idleDatabase(ctx, `bench_sched_idle_${queue.replace('-', '_')}`);
    const child = startChild({
      mode: 'idle',
      queue,
      url,
      stagingDir: join(ctx.workDir, `sched-idle-${queue}`),
      everyMs: IDLE_EVERY_MS,
      concurrency: CONCURRENCY,
      ticks: IDLE_TICKS,
    });
    idle[queue] = lastJson<IdleResult>(await child.done, `scheduling (a) ${queue}`);
    if (queue === 'graphile-worker') {
      ctx.log('scheduling: wharf run --once, 1,000 connectors, nothing new (3 runs)');
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) runs.push(await once(ctx, url));
      runs.sort((a, b) => a - b);
      ctx.extra.schedulingOnce = { runs: runs.map((r) => round(r, 2)), median: round(runs[1]!, 2) };
      ctx.rows.push({
        section: 'scheduling',
        name: '`wharf run --once`, 1,000 connectors, nothing new',
        seconds: round(runs[1]!, 2),
        goal: '< 3 s',
        met: runs[1]! < 3,
        note: `median of 3 (${runs.map((r) => round(r, 2)).join(', ')} s), whole process: Node start, migrations check, export, plan`,
      });
    }
  }
  for (const everyMs of BUSY_TICKS_MS) {
    for (const queue of QUEUES) {
      ctx.log(
        `scheduling: (b) ${queue}, 3 processes x 1,000 connectors, ${everyMs / 1000} s ticks, one SIGKILLed`,
      );
      busy[busyKey(queue, everyMs)] = await busyCase(ctx, queue, everyMs);
    }
  }
  ctx.extra.scheduling = { idle, busy };
  for (const queue of QUEUES) {
    const a = idle[queue]!;
    ctx.rows.push({
      section: 'scheduling',
      name: `(a) ${queue}: a tick, 1,000 connectors, nothing new`,
      seconds: round(a.secondsPerTick, 3),
      note: `${round(a.statementsPerTick, 1)} statements/tick (10 s ticks, queue polls included); max ${round(a.secondsPerTickMax, 3)} s; start lag ${round(a.startLagMs, 0)} ms`,
    });
  }
  for (const everyMs of BUSY_TICKS_MS) {
    for (const queue of QUEUES) {
      const b = busy[busyKey(queue, everyMs)]!;
      const ticks = everyMs / 1000;
      ctx.rows.push({
        section: 'scheduling',
        name: `(b) ${queue}, ${ticks} s ticks: every connector loaded after a SIGKILL`,
        seconds: round(b.allServedS, 1),
        goal: `<= 2 ticks (${2 * ticks} s), never twice at once`,
        met: b.allServedS <= 2 * ticks && b.overlaps === 0,
        note: `takeover of ${b.inFlightAtKill} jobs in flight ${round(b.takeoverS, 1)} s; overlaps ${b.overlaps}; connector-slots missed after the kill ${b.missedAfterKill}; ${round(b.loadsPerSecond, 0)} loads/s; ${b.loads} loads, ${b.skips} skips; survivors exit ${b.survivorsExit.join(',')}`,
      });
    }
  }
}
