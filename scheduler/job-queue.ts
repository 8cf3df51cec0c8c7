/** What a queued job does: load (or deliver) one connector, or run one reverse-ETL sync. */
export type JobTask = 'connector' | 'sync';

/** A job's payload: the connector's or the sync's id, and which attempt this is (1 for the first). */
export interface JobPayload {
  readonly id: string;
  readonly attempt: number;
}

/** A job to queue. */
export interface NewJob {
  readonly task: JobTask;
  readonly payload: JobPayload;
  /** At most one job per key waits in the queue (`connector:ID`, `sync:ID`); a running one does not count. */
  readonly key: string;
  /** Not before this instant (a retry's backoff); now when absent. */
  readonly runAt?: Date;
}

/**
 * Runs one job. Resolving completes it; throwing leaves it to the queue's own retries, which are only for what
 * the handler could not record (the control database lost while parking, say): the handler retries transient
 * failures of the work itself by queueing the next attempt with its backoff.
 */
export type JobHandler = (task: JobTask, payload: JobPayload) => Promise<void>;

/**
 * The job queue the scheduler runs on: jobs in PostgreSQL, taken by any number of `wharf run` processes, a job
 * whose process died taken over. graphile-worker in Wharf (scheduler/graphile-queue.ts); the benchmark runs the
 * same scheduler on pg-boss through this interface.
 */
export interface JobQueue {
  /** Installs or migrates the queue's schema and starts taking jobs, `concurrency` at a time. */
  start(handler: JobHandler, concurrency: number): Promise<void>;
  /**
   * Queues jobs in one statement. A job whose key has a job waiting replaces it; with `keepRunAt` the waiting
   * job's run time is kept (a retry's backoff is not cut short by the next tick).
   */
  add(jobs: readonly NewJob[], keepRunAt: boolean): Promise<void>;
  /** The keys among `keys` that still have a job waiting or running. */
  pending(keys: readonly string[]): Promise<ReadonlySet<string>>;
  /** Stops taking jobs, waits for the running ones to end, and closes the queue's connections. */
  stop(): Promise<void>;
}

/** The queue key of a connector's or a sync's job. */
export function jobKey(task: JobTask, id: string): string {
  return `${task}:${id}`;
}
