import { ProgressTable } from '../control/progress.js';
import { type ErrorKind, hasCode, oneLine, withContext } from '../core/errors.js';
import { classifyError } from '../db/classify.js';
import { lockSessionName } from '../db/postgres/locks.js';
import { quotePg } from '../db/postgres/quote.js';
import type { ExportSummary } from '../exporter/export.js';
import { openWarehouse, runConnectorJob, workCounts } from '../pipeline/connector-job.js';
import { runExportJob } from '../pipeline/export-job.js';
import type { PipelineMetrics } from '../pipeline/metrics.js';
import { type PruneSummary, pruneStaging } from '../pipeline/retention.js';
import type { Runtime } from '../pipeline/runtime.js';
import { dueSyncs, runSyncJob } from '../pipeline/sync-job.js';
import { STAGING_FORMAT } from '../staging/manifest.js';
import { GraphileQueue, workerSchema } from './graphile-queue.js';
import { type JobPayload, type JobQueue, type JobTask, jobKey, type NewJob } from './job-queue.js';
import { backoffDelay, type RetryOptions, sleep, withRetry } from './retry.js';

export interface SchedulerOptions {
  /** Time between the starts of two ticks. */
  readonly everyMs: number;
  /**
   * Ticks start this long after each multiple of `everyMs` since the epoch (windows are aligned the same way).
   * `wharf run` passes the settle time plus a margin, so that a tick comes just after a window has closed and
   * settled rather than up to a whole tick later. Without it, ticks are `everyMs` apart from the first.
   */
  readonly phaseMs?: number;
  /** Jobs (connector loads, syncs) run at the same time by this process (default 4). */
  readonly concurrency?: number;
  /** Attempts of a job whose work fails with a transient error (default 3 attempts, 1 s base, 30 s cap). */
  readonly retry?: Pick<RetryOptions, 'attempts' | 'baseMs' | 'maxMs'>;
  /** Prune staged windows older than this once every connector has loaded them (off when undefined). */
  readonly retentionMs?: number;
  /** How often retention runs (default every hour, and at the first tick). */
  readonly retentionEveryMs?: number;
  /** The job queue (default: graphile-worker in the control database, schema `<control schema>_worker`). */
  readonly queue?: JobQueue;
}

/** What a tick did with one connector (or, in `syncs`, one sync). */
export interface ConnectorOutcome {
  readonly connector: string;
  /**
   * `ok`: loaded (windows may be 0); `current`: nothing new since its last load; `skipped`: another load of it
   * held the lock; `failed`: a transient error outlived the retries; `parked`: a terminal error set it to
   * `failing`; `stopped`: not started, or ended and rolled back, because the scheduler is stopping;
   * `queued`: its job is queued (a tick of `wharf run`, which does not wait for its jobs); `elsewhere`: its job
   * was run by another `wharf run` process.
   */
  readonly status: 'ok' | 'current' | 'skipped' | 'failed' | 'parked' | 'stopped' | 'queued' | 'elsewhere';
  readonly windows: number;
  readonly rows: number;
  readonly error?: string;
}

/** What one tick did. */
export interface TickReport {
  readonly startedAt: Date;
  readonly seconds: number;
  /** The export summary; null when the export failed or the scheduler was stopping. */
  readonly export: ExportSummary | null;
  readonly exportError: string | null;
  readonly connectors: readonly ConnectorOutcome[];
  /** The syncs that were due (`connector` is the sync's id; `windows` 0, `rows` the rows read). */
  readonly syncs: readonly ConnectorOutcome[];
  readonly retention: PruneSummary | null;
}

/** What a job ended with, for a tick that waits for it. */
type Outcome = Omit<ConnectorOutcome, 'connector'>;

/** The database's clock, read once per tick (lags are measured on it). */
interface DbClock {
  readonly dbNow: Date;
  readonly readAt: number;
}

/** The slot (its start, ms since the epoch) that `now` falls in: `phaseMs` after a multiple of `everyMs`. */
export function slotOf(now: number, everyMs: number, phaseMs: number): number {
  const phase = ((phaseMs % everyMs) + everyMs) % everyMs;
  return Math.floor((now - phase) / everyMs) * everyMs + phase;
}

/**
 * Milliseconds from `now` to the next instant that is `phaseMs` after a multiple of `everyMs` (since the epoch);
 * never 0, so that a tick is not run twice in the same slot.
 */
export function delayToNextTick(now: number, everyMs: number, phaseMs: number): number {
  return slotOf(now, everyMs, phaseMs) + everyMs - now;
}

/**
 * The phase `wharf run` gives its ticks: the settle time plus a margin for the clocks of this machine and the
 * database (5 % of the window, at most 1 s).
 */
export function settledPhaseMs(settleMs: number, windowMs: number): number {
  return settleMs + Math.min(1000, Math.round(windowMs * 0.05));
}

/**
 * `wharf run` on a job queue in PostgreSQL (graphile-worker). Each tick slot is planned by one process, whatever
 * the number of processes (the slot is claimed in the control table `scheduler_slots`): it exports closed
 * windows (skipping when another process is exporting), then queues a job for every active connector that is
 * behind and every sync that is due, at most one waiting job per connector or sync (the job key). Every process
 * takes jobs, `concurrency` at a time; a job's load holds the connector's advisory lock, so a connector whose
 * previous load still runs is skipped (and the skip recorded), never loaded twice at once. A transient failure
 * queues the next attempt after an exponential backoff with full jitter; a terminal error parks the connector
 * (state `failing`, with the reason) until `wharf connectors test ID` passes. A process killed with its jobs
 * under way loses nothing: its locks go with its connections, and the next slot queues those jobs again for the
 * processes left.
 */
export class Scheduler {
  readonly metrics: PipelineMetrics;
  readonly #ctx: Runtime;
  readonly #options: SchedulerOptions;
  readonly #queue: JobQueue;
  readonly #name = lockSessionName('wharf');
  /** Ticks waiting for their jobs: job key → what to call with the outcome. */
  readonly #waiting = new Map<string, (outcome: Outcome) => void>();
  #signal: AbortSignal | undefined;
  #started = false;
  #lastActivity = Date.now();
  #lastTick: TickReport | undefined;
  #lastRetention = 0;

  constructor(rt: Runtime, options: SchedulerOptions) {
    this.#ctx = rt;
    this.#options = options;
    this.metrics = rt.metrics;
    this.#queue =
      options.queue ??
      new GraphileQueue({
        url: rt.controlUrl(),
        schema: workerSchema(rt.settings.controlSchema),
        logger: rt.logger,
        pollIntervalMs: Math.min(1000, Math.max(100, Math.round(options.everyMs / 4))),
      });
  }

  /** The last finished tick, if any. */
  get lastTick(): TickReport | undefined {
    return this.#lastTick;
  }

  /** For `/healthz`: healthy while ticks (or their jobs) keep finishing. */
  health(): { ok: boolean; lastActivity: string; lastTick: string | null } {
    const staleMs = Math.max(3 * this.#options.everyMs, 60_000) + (this.#options.retry?.maxMs ?? 30_000);
    return {
      ok: Date.now() - this.#lastActivity < staleMs,
      lastActivity: new Date(this.#lastActivity).toISOString(),
      lastTick: this.#lastTick?.startedAt.toISOString() ?? null,
    };
  }

  /**
   * One tick that waits for its jobs (`wharf run --once`): export, queue the connectors that are behind and the
   * syncs that are due, and wait until each job ended here (or was run by another process). Never throws for a
   * connector's failure.
   */
  async tick(signal?: AbortSignal): Promise<TickReport> {
    const own = !this.#started;
    if (own) await this.#start(signal);
    try {
      return await this.#plan(signal, true);
    } finally {
      if (own) await this.#stop();
    }
  }

  /**
   * Plans every tick slot this process claims, and takes jobs, until the signal aborts. Then the jobs under way
   * end: a load waiting for a lock at once, a running one within the stop grace period (or it commits first);
   * both roll back.
   */
  async run(signal: AbortSignal): Promise<void> {
    // a control database that is down at the start: the process waits for it, as for one lost later
    for (;;) {
      try {
        await this.#start(signal);
        break;
      } catch (error) {
        this.#ctx.logger.error(
          { err: oneLine(error) },
          `cannot start the job queue (retrying): ${oneLine(error)}`,
        );
        if (!(await sleep(this.#options.everyMs, signal))) return;
      }
    }
    try {
      const { everyMs } = this.#options;
      const phaseMs = this.#options.phaseMs ?? Date.now() % everyMs;
      while (!signal.aborted) {
        const slot = slotOf(Date.now(), everyMs, phaseMs);
        try {
          if (await this.#claim(slot)) await this.#plan(signal, false);
          this.#lastActivity = Date.now();
        } catch (error) {
          // only when the control database cannot be read; the next slot tries again
          this.#ctx.logger.error({ err: oneLine(error) }, `tick failed: ${oneLine(error)}`);
        }
        await sleep(delayToNextTick(Date.now(), everyMs, phaseMs), signal);
      }
    } finally {
      await this.#stop();
    }
  }

  async #start(signal: AbortSignal | undefined): Promise<void> {
    this.#signal = signal;
    // the control schema (with its scheduler table) before the queue's
    await this.#ctx.connectors();
    await this.#queue.start((task, payload) => this.#runJob(task, payload), this.#concurrency());
    this.#started = true;
  }

  async #stop(): Promise<void> {
    this.#started = false;
    await this.#queue.stop();
  }

  #concurrency(): number {
    return Math.max(1, this.#options.concurrency ?? 4);
  }

  /** Claims a slot for this process: true when no process planned it (or a later one) yet. */
  async #claim(slot: number): Promise<boolean> {
    const control = await this.#ctx.control();
    const t = `${quotePg(this.#ctx.settings.controlSchema)}.scheduler_slots`;
    const { rowCount } = await control.query(
      `insert into ${t} as s (name, last_slot, planned_by) values ('plan', $1, $2)
       on conflict (name) do update set last_slot = excluded.last_slot, planned_at = now(), planned_by = excluded.planned_by
        where s.last_slot < excluded.last_slot`,
      [new Date(slot), this.#name],
    );
    return rowCount === 1;
  }

  #retry(): Required<Pick<RetryOptions, 'attempts' | 'baseMs' | 'maxMs'>> {
    return {
      attempts: Math.max(1, this.#options.retry?.attempts ?? 3),
      baseMs: this.#options.retry?.baseMs ?? 1000,
      maxMs: this.#options.retry?.maxMs ?? 30_000,
    };
  }

  /** A tick's plan: export, then queue the jobs; `wait`: until they end. */
  async #plan(signal: AbortSignal | undefined, wait: boolean): Promise<TickReport> {
    const started = Date.now();
    const ctx = this.#ctx;
    const log = ctx.logger;
    let exported: ExportSummary | null = null;
    let exportError: string | null = null;
    if (!signal?.aborted) {
      try {
        // the export holds the export lock for its whole run: its retries stay in the plan
        exported = await withRetry(() => runExportJob(ctx, { lock: 'skip' }), {
          ...this.#retry(),
          ...(signal ? { signal } : {}),
          onRetry: (error, attempt, delay) =>
            log.warn(
              { err: oneLine(error), attempt, delayMs: delay },
              `export failed, retrying: ${oneLine(error)}`,
            ),
        });
        this.#lastActivity = Date.now();
        if (!exported.skipped && exported.windows > 0) {
          log.info(
            { windows: exported.windows, rows: exported.rows },
            `exported ${exported.windows} window(s)`,
          );
        }
      } catch (error) {
        exportError = oneLine(error);
        log.error({ err: exportError }, `export failed: ${exportError}`);
      }
    }
    let connectors: ConnectorOutcome[] = [];
    let syncs: ConnectorOutcome[] = [];
    if (!signal?.aborted) {
      const planned = await this.#queueJobs(wait);
      connectors = planned.connectors;
      syncs = planned.syncs;
      if (wait) {
        connectors = await this.#await(connectors, 'connector');
        syncs = await this.#await(syncs, 'sync');
      }
    }
    let retention: PruneSummary | null = null;
    if (!signal?.aborted) retention = await this.#retention();
    const report: TickReport = {
      startedAt: new Date(started),
      seconds: (Date.now() - started) / 1000,
      export: exported,
      exportError,
      connectors,
      syncs,
      retention,
    };
    this.metrics.tickDuration.observe(report.seconds);
    this.#lastTick = report;
    this.#lastActivity = Date.now();
    return report;
  }

  /** Queues a job for each connector that is behind and each sync that is due; the others are `current`. */
  async #queueJobs(wait: boolean): Promise<{ connectors: ConnectorOutcome[]; syncs: ConnectorOutcome[] }> {
    const ctx = this.#ctx;
    const store = await ctx.connectors();
    const active = (await store.list()).filter((c) => c.state === 'active');
    const control = await ctx.control();
    const progress = new ProgressTable(ctx.settings.controlSchema);
    // one query tells who is behind; the others cost nothing more this tick
    const behind = new Set(await progress.behind(control, STAGING_FORMAT));
    const known = await progress.all(control);
    const mark = await this.#clock();
    // a sync counts as due a little early, so that a sync as frequent as the ticks is not put off by one
    const due = await dueSyncs(ctx, { aheadMs: Math.round(this.#options.everyMs * 0.05) });
    const jobs: NewJob[] = [];
    const connectors: ConnectorOutcome[] = [];
    for (const c of active) {
      const id = String(c.id);
      if (behind.has(id)) {
        jobs.push({ task: 'connector', payload: { id, attempt: 1 }, key: jobKey('connector', id) });
        connectors.push({ connector: id, status: 'queued', windows: 0, rows: 0 });
      } else {
        this.#setLag(id, mark, known.get(id)?.lastWindowEnd ?? null);
        connectors.push({ connector: id, status: 'current', windows: 0, rows: 0 });
      }
    }
    const syncs: ConnectorOutcome[] = due.map((d) => {
      jobs.push({ task: 'sync', payload: { id: d.id, attempt: 1 }, key: jobKey('sync', d.id) });
      return { connector: d.id, status: 'queued', windows: 0, rows: 0 };
    });
    this.#lastClock = mark;
    if (wait) for (const j of jobs) this.#expect(j.key);
    try {
      // a job waiting for its backoff keeps its run time: the tick does not cut a retry short
      await this.#queue.add(jobs, true);
    } catch (error) {
      for (const j of jobs) this.#waiting.delete(j.key);
      throw error;
    }
    return { connectors, syncs };
  }

  /** The clock of the last plan (a job's lag is measured on it). */
  #lastClock: DbClock | undefined;
  /** Outcomes a tick waits for, as they arrive (a job may end before the tick starts waiting). */
  readonly #arrived = new Map<string, Outcome>();

  #expect(key: string): void {
    this.#arrived.delete(key);
    this.#waiting.set(key, (outcome) => this.#arrived.set(key, outcome));
  }

  /** Waits for the queued jobs of a tick: their outcome here, or `elsewhere` once no job of theirs is left. */
  async #await(list: ConnectorOutcome[], task: JobTask): Promise<ConnectorOutcome[]> {
    const keys = list.filter((o) => o.status === 'queued').map((o) => jobKey(task, o.connector));
    const open = new Set(keys);
    for (let round = 0; open.size > 0; round++) {
      for (const k of [...open]) if (this.#arrived.has(k)) open.delete(k);
      if (open.size === 0) break;
      if (round > 0 && round % 10 === 0) {
        // every second: a job run by another process ends there
        const left = await this.#queue.pending([...open]);
        for (const k of [...open]) {
          if (!left.has(k) && !this.#arrived.has(k)) {
            this.#waiting.delete(k);
            this.#arrived.set(k, { status: 'elsewhere', windows: 0, rows: 0 });
          }
        }
        continue;
      }
      await sleep(100);
    }
    return list.map((o) => {
      if (o.status !== 'queued') return o;
      const k = jobKey(task, o.connector);
      const outcome = this.#arrived.get(k)!;
      this.#arrived.delete(k);
      return { connector: o.connector, ...outcome };
    });
  }

  /** A job ended with this outcome: a tick waiting for it hears of it. */
  #ended(key: string, outcome: Outcome): void {
    this.#lastActivity = Date.now();
    const hear = this.#waiting.get(key);
    this.#waiting.delete(key);
    hear?.(outcome);
  }

  async #runJob(task: JobTask, payload: JobPayload): Promise<void> {
    const key = jobKey(task, payload.id);
    const outcome = task === 'connector' ? await this.#connectorJob(payload) : await this.#syncJob(payload);
    if (outcome) this.#ended(key, outcome);
  }

  /**
   * Queues the next attempt of a job after a transient failure (exponential backoff, full jitter); false when
   * the attempts are spent.
   */
  async #retryLater(task: JobTask, payload: JobPayload): Promise<number | undefined> {
    const { attempts, baseMs, maxMs } = this.#retry();
    if (payload.attempt >= attempts) return undefined;
    const delay = backoffDelay(payload.attempt, baseMs, maxMs);
    await this.#queue.add(
      [
        {
          task,
          payload: { id: payload.id, attempt: payload.attempt + 1 },
          key: jobKey(task, payload.id),
          runAt: new Date(Date.now() + delay),
        },
      ],
      false,
    );
    return delay;
  }

  /** One connector's job; undefined when a later attempt is queued. */
  async #connectorJob(payload: JobPayload): Promise<Outcome | undefined> {
    const ctx = this.#ctx;
    const id = payload.id;
    const signal = this.#signal;
    if (signal?.aborted) return { status: 'stopped', windows: 0, rows: 0 };
    const store = await ctx.connectors();
    const connector = await store.get(id).catch(() => undefined);
    // disabled, paused or removed since it was queued
    if (connector?.state !== 'active') return { status: 'current', windows: 0, rows: 0 };
    try {
      const result = await runConnectorJob(ctx, connector, signal ? { signal } : {});
      if (result.status === 'skipped') {
        ctx.logger.info({ connector: id }, `connector ${id}: its previous load is still running; skipped`);
        return { status: 'skipped', windows: 0, rows: 0 };
      }
      const { windows, rows } = workCounts(result);
      const mark = this.#lastClock;
      if (mark) this.#setLag(id, mark, result.progress?.lastWindowEnd ?? null);
      return { status: 'ok', windows, rows };
    } catch (error) {
      const reason = oneLine(withContext(error, { connector: id }));
      if (signal?.aborted) {
        // stopped by the shutdown (rolled back): not a failure of the connector
        ctx.logger.info({ connector: id, err: reason }, `connector ${id}: stopped: ${reason}`);
        return { status: 'stopped', windows: 0, rows: 0, error: reason };
      }
      // parents in windows not exported yet: only a later tick can help
      const parents = waitsForParents(error);
      const kind: ErrorKind = parents ? 'transient' : classifyError(error);
      this.metrics.loadFailures.inc({ connector: id, kind });
      if (kind === 'transient') {
        const delay = parents ? undefined : await this.#retryLater('connector', payload);
        if (delay !== undefined) {
          ctx.logger.warn(
            { connector: id, err: reason, attempt: payload.attempt, delayMs: delay },
            `connector ${id}: transient error, retrying: ${reason}`,
          );
          return undefined;
        }
        ctx.logger.error(
          { connector: id, err: reason },
          `connector ${id} failed (will retry next tick): ${reason}`,
        );
        return { status: 'failed', windows: 0, rows: 0, error: reason };
      }
      try {
        // a connector disabled or paused meanwhile keeps that state
        if ((await store.get(id)).state === 'active') await store.setState(id, 'failing', reason);
      } catch (parkError) {
        ctx.logger.error(
          { connector: id, err: oneLine(parkError) },
          `connector ${id}: cannot park it: ${oneLine(parkError)}`,
        );
      }
      ctx.logger.error(
        { connector: id, err: reason },
        `connector ${id} parked (state failing): ${reason}; fix it, then run \`wharf connectors test ${id}\``,
      );
      return { status: 'parked', windows: 0, rows: 0, error: reason };
    }
  }

  /** One sync's job (its run history, metrics and parking are `runSyncJob`'s); undefined when retried later. */
  async #syncJob(payload: JobPayload): Promise<Outcome | undefined> {
    const ctx = this.#ctx;
    const id = payload.id;
    if (this.#signal?.aborted) return { status: 'stopped', windows: 0, rows: 0 };
    try {
      const result = await runSyncJob(ctx, id);
      if (result.status === 'skipped') return { status: 'skipped', windows: 0, rows: 0 };
      return { status: 'ok', windows: 0, rows: result.summary.rows };
    } catch (error) {
      const reason = oneLine(withContext(error, { sync: id }));
      if (classifyError(error) === 'transient') {
        const delay = await this.#retryLater('sync', payload);
        if (delay !== undefined) {
          ctx.logger.warn(
            { sync: id, err: reason, attempt: payload.attempt, delayMs: delay },
            `sync ${id}: transient error, retrying: ${reason}`,
          );
          return undefined;
        }
        ctx.logger.error({ sync: id, err: reason }, `sync ${id} failed (will run again when due): ${reason}`);
        return { status: 'failed', windows: 0, rows: 0, error: reason };
      }
      // runSyncJob parked it (a disabled sync is refused, and stays disabled)
      ctx.logger.error({ sync: id, err: reason }, `sync ${id} failed: ${reason}`);
      return { status: 'parked', windows: 0, rows: 0, error: reason };
    }
  }

  #setLag(id: string, mark: DbClock, lastWindowEnd: Date | null): void {
    if (!lastWindowEnd) return;
    const now = mark.dbNow.getTime() + (Date.now() - mark.readAt);
    this.metrics.connectorLag.set({ connector: id }, Math.max(0, (now - lastWindowEnd.getTime()) / 1000));
  }

  async #clock(): Promise<DbClock> {
    const control = await this.#ctx.control();
    const { rows } = await control.query<{ now: Date }>('select now() as now');
    return { dbNow: rows[0]!.now, readAt: Date.now() };
  }

  async #retention(): Promise<PruneSummary | null> {
    const olderThanMs = this.#options.retentionMs;
    if (olderThanMs === undefined) return null;
    const every = this.#options.retentionEveryMs ?? 3_600_000;
    if (this.#lastRetention !== 0 && Date.now() - this.#lastRetention < every) return null;
    this.#lastRetention = Date.now();
    const ctx = this.#ctx;
    try {
      const store = await ctx.connectors();
      const summary = await pruneStaging(
        {
          control: await ctx.control(),
          controlSchema: ctx.settings.controlSchema,
          store: ctx.store(),
          connectors: () => store.list(),
          openWarehouse: (c) => openWarehouse(ctx, c),
          logger: ctx.logger,
        },
        { olderThanMs },
      );
      if (summary.windows > 0) {
        ctx.logger.info(
          { ...summary },
          `retention: pruned ${summary.windows} window(s), ${summary.files} file(s)`,
        );
      }
      return summary;
    } catch (error) {
      ctx.logger.error({ err: oneLine(error) }, `retention failed: ${oneLine(error)}`);
      return null;
    }
  }
}

/**
 * A foreign key violation (SQLSTATE 23503) while loading: a row's parent was changed after it, so the
 * parent's newest version sits in a window that is not exported yet. Warehouse foreign keys only link
 * streams the connector loads, so the parent does come; the connector is loaded again next tick rather
 * than parked.
 */
export function waitsForParents(error: unknown): boolean {
  return hasCode(error, '23503');
}
