// The scheduler's job queue on pg-boss, for the scheduling benchmark only (Wharf runs on graphile-worker):
// the same JobQueue interface, configured at pg-boss's best for this case: LISTEN/NOTIFY on, heartbeats of
// 10 s (the smallest it takes) so that a dead process's jobs are failed over quickly, polling every 0.5 s (the
// smallest), one job per fetch (a dead process holds only the jobs it runs) and burst fetching while a
// backlog waits, with the stats it decides that on refreshed every second (60 s by default: with the
// defaults, 4 workers fetch 8 jobs a second in all).

import pg from 'pg';
import { PgBoss } from 'pg-boss';
import type { JobHandler, JobPayload, JobQueue, JobTask, NewJob } from '../scheduler/job-queue.js';

const QUEUES: Readonly<Record<JobTask, string>> = { connector: 'wharf_connector', sync: 'wharf_sync' };

export class PgBossQueue implements JobQueue {
  readonly #url: string;
  readonly #schema: string;
  #boss: PgBoss | undefined;
  #pool: pg.Pool | undefined;

  constructor(url: string, schema = 'wharf_boss') {
    this.#url = url;
    this.#schema = schema;
  }

  async start(handler: JobHandler, concurrency: number): Promise<void> {
    const boss = new PgBoss({
      connectionString: this.#url,
      schema: this.#schema,
      max: concurrency + 4,
      useListenNotify: true,
      schedule: false,
      queueCacheIntervalSeconds: 1,
      monitorIntervalSeconds: 1,
      superviseIntervalSeconds: 1,
    });
    boss.on('error', (error: unknown) => process.stderr.write(`pg-boss: ${(error as Error).message}\n`));
    await boss.start();
    this.#boss = boss;
    this.#pool = new pg.Pool({ connectionString: this.#url, max: 1 });
    for (const task of ['connector', 'sync'] as const) {
      const name = QUEUES[task];
      // stately: at most one job waiting and one running per singleton key
      await boss.createQueue(name, {
        policy: 'stately',
        retryLimit: 4,
        retryBackoff: true,
        heartbeatSeconds: 10,
        notify: true,
      });
      await boss.work<JobPayload>(
        name,
        {
          localConcurrency: concurrency,
          batchSize: 1,
          pollingIntervalSeconds: 0.5,
          notifyPollingIntervalSeconds: 0.5,
          // a backlog: fetch again at once rather than after the interval
          burstWhenReadyExceeds: 1,
        },
        async (jobs) => {
          for (const job of jobs) await handler(task, job.data);
        },
      );
    }
  }

  async add(jobs: readonly NewJob[]): Promise<void> {
    const boss = this.#boss;
    if (!boss) throw new Error('the job queue is not started');
    for (const task of ['connector', 'sync'] as const) {
      const mine = jobs.filter((j) => j.task === task);
      if (mine.length === 0) continue;
      await boss.insert(
        QUEUES[task],
        mine.map((j) => ({
          data: j.payload,
          singletonKey: j.key,
          ...(j.runAt ? { startAfter: j.runAt } : {}),
        })),
      );
    }
  }

  async pending(keys: readonly string[]): Promise<ReadonlySet<string>> {
    if (keys.length === 0 || !this.#pool) return new Set();
    const { rows } = await this.#pool.query<{ key: string }>(
      `select singleton_key as key from "${this.#schema}".job
        where singleton_key = any($1::text[]) and state in ('created', 'retry', 'active')`,
      [keys],
    );
    return new Set(rows.map((r) => r.key));
  }

  async stop(): Promise<void> {
    const boss = this.#boss;
    this.#boss = undefined;
    await boss?.stop({ graceful: true, timeout: 30_000, close: true }).catch(() => {});
    await this.#pool?.end().catch(() => {});
    this.#pool = undefined;
  }
}
