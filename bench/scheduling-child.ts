// One `wharf run`-like process for the scheduling benchmark; the job comes as JSON in BENCH_SCHED.
// `idle`: Wharf's own Scheduler (as `wharf run` builds it) on graphile-worker or on pg-boss, with connectors that
// have nothing new, for a number of ticks; the last line of stdout is the JSON result (seconds per tick,
// statements per tick, tick start lag). `busy`: the same slot claim and one batch of jobs per slot, every
// connector queued each tick, each job a stand-in for a small load (the connector's advisory lock on the
// control database, `workMs` held, a row written in `bench_loads`); until SIGTERM (or SIGKILL).
import pg from 'pg';
import { migrateControl } from '../control/control-schema.js';
import { silentLogger } from '../core/logger.js';
import { tryAdvisoryLock } from '../db/postgres/locks.js';
import { connectorLockKey } from '../pipeline/connector-job.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { GraphileQueue, workerSchema } from '../scheduler/graphile-queue.js';
import { type JobQueue, jobKey, type NewJob } from '../scheduler/job-queue.js';
import { delayToNextTick, Scheduler, slotOf } from '../scheduler/scheduler.js';
import { PgBossQueue } from './pgboss-queue.js';

export interface SchedulingJob {
  readonly mode: 'idle' | 'busy';
  readonly queue: 'graphile-worker' | 'pg-boss';
  readonly url: string;
  readonly stagingDir: string;
  readonly everyMs: number;
  readonly concurrency: number;
  /** idle: ticks to run. */
  readonly ticks?: number;
  /** busy: connectors (ids 1…n) and the stand-in load's duration. */
  readonly connectors?: number;
  readonly workMs?: number;
}

const job = JSON.parse(process.env.BENCH_SCHED ?? '{}') as SchedulingJob;

// every statement this process sends, whichever library sends it (all use this `pg`)
let statements = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  statements++;
  return (query as (...a: unknown[]) => unknown).apply(this, args);
} as typeof pg.Client.prototype.query;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2;
};

function queueFor(logger = silentLogger()): JobQueue {
  return job.queue === 'pg-boss'
    ? new PgBossQueue(job.url)
    : new GraphileQueue({
        url: job.url,
        schema: workerSchema('wharf'),
        logger,
        pollIntervalMs: Math.min(1000, Math.max(100, Math.round(job.everyMs / 4))),
      });
}

async function idle(): Promise<void> {
  const rt = new Runtime(
    resolveSettings(
      { sourceUrl: job.url, stagingUrl: `file://${job.stagingDir}`, window: '1d', settle: '0s' },
      {},
    ),
    { logger: silentLogger() },
  );
  const scheduler = new Scheduler(rt, {
    everyMs: job.everyMs,
    phaseMs: 0,
    concurrency: job.concurrency,
    queue: queueFor(),
  });
  const stop = new AbortController();
  const running = scheduler.run(stop.signal);
  const ticks: { seconds: number; lagMs: number; statementsAtEnd: number }[] = [];
  let last: Date | undefined;
  while (ticks.length < (job.ticks ?? 5)) {
    await sleep(20);
    const t = scheduler.lastTick;
    if (!t || t.startedAt === last) continue;
    last = t.startedAt;
    const start = t.startedAt.getTime();
    ticks.push({
      seconds: t.seconds,
      lagMs: start - slotOf(start, job.everyMs, 0),
      statementsAtEnd: statements,
    });
  }
  stop.abort();
  await running;
  await rt.close();
  // between the ends of the first and the last tick: every statement of a tick (the queue's polls included)
  const perTick = (ticks.at(-1)!.statementsAtEnd - ticks[0]!.statementsAtEnd) / (ticks.length - 1);
  process.stdout.write(
    `${JSON.stringify({
      ticks: ticks.length,
      secondsPerTick: median(ticks.slice(1).map((t) => t.seconds)),
      secondsPerTickMax: Math.max(...ticks.slice(1).map((t) => t.seconds)),
      statementsPerTick: perTick,
      startLagMs: median(ticks.slice(1).map((t) => t.lagMs)),
      // the first tick also opens the pools and reads the catalog
      firstTickSeconds: ticks[0]!.seconds,
    })}\n`,
  );
}

async function busy(): Promise<void> {
  // the bench's own rows (its instrument, not Wharf's work) are written without waiting for fsync
  const pool = new pg.Pool({
    connectionString: job.url,
    max: job.concurrency + 2,
    options: '-c synchronous_commit=off',
  });
  pool.on('error', () => {});
  const client = await pool.connect();
  try {
    await migrateControl(client, 'wharf');
  } finally {
    client.release();
  }
  const ids = Array.from({ length: job.connectors ?? 1000 }, (_, i) => String(i + 1));
  const queue = queueFor();
  let done = 0;
  await queue.start(async (_task, payload) => {
    const started = new Date();
    const lock = await tryAdvisoryLock(job.url, connectorLockKey('wharf', payload.id), 'wharf-bench-load');
    if (!lock) {
      await pool.query(
        'insert into bench_loads (connector, pid, started_at, ended_at, skipped) values ($1, $2, $3, $3, true)',
        [payload.id, process.pid, started],
      );
      return;
    }
    try {
      const { rows } = await pool.query<{ id: string }>(
        'insert into bench_loads (connector, pid, started_at) values ($1, $2, $3) returning id',
        [payload.id, process.pid, started],
      );
      await sleep(job.workMs ?? 20);
      await pool.query('update bench_loads set ended_at = clock_timestamp() where id = $1', [rows[0]!.id]);
      done++;
    } finally {
      await lock.release();
    }
  }, job.concurrency);
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  const name = `bench:${process.pid}`;
  while (!stop.signal.aborted) {
    const slot = slotOf(Date.now(), job.everyMs, 0);
    try {
      const { rowCount } = await pool.query(
        `insert into wharf.scheduler_slots as s (name, last_slot, planned_by) values ('plan', $1, $2)
         on conflict (name) do update set last_slot = excluded.last_slot, planned_at = now(), planned_by = excluded.planned_by
          where s.last_slot < excluded.last_slot`,
        [new Date(slot), name],
      );
      if (rowCount === 1) {
        const jobs: NewJob[] = ids.map((id) => ({
          task: 'connector',
          payload: { id, attempt: 1 },
          key: jobKey('connector', id),
        }));
        await queue.add(jobs, true);
        await pool.query(
          'insert into bench_plans (slot, pid, queued_at) values ($1, $2, clock_timestamp())',
          [new Date(slot), process.pid],
        );
      }
    } catch (error) {
      process.stderr.write(`plan failed: ${(error as Error).message}\n`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, delayToNextTick(Date.now(), job.everyMs, 0));
      stop.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  await queue.stop();
  await pool.end();
  process.stdout.write(`${JSON.stringify({ loads: done, statements })}\n`);
}

if (job.mode === 'idle') await idle();
else await busy();
process.exit(0);
