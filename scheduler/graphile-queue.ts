import {
  Logger as GraphileLogger,
  makeWorkerUtils,
  type Runner,
  run,
  type WorkerUtils,
} from 'graphile-worker';
import type pg from 'pg';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { openPool } from '../db/postgres/pool.js';
import { quotePg } from '../db/postgres/quote.js';
import type { JobHandler, JobPayload, JobQueue, JobTask, NewJob } from './job-queue.js';

/** graphile-worker's task names for Wharf's jobs. */
const TASKS: Readonly<Record<JobTask, string>> = { connector: 'wharf_connector', sync: 'wharf_sync' };

/**
 * The queue's own attempts of a job whose handler threw (what the handler could not record); graphile-worker
 * waits exp(attempt) seconds between them.
 */
const QUEUE_ATTEMPTS = 5;

export interface GraphileQueueOptions {
  /** The control database. */
  readonly url: string;
  /** The worker's schema (`wharf_worker` beside the control schema `wharf`). */
  readonly schema: string;
  readonly logger: Logger;
  /** How often a worker looks for jobs whose run time has come (retries); new jobs come by LISTEN/NOTIFY. */
  readonly pollIntervalMs?: number;
}

/** The schema graphile-worker keeps its jobs in, beside a control schema. */
export function workerSchema(controlSchema: string): string {
  return `${controlSchema}_worker`;
}

/**
 * graphile-worker in the control database: jobs in its own schema, taken with `FOR UPDATE SKIP LOCKED` by any
 * number of processes; new jobs announced by NOTIFY. Signals are Wharf's to handle (`noHandleSignals`).
 */
export class GraphileQueue implements JobQueue {
  readonly #options: GraphileQueueOptions;
  #pool: pg.Pool | undefined;
  #runner: Runner | undefined;
  #utils: WorkerUtils | undefined;

  constructor(options: GraphileQueueOptions) {
    this.#options = options;
  }

  async start(handler: JobHandler, concurrency: number): Promise<void> {
    const o = this.#options;
    // one connection per job under way, one for LISTEN, a few for the queue's own statements
    const pool = await openPool(o.url, 'control', '--control-url / WHARF_CONTROL_URL', concurrency + 4);
    this.#pool = pool;
    const logger = bridgeLogger(o.logger);
    const task =
      (t: JobTask) =>
      (payload: unknown): Promise<void> =>
        handler(t, payload as JobPayload);
    try {
      this.#runner = await run({
        pgPool: pool,
        schema: o.schema,
        concurrency,
        noHandleSignals: true,
        pollInterval: o.pollIntervalMs ?? 1000,
        logger,
        taskList: { [TASKS.connector]: task('connector'), [TASKS.sync]: task('sync') },
      });
      this.#runner.promise.catch((error: unknown) =>
        o.logger.error({ err: oneLine(error) }, `job queue stopped: ${oneLine(error)}`),
      );
      this.#utils = await makeWorkerUtils({ pgPool: pool, schema: o.schema, logger });
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async add(jobs: readonly NewJob[], keepRunAt: boolean): Promise<void> {
    if (jobs.length === 0) return;
    const utils = this.#utils;
    if (!utils) throw new Error('the job queue is not started');
    await utils.addJobs(
      jobs.map((j) => ({
        identifier: TASKS[j.task],
        payload: j.payload,
        jobKey: j.key,
        maxAttempts: QUEUE_ATTEMPTS,
        ...(j.runAt ? { runAt: j.runAt } : {}),
      })),
      keepRunAt,
    );
  }

  async pending(keys: readonly string[]): Promise<ReadonlySet<string>> {
    if (keys.length === 0 || !this.#pool) return new Set();
    const { rows } = await this.#pool.query<{ key: string }>(
      `select key from ${quotePg(this.#options.schema)}._private_jobs
        where key = any($1::text[]) and attempts < max_attempts`,
      [keys],
    );
    return new Set(rows.map((r) => r.key));
  }

  async stop(): Promise<void> {
    const runner = this.#runner;
    const utils = this.#utils;
    const pool = this.#pool;
    this.#runner = undefined;
    this.#utils = undefined;
    this.#pool = undefined;
    await runner?.stop().catch(() => {});
    await Promise.resolve(utils?.release()).catch(() => {});
    await pool?.end().catch(() => {});
  }
}

/** graphile-worker's log lines through Wharf's logger: its chatter at debug, its warnings and errors as such. */
function bridgeLogger(logger: Logger): GraphileLogger {
  return new GraphileLogger((scope) => (level, message) => {
    const fields = {
      queue: 'graphile-worker',
      ...(scope.taskIdentifier ? { task: scope.taskIdentifier } : {}),
    };
    if (level === 'error') logger.error(fields, `job queue: ${message}`);
    else if (level === 'warning') logger.warn(fields, `job queue: ${message}`);
    else logger.debug(fields, `job queue: ${message}`);
  });
}
