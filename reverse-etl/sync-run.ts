import { oneLine, WharfError, withContext } from '../core/errors.js';
import type { StagingStore } from '../staging/staging-store.js';
import type { BatchSender } from './batch-sender.js';
import { CallDelivery } from './call-delivery.js';
import {
  type CallManifest,
  readCallManifest,
  readFileCalls,
  stagedBatches,
  writeCallManifest,
} from './call-files.js';
import type { QueryTemplate } from './query-template.js';
import { CallMapper, type CallType, messageIdOf } from './row-to-call.js';
import { isoMicros, parameterOf, sinceMicros } from './run-values.js';
import { stageCalls } from './stage-calls.js';
import type { SentCallLedger, SyncProgress, UnfinishedRun } from './sync-progress.js';
import type { WarehouseReader } from './warehouse-reader.js';
import type { JsonValue, ResultColumn } from './warehouse-rows.js';

export { isoMicros, sinceMicros };

/** A sync as a run needs it. */
export interface SyncDefinition {
  readonly id: string;
  readonly type: CallType;
  readonly query: QueryTemplate;
  /** The statement timeout (see `defaultQueryTimeoutMs`). */
  readonly timeoutMs: number;
  /** Re-reads this margin before `last_sync_time` for rows committed late. Default 0. */
  readonly lookbackMs?: number;
}

/** What a run needs, passed in. */
export interface SyncRunDeps {
  readonly reader: WarehouseReader;
  readonly store: StagingStore;
  readonly sender: BatchSender;
  readonly progress: SyncProgress;
  /**
   * Needed when the sync has a lookback (calls already delivered are left out of a re-read), and to take up
   * a run that died while reading without sending its calls twice.
   */
  readonly ledger?: SentCallLedger;
  /** Where files wait before they are staged (`spoolDir`), and how big a call file may grow. */
  readonly files: { readonly spoolDir: string; readonly maxFileBytes?: number };
}

/** One run, counted. */
export interface SyncRunSummary {
  readonly syncId: string;
  readonly runId: string;
  /** True when this was an earlier run's delivery taken up again. */
  readonly resumed: boolean;
  readonly rows: number;
  readonly calls: number;
  readonly rejected: number;
  readonly rejections: Readonly<Record<string, number>>;
  /** Calls left out because they were delivered already (lookback, or a run that died while reading). */
  readonly alreadySent: number;
  /** Batches delivered by this invocation (a resumed run counts only the rest). */
  readonly batches: number;
  /** Request bytes delivered by this invocation. */
  readonly bytes: number;
  readonly sql: string;
  readonly parameter: CallManifest['parameter'];
  readonly sinceMicros: number;
  /** The run's start on the warehouse's clock: the next run's `last_sync_time`. */
  readonly startedAtMicros: number;
  readonly manifestKey: string;
}

/** A statement timeout below the sync's frequency: 80 % of it, at least 5 s. */
export function defaultQueryTimeoutMs(everyMs: number): number {
  return Math.max(5_000, Math.floor(everyMs * 0.8));
}

/**
 * Runs one sync end to end: reads the query in a read-only transaction with `{{last_sync_time}}` bound,
 * maps each row to a call (rejecting invalid rows with a reason), writes the calls as immutable files in
 * staging and delivers each file as soon as it is staged, recording each acknowledged batch; the manifest
 * is written once every file is, and the last file is delivered after it. When the sync's previous run
 * died after its manifest, that run's delivery resumes instead (and this call returns its summary); one
 * that died while reading, after some of its batches were acknowledged, has the rest of its staged files
 * delivered and its calls left out of the new run's read; one that sent nothing is marked failed. The
 * caller holds the sync's lock.
 */
export async function runSync(deps: SyncRunDeps, sync: SyncDefinition): Promise<SyncRunSummary> {
  const state = await deps.progress.state(sync.id);
  const unfinished = state.unfinished;
  if (unfinished?.manifestKey !== undefined) {
    const manifest = await readCallManifest(deps.store, unfinished.manifestKey);
    if (manifest === undefined) {
      throw new WharfError(`the manifest ${unfinished.manifestKey} of run ${unfinished.runId} is missing`, {
        context: { key: unfinished.manifestKey },
        hint: 'check --staging-url: a staged run is delivered from its files',
      });
    }
    return deliverStaged(deps, sync, manifest, unfinished.manifestKey, unfinished);
  }
  let filterSent = (sync.lookbackMs ?? 0) > 0;
  if (unfinished !== undefined) filterSent = (await takeUpDeadRead(deps, sync, unfinished)) || filterSent;
  const runId = await deps.progress.begin(sync.id);
  const since = sinceMicros(state.lastSyncTimeMicros, sync.lookbackMs);
  const delivery = newDelivery(deps, sync, runId);
  let key: string | undefined;
  try {
    const { manifest, rest } = await stageCalls(deps, sync, runId, since, filterSent, delivery);
    key = await writeCallManifest(deps.store, manifest, deps.files.spoolDir);
    await deps.progress.staged(runId, key, manifest);
    for (const batch of rest) await delivery.send(batch);
    const sent = await delivery.finish();
    await deps.progress.finished(runId, okOutcome(sync, manifest, sent.total));
    return summary(manifest, key, false, sent);
  } catch (error) {
    await delivery.settle();
    await stopped(deps, runId, error);
    throw key === undefined ? error : withContext(error, { key });
  }
}

/**
 * Delivers a staged run again from its files, every batch (receivers drop repeated messageIds). Records
 * nothing: replay is for a receiver that lost data.
 */
export async function replayRun(
  deps: Pick<SyncRunDeps, 'store' | 'sender'>,
  manifestKey: string,
): Promise<{ readonly batches: number; readonly calls: number; readonly bytes: number }> {
  const manifest = await readCallManifest(deps.store, manifestKey);
  if (manifest === undefined) {
    throw new WharfError(`there is no staged run at ${manifestKey}`, {
      context: { key: manifestKey },
      hint: 'check the sync and run ids, and --staging-url',
    });
  }
  let batches = 0;
  let calls = 0;
  let bytes = 0;
  for await (const batch of stagedBatches(deps.store, manifest.files, deps.sender.limits)) {
    await deps.sender.send(batch.payload, batch.index);
    batches++;
    calls += batch.calls;
    bytes += batch.bytes;
  }
  return { batches, calls, bytes };
}

function newDelivery(
  deps: SyncRunDeps,
  sync: SyncDefinition,
  runId: string,
  acknowledged?: UnfinishedRun,
): CallDelivery {
  return new CallDelivery({
    sender: deps.sender,
    progress: deps.progress,
    runId,
    recordIds: (sync.lookbackMs ?? 0) > 0,
    ...(deps.sender.inFlight === undefined ? {} : { inFlight: deps.sender.inFlight }),
    ...(acknowledged === undefined
      ? {}
      : { acknowledged: { upTo: acknowledged.acknowledgedBatches, ahead: acknowledged.acknowledgedAhead } }),
  });
}

/** Takes up a staged run's delivery after its last acknowledged batches. */
async function deliverStaged(
  deps: SyncRunDeps,
  sync: SyncDefinition,
  manifest: CallManifest,
  manifestKey: string,
  unfinished: UnfinishedRun,
): Promise<SyncRunSummary> {
  const runId = manifest.run_id;
  const delivery = newDelivery(deps, sync, runId, unfinished);
  try {
    for await (const batch of stagedBatches(deps.store, manifest.files, deps.sender.limits)) {
      await delivery.send(batch);
    }
    const sent = await delivery.finish();
    await deps.progress.finished(runId, okOutcome(sync, manifest, sent.total));
    return summary(manifest, manifestKey, true, sent);
  } catch (error) {
    await delivery.settle();
    await stopped(deps, runId, error);
    throw withContext(error, { key: manifestKey });
  }
}

/**
 * A run that died while reading. When none of its batches was acknowledged, nothing of it reached the
 * receiver (but a batch in flight, which is allowed to repeat): it is marked failed. Otherwise the rest of its
 * staged files are delivered and all their calls remembered as sent, so that the new run, which reads again
 * from the same `last_sync_time`, leaves them out. Returns true in that case.
 */
async function takeUpDeadRead(
  deps: SyncRunDeps,
  sync: SyncDefinition,
  dead: UnfinishedRun,
): Promise<boolean> {
  const sent = dead.acknowledgedBatches > 0 || dead.acknowledgedAhead.length > 0;
  if (!sent || deps.ledger === undefined) {
    await deps.progress.finished(dead.runId, {
      status: 'failed',
      error: sent
        ? 'stopped while reading; the calls it had delivered may be sent again (receivers drop repeated messageIds)'
        : 'stopped before its calls were staged; nothing of it was delivered',
    });
    return false;
  }
  const delivery = newDelivery(deps, sync, dead.runId, dead);
  for await (const batch of stagedBatches(deps.store, dead.files, deps.sender.limits))
    await delivery.send(batch);
  await delivery.finish();
  let ids: string[] = [];
  let calls = 0;
  for (const file of dead.files) {
    for await (const line of readFileCalls(deps.store, file)) {
      ids.push(messageIdOf(line));
      calls++;
      if (ids.length >= 5000) {
        await deps.ledger.remember(sync.id, dead.startedAtMicros ?? 0, ids);
        ids = [];
      }
    }
  }
  await deps.ledger.remember(sync.id, dead.startedAtMicros ?? 0, ids);
  await deps.progress.finished(dead.runId, {
    status: 'failed',
    error: `stopped while reading; the ${calls} calls it had staged were delivered, and the next run leaves them out`,
  });
  return true;
}

function okOutcome(sync: SyncDefinition, manifest: CallManifest, batches: number) {
  return {
    status: 'ok' as const,
    rows: manifest.rows,
    calls: manifest.calls,
    rejected: manifest.rejected,
    batches,
    nextSinceMicros: sinceMicros(manifest.started_at_micros, sync.lookbackMs),
  };
}

/**
 * Records how a run stopped: a transient error leaves it to the next run (a staged run resumes its
 * delivery; one stopped while reading is taken up), any other marks it failed.
 */
async function stopped(deps: SyncRunDeps, runId: string, error: unknown): Promise<void> {
  const line = oneLine(error);
  const status = error instanceof WharfError && error.transient ? 'interrupted' : 'failed';
  await deps.progress.finished(runId, { status, error: line }).catch(() => {});
}

function summary(
  manifest: CallManifest,
  manifestKey: string,
  resumed: boolean,
  sent: { readonly batches: number; readonly bytes: number },
): SyncRunSummary {
  return {
    syncId: manifest.sync_id,
    runId: manifest.run_id,
    resumed,
    rows: manifest.rows,
    calls: manifest.calls,
    rejected: manifest.rejected,
    rejections: manifest.rejections,
    alreadySent: manifest.already_sent,
    batches: sent.batches,
    bytes: sent.bytes,
    sql: manifest.sql,
    parameter: manifest.parameter,
    sinceMicros: manifest.since_micros,
    startedAtMicros: manifest.started_at_micros,
    manifestKey,
  };
}

/** What `wharf retl preview` shows. */
export interface SyncPreview {
  /** The SQL sent, with `$1` / `@p1`. */
  readonly sql: string;
  /** The parameter and the value the next run would bind (undefined: the query has none). */
  readonly parameter: CallManifest['parameter'];
  readonly sinceMicros: number;
  readonly columns: readonly ResultColumn[];
  /** The rows read, each as `{column: value}`. */
  readonly rows: ReadonlyArray<Readonly<Record<string, JsonValue>>>;
  /** The calls as they would be sent (without `sentAt`, which is set when a batch goes out). */
  readonly calls: ReadonlyArray<Readonly<Record<string, JsonValue>>>;
  /** Each rejected row (1-based, in the order read) with its reason. */
  readonly rejected: ReadonlyArray<{ readonly row: number; readonly reason: string }>;
}

export interface PreviewRequest {
  /** The sync's id (messageIds depend on it); any label for a query not yet saved. */
  readonly syncId: string;
  readonly type: CallType;
  readonly query: QueryTemplate;
  /** As in `SyncState`: the value the next run would bind comes from it. */
  readonly lastSyncTimeMicros: number;
  readonly lookbackMs?: number;
  readonly timeoutMs: number;
  /** Rows read at most. Default 10. */
  readonly limit?: number;
}

/**
 * Runs the query the way the next run would (same read-only path, same bound value), for at most
 * `limit` rows, and returns the rendered SQL, the parameter, the rows, the calls and the rejections.
 * Sends nothing, writes nothing, records nothing.
 */
export async function previewSync(reader: WarehouseReader, request: PreviewRequest): Promise<SyncPreview> {
  const since = sinceMicros(request.lastSyncTimeMicros, request.lookbackMs);
  return reader.read(
    { query: request.query, sinceMicros: since, timeoutMs: request.timeoutMs, limit: request.limit ?? 10 },
    async (result) => {
      let columns: readonly ResultColumn[] = [];
      let mapper: CallMapper | undefined;
      const rows: Record<string, JsonValue>[] = [];
      const calls: Record<string, JsonValue>[] = [];
      const rejected: { row: number; reason: string }[] = [];
      for await (const batch of result.batches) {
        columns = batch.columns;
        mapper ??= new CallMapper(request.syncId, request.type, batch.columns);
        for (const row of batch.rows) {
          rows.push(Object.fromEntries(columns.map((c, i) => [c.name, row[i] ?? null])));
          const mapped = mapper.map(row);
          if (mapped.ok) calls.push(JSON.parse(mapped.line) as Record<string, JsonValue>);
          else rejected.push({ row: rows.length, reason: mapped.reason });
        }
      }
      return {
        sql: request.query.sql,
        parameter: parameterOf(result.parameter),
        sinceMicros: since,
        columns,
        rows,
        calls,
        rejected,
      };
    },
  );
}
