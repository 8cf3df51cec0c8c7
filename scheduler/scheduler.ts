import pLimit from 'p-limit';
import type { Connector } from '../connectors/connector-store.js';
import { ProgressTable } from '../control/progress.js';
import { type ErrorKind, hasCode, oneLine, withContext } from '../core/errors.js';
import { classifyError } from '../db/classify.js';
import type { ExportSummary } from '../exporter/export.js';
import {
  type ConnectorJobResult,
  openWarehouse,
  runConnectorJob,
  workCounts,
} from '../pipeline/connector-job.js';
import { runExportJob } from '../pipeline/export-job.js';
import type { PipelineMetrics } from '../pipeline/metrics.js';
import { type PruneSummary, pruneStaging } from '../pipeline/retention.js';
import type { Runtime } from '../pipeline/runtime.js';
import { STAGING_FORMAT } from '../staging/manifest.js';
import { type RetryOptions, sleep, withRetry } from './retry.js';

export interface SchedulerOptions {
  /** Time between the starts of two ticks. */
  readonly everyMs: number;
  /**
   * Ticks start this long after each multiple of `everyMs` since the epoch (windows are aligned the same way).
   * `wharf run` passes the settle time plus a margin, so that a tick comes just after a window has closed and
   * settled rather than up to a whole tick later. Without it, ticks are `everyMs` apart from the first.
   */
  readonly phaseMs?: number;
  /** Connectors loaded at the same time by this process (default 4). */
  readonly concurrency?: number;
  /** Retries of transient errors, per export and per connector load (default 3 attempts, 1 s base, 30 s cap). */
  readonly retry?: Pick<RetryOptions, 'attempts' | 'baseMs' | 'maxMs'>;
  /** Prune staged windows older than this once every connector has loaded them (off when undefined). */
  readonly retentionMs?: number;
  /** How often retention runs (default every hour, and at the first tick). */
  readonly retentionEveryMs?: number;
}

/** What a tick did with one connector. */
export interface ConnectorOutcome {
  readonly connector: string;
  /**
   * `ok`: loaded (windows may be 0); `current`: nothing new since its last load by this process;
   * `skipped`: another load of it held the lock; `failed`: a transient error outlived the retries;
   * `parked`: a terminal error set it to `failing`; `stopped`: not started because the scheduler is stopping.
   */
  readonly status: 'ok' | 'current' | 'skipped' | 'failed' | 'parked' | 'stopped';
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
  readonly retention: PruneSummary | null;
}

/** The database's clock, read once per tick (lags are measured on it). */
interface DbClock {
  readonly dbNow: Date;
  readonly readAt: number;
}

/**
 * Milliseconds from `now` to the next instant that is `phaseMs` after a multiple of `everyMs` (since the epoch);
 * never 0, so that a tick is not run twice in the same slot.
 */
export function delayToNextTick(now: number, everyMs: number, phaseMs: number): number {
  const phase = ((phaseMs % everyMs) + everyMs) % everyMs;
  const next = Math.floor((now - phase) / everyMs) * everyMs + phase + everyMs;
  return next - now;
}

/**
 * The phase `wharf run` gives its ticks: the settle time plus a margin for the clocks of this machine and the
 * database (5 % of the window, at most 1 s).
 */
export function settledPhaseMs(settleMs: number, windowMs: number): number {
  return settleMs + Math.min(1000, Math.round(windowMs * 0.05));
}

/**
 * `wharf run`: each tick exports closed windows (skipping when another process is exporting), then loads
 * every active connector that is behind, a few at a time. Each connector load holds its advisory lock, so
 * any number of schedulers share the work: a connector whose previous load still runs is skipped, not
 * queued. Transient errors are retried with backoff; a terminal error parks the connector (state
 * `failing`, with the reason) until `wharf connectors test ID` passes; the other connectors go on.
 */
export class Scheduler {
  readonly metrics: PipelineMetrics;
  readonly #ctx: Runtime;
  readonly #options: SchedulerOptions;
  #lastActivity = Date.now();
  #lastTick: TickReport | undefined;
  #lastRetention = 0;

  constructor(rt: Runtime, options: SchedulerOptions) {
    this.#ctx = rt;
    this.#options = options;
    this.metrics = rt.metrics;
  }

  /** The last finished tick, if any. */
  get lastTick(): TickReport | undefined {
    return this.#lastTick;
  }

  /** For `/healthz`: healthy while ticks (or their steps) keep finishing. */
  health(): { ok: boolean; lastActivity: string; lastTick: string | null } {
    const staleMs = Math.max(3 * this.#options.everyMs, 60_000) + (this.#options.retry?.maxMs ?? 30_000);
    return {
      ok: Date.now() - this.#lastActivity < staleMs,
      lastActivity: new Date(this.#lastActivity).toISOString(),
      lastTick: this.#lastTick?.startedAt.toISOString() ?? null,
    };
  }

  /** One tick: export, then load the connectors that are behind. Never throws for a connector's failure. */
  async tick(signal?: AbortSignal): Promise<TickReport> {
    const started = Date.now();
    const log = this.#ctx.logger;
    let exported: ExportSummary | null = null;
    let exportError: string | null = null;
    if (!signal?.aborted) {
      try {
        exported = await withRetry(() => runExportJob(this.#ctx, { lock: 'skip' }), {
          ...this.#retry(signal),
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
    const connectors = signal?.aborted ? [] : await this.#loadAll(signal);
    let retention: PruneSummary | null = null;
    if (!signal?.aborted) retention = await this.#retention();
    const report: TickReport = {
      startedAt: new Date(started),
      seconds: (Date.now() - started) / 1000,
      export: exported,
      exportError,
      connectors,
      retention,
    };
    this.metrics.tickDuration.observe(report.seconds);
    this.#lastTick = report;
    this.#lastActivity = Date.now();
    return report;
  }

  /** Ticks every `everyMs` until the signal aborts; the loads under way finish (commit or roll back) first. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await this.tick(signal);
      } catch (error) {
        // a tick only throws when the control database cannot be read; the next tick tries again
        this.#ctx.logger.error({ err: oneLine(error) }, `tick failed: ${oneLine(error)}`);
      }
      const now = Date.now();
      const { everyMs, phaseMs } = this.#options;
      const wait =
        phaseMs === undefined || now - started >= everyMs
          ? Math.max(0, everyMs - (now - started))
          : delayToNextTick(now, everyMs, phaseMs);
      await sleep(wait, signal);
    }
  }

  #retry(signal: AbortSignal | undefined): RetryOptions {
    return {
      attempts: this.#options.retry?.attempts ?? 3,
      baseMs: this.#options.retry?.baseMs ?? 1000,
      maxMs: this.#options.retry?.maxMs ?? 30_000,
      ...(signal ? { signal } : {}),
    };
  }

  async #loadAll(signal: AbortSignal | undefined): Promise<ConnectorOutcome[]> {
    const store = await this.#ctx.connectors();
    const active = (await store.list()).filter((c) => c.state === 'active');
    const control = await this.#ctx.control();
    const progress = new ProgressTable(this.#ctx.settings.controlSchema);
    // one query tells who is behind; the others cost nothing more this tick
    const behind = new Set(await progress.behind(control, STAGING_FORMAT));
    const known = await progress.all(control);
    const mark = await this.#clock();
    const limit = pLimit(Math.max(1, this.#options.concurrency ?? 4));
    return Promise.all(
      active.map((connector) =>
        limit(async (): Promise<ConnectorOutcome> => {
          const id = String(connector.id);
          if (signal?.aborted) return { connector: id, status: 'stopped', windows: 0, rows: 0 };
          if (!behind.has(id)) {
            this.#setLag(id, mark, known.get(id)?.lastWindowEnd ?? null);
            return { connector: id, status: 'current', windows: 0, rows: 0 };
          }
          const outcome = await this.#loadConnector(connector, mark, signal);
          this.#lastActivity = Date.now();
          return outcome;
        }),
      ),
    );
  }

  async #loadConnector(
    connector: Connector,
    mark: DbClock,
    signal: AbortSignal | undefined,
  ): Promise<ConnectorOutcome> {
    const ctx = this.#ctx;
    const id = String(connector.id);
    let result: ConnectorJobResult;
    try {
      result = await withRetry(() => runConnectorJob(ctx, connector), {
        ...this.#retry(signal),
        // parents in windows not exported yet: only a later tick can help
        classify: (error) => (waitsForParents(error) ? 'terminal' : classifyError(error)),
        onRetry: (error, attempt, delay) => {
          this.metrics.loadFailures.inc({ connector: id, kind: 'transient' });
          ctx.logger.warn(
            { connector: id, err: oneLine(error), attempt, delayMs: delay },
            `connector ${id}: transient error, retrying: ${oneLine(error)}`,
          );
        },
      });
    } catch (error) {
      const kind: ErrorKind = waitsForParents(error) ? 'transient' : classifyError(error);
      const reason = oneLine(withContext(error, { connector: id }));
      this.metrics.loadFailures.inc({ connector: id, kind });
      if (kind === 'transient') {
        ctx.logger.error(
          { connector: id, err: reason },
          `connector ${id} failed (will retry next tick): ${reason}`,
        );
        return { connector: id, status: 'failed', windows: 0, rows: 0, error: reason };
      }
      try {
        const store = await ctx.connectors();
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
      return { connector: id, status: 'parked', windows: 0, rows: 0, error: reason };
    }
    if (result.status === 'skipped') {
      ctx.logger.info({ connector: id }, `connector ${id}: its previous load is still running; skipped`);
      return { connector: id, status: 'skipped', windows: 0, rows: 0 };
    }
    const { windows, rows } = workCounts(result);
    this.#setLag(id, mark, result.progress?.lastWindowEnd ?? null);
    return { connector: id, status: 'ok', windows, rows };
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
