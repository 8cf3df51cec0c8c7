import type { RetlSource } from '../control/retl-sources.js';
import type { DueSync, RetlSync } from '../control/retl-syncs.js';
import { recordRun } from '../control/runs.js';
import { BusyError, UsageError, type WharfError, withContext } from '../core/errors.js';
import { tryAdvisoryLock } from '../db/postgres/locks.js';
import { parseQueryTemplate } from '../reverse-etl/query-template.js';
import type { CallType } from '../reverse-etl/row-to-call.js';
import type { SyncProgress } from '../reverse-etl/sync-progress.js';
import { replayRun, runSync, type SyncDefinition, type SyncRunSummary } from '../reverse-etl/sync-run.js';
import { type RetlStores, retlStores, sourceReader, syncSender } from './retl-context.js';
import { recordSafely } from './run-record.js';
import type { Runtime } from './runtime.js';
import { syncMetrics } from './sync-metrics.js';

/** The advisory lock a sync's job holds on the control database: one run of a sync at a time. */
export function syncLockKey(controlSchema: string, syncId: string): string {
  return `wharf.retl.${controlSchema}.${syncId}`;
}

/** What a sync job did: a run (possibly of no rows), or skipped because another run holds its lock. */
export type SyncJobResult =
  | { readonly status: 'ok'; readonly summary: SyncRunSummary }
  | { readonly status: 'skipped' };

export interface SyncJobOptions {
  /** Park the sync (state `failing`, with the reason) on a terminal error. Default true. */
  readonly park?: boolean;
}

/** A stored sync as a run needs it: its query parsed for the source's engine. */
export function syncDefinition(sync: RetlSync, source: RetlSource): SyncDefinition {
  return {
    id: sync.id,
    type: sync.type as CallType,
    query: parseQueryTemplate(sync.query, source.engine),
    timeoutMs: sync.timeoutMs,
    ...(sync.lookbackMs > 0 ? { lookbackMs: sync.lookbackMs } : {}),
  };
}

/**
 * A reverse-ETL sync's job: under its advisory try-lock (on a connection of its own to the control database,
 * so that a crash releases it at once), one run of the sync (`runSync`: read, map, stage, deliver; or the
 * previous run taken up). Whoever starts it, every run is recorded in the control `runs` table (kind `sync`,
 * with the sync's id, rows, calls and rejected; a skip or a failure before the run began too) and counted in
 * the metrics. A terminal error parks the sync (state `failing`, with the reason) until it is enabled again
 * or a run of it succeeds; errors carry the sync in their context. A disabled sync is refused.
 */
export async function runSyncJob(
  rt: Runtime,
  syncId: string,
  options: SyncJobOptions = {},
): Promise<SyncJobResult> {
  const stores = await retlStores(rt);
  const sync = await stores.syncs.get(syncId);
  const id = sync.id;
  const metrics = syncMetrics(rt.metrics);
  if (sync.state === 'disabled') {
    throw new UsageError(`sync ${id} is disabled`, `enable it first: wharf retl syncs enable ${id}`);
  }
  const startedAt = new Date();
  const control = await rt.control();
  const lock = await tryAdvisoryLock(
    rt.controlUrl(),
    syncLockKey(rt.settings.controlSchema, id),
    'wharf-retl-lock',
  ).catch((error: unknown) => {
    throw withContext(error, { sync: id });
  });
  const record = (status: 'skipped' | 'failed', error?: string) =>
    recordSafely(rt, () =>
      recordRun(control, rt.settings.controlSchema, {
        connectorId: null,
        syncId: id,
        kind: 'sync',
        startedAt,
        finishedAt: new Date(),
        status,
        windows: 0,
        rows: 0,
        ...(error ? { error } : {}),
      }),
    );
  if (!lock) {
    metrics.runs.inc({ sync: id, status: 'skipped' });
    await record('skipped');
    rt.logger.info({ sync: id }, `sync ${id}: another run of it holds its lock; skipped`);
    return { status: 'skipped' };
  }
  let recorded = false;
  try {
    const progress = recording(stores.progress, () => {
      recorded = true;
    });
    const source = await stores.sources.get(sync.sourceId);
    const sender = await syncSender(rt, stores, sync);
    const summary = await runSync(
      {
        reader: await sourceReader(stores, source),
        store: rt.store(),
        sender,
        progress,
        ledger: stores.progress,
        files: { spoolDir: rt.spoolDir() },
      },
      syncDefinition(sync, source),
    ).finally(() => sender.close());
    metrics.rows.inc({ sync: id }, summary.rows);
    metrics.calls.inc({ sync: id }, summary.calls);
    metrics.rejected.inc({ sync: id }, summary.rejected);
    metrics.runs.inc({ sync: id, status: 'ok' });
    if (sync.state === 'failing') {
      await stores.syncs.setState(id, 'active');
      rt.logger.info({ sync: id }, `sync ${id}: ran again successfully; active again`);
    }
    rt.logger.info(
      { sync: id, run: summary.runId, rows: summary.rows, calls: summary.calls, rejected: summary.rejected },
      `sync ${id}: run ${summary.runId}${summary.resumed ? ' (taken up)' : ''}: ${summary.rows} rows, ${summary.calls} calls, ${summary.rejected} rejected, ${summary.batches} batches sent`,
    );
    return { status: 'ok', summary };
  } catch (error) {
    const e = withContext(error, { sync: id });
    metrics.runs.inc({ sync: id, status: 'failed' });
    metrics.failures.inc({ sync: id, kind: e.kind });
    if (!recorded) await record('failed', e.oneLine());
    if (!e.transient && options.park !== false) await park(rt, stores, id, e);
    throw e;
  } finally {
    await lock.release();
  }
}

/** Wraps the progress so that the job knows whether the run recorded itself (began, or finished one). */
function recording(progress: SyncProgress, mark: () => void): SyncProgress {
  return {
    state: (syncId) => progress.state(syncId),
    begin: async (syncId) => {
      const runId = await progress.begin(syncId);
      mark();
      return runId;
    },
    fileStaged: (runId, staged) => progress.fileStaged(runId, staged),
    staged: (runId, key, manifest) => progress.staged(runId, key, manifest),
    acknowledged: (runId, batch) => progress.acknowledged(runId, batch),
    finished: async (runId, outcome) => {
      await progress.finished(runId, outcome);
      mark();
    },
  };
}

async function park(rt: Runtime, stores: RetlStores, id: string, error: WharfError): Promise<void> {
  const reason = error.oneLine();
  try {
    const now = await stores.syncs.get(id);
    if (now.state === 'active') await stores.syncs.setState(id, 'failing', reason);
    rt.logger.warn(
      { sync: id },
      `sync ${id} parked (state failing): ${reason}; fix it, then \`wharf retl syncs enable ${id}\` (or run it: \`wharf retl run ${id}\`)`,
    );
  } catch (parkError) {
    rt.logger.warn({ sync: id }, `sync ${id}: cannot park it: ${(parkError as Error).message}`);
  }
}

/**
 * The syncs `wharf run` should run now: active, of an active source, whose last run started at least their
 * frequency ago (or that never ran), on the control database's clock, longest waiting first. A sync counts
 * as due `aheadMs` early (pass a small margin, e.g. 5 % of the scheduler's tick, so that a 1-minute sync is not
 * put off by a whole tick). Run each with `runSyncJob(rt, id)`.
 */
export async function dueSyncs(
  rt: Runtime,
  options: { readonly aheadMs?: number } = {},
): Promise<readonly DueSync[]> {
  return (await retlStores(rt)).syncs.due(options.aheadMs ?? 0);
}

/** What a replay delivered. */
export interface ReplayResult {
  readonly syncId: string;
  readonly runId: string;
  readonly batches: number;
  readonly calls: number;
  readonly bytes: number;
}

/**
 * `wharf retl replay SYNC --run N`: delivers a staged run of the sync again from its files (the same calls with
 * the same messageIds; receivers drop those they have), under the sync's lock, recorded in the run history.
 * Throws a `BusyError` when another run of the sync holds the lock.
 */
export async function replaySyncRun(rt: Runtime, syncId: string, runId: string): Promise<ReplayResult> {
  const stores = await retlStores(rt);
  const sync = await stores.syncs.get(syncId);
  const key = await stores.progress.manifestOf(sync.id, runId);
  if (key === undefined) {
    throw new UsageError(
      `sync ${sync.id} has no staged run ${runId}`,
      `see its runs with \`wharf retl syncs show ${sync.id}\``,
    );
  }
  const lock = await tryAdvisoryLock(
    rt.controlUrl(),
    syncLockKey(rt.settings.controlSchema, sync.id),
    'wharf-retl-lock',
  );
  if (!lock) {
    throw new BusyError(
      `sync ${sync.id} was not replayed: another run of it holds its lock`,
      'run the replay again once that run is done',
    );
  }
  const startedAt = new Date();
  const control = await rt.control();
  try {
    const sender = await syncSender(rt, stores, sync);
    const sent = await replayRun({ store: rt.store(), sender }, key).finally(() => sender.close());
    await recordSafely(rt, () =>
      recordRun(control, rt.settings.controlSchema, {
        connectorId: null,
        syncId: sync.id,
        kind: 'sync',
        startedAt,
        finishedAt: new Date(),
        status: 'ok',
        windows: 0,
        rows: sent.calls,
      }),
    );
    return { syncId: sync.id, runId, ...sent };
  } catch (error) {
    const e = withContext(error, { sync: sync.id });
    await recordSafely(rt, () =>
      recordRun(control, rt.settings.controlSchema, {
        connectorId: null,
        syncId: sync.id,
        kind: 'sync',
        startedAt,
        finishedAt: new Date(),
        status: 'failed',
        windows: 0,
        rows: 0,
        error: e.oneLine(),
      }),
    );
    throw e;
  } finally {
    await lock.release();
  }
}
