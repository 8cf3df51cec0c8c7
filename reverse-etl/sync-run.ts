import { WharfError, withContext } from '../core/errors.js';
import type { StagingStore } from '../staging/staging-store.js';
import type { BatchSender } from './batch-sender.js';
import { callBatches } from './call-batches.js';
import {
  CALL_MANIFEST_VERSION,
  CallFileWriter,
  type CallManifest,
  REJECTED_SAMPLES,
  readCallManifest,
  readCalls,
  writeCallManifest,
} from './call-files.js';
import type { BoundParameter } from './parameter-type.js';
import type { QueryTemplate } from './query-template.js';
import { CallMapper, type CallType, messageIdOf } from './row-to-call.js';
import type { SentCallLedger, SyncProgress } from './sync-progress.js';
import type { WarehouseReader } from './warehouse-reader.js';
import type { JsonValue, ResultColumn } from './warehouse-rows.js';

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
  /** Needed when the sync has a lookback: calls already delivered are left out of a re-read. */
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
  /** Calls left out because they were delivered already (lookback). */
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

/** The instant bound for `{{last_sync_time}}`: the previous start less the lookback, never before the epoch. */
export function sinceMicros(lastSyncTimeMicros: number, lookbackMs = 0): number {
  return Math.max(0, lastSyncTimeMicros - lookbackMs * 1000);
}

/**
 * Runs one sync end to end: reads the query in a read-only transaction with `{{last_sync_time}}` bound,
 * maps each row to a call (rejecting invalid rows with a reason), writes the calls as immutable files
 * and a manifest in staging, then delivers them in batches, recording each acknowledged batch. When
 * the sync's previous run died after staging its files, that run's delivery resumes after its last
 * acknowledged batch instead (and this call returns its summary); a run that died before is marked
 * failed and a new one starts. The caller holds the sync's lock.
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
    return deliverRun(deps, sync, manifest, unfinished.manifestKey, unfinished.acknowledgedBatches, true);
  }
  if (unfinished !== undefined) {
    await deps.progress.finished(unfinished.runId, {
      status: 'failed',
      error: 'stopped before its calls were staged; nothing of it was delivered',
    });
  }
  const runId = await deps.progress.begin(sync.id);
  let manifest: CallManifest;
  let key: string;
  try {
    manifest = await stageRun(deps, sync, runId, sinceMicros(state.lastSyncTimeMicros, sync.lookbackMs));
    key = await writeCallManifest(deps.store, manifest, deps.files.spoolDir);
    await deps.progress.staged(runId, key, manifest);
  } catch (error) {
    await fail(deps, runId, error);
    throw error;
  }
  return deliverRun(deps, sync, manifest, key, 0, false);
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
  for await (const batch of callBatches(readCalls(deps.store, manifest), deps.sender.limits)) {
    await deps.sender.send(batch.lines, batch.index);
    batches++;
    calls += batch.lines.length;
    bytes += batch.bytes;
  }
  return { batches, calls, bytes };
}

async function deliverRun(
  deps: SyncRunDeps,
  sync: SyncDefinition,
  manifest: CallManifest,
  manifestKey: string,
  from: number,
  resumed: boolean,
): Promise<SyncRunSummary> {
  const runId = manifest.run_id;
  const record = (sync.lookbackMs ?? 0) > 0;
  let batches = 0;
  let bytes = 0;
  let total = from;
  try {
    for await (const batch of readAhead(callBatches(readCalls(deps.store, manifest), deps.sender.limits))) {
      total = batch.index + 1;
      if (batch.index < from) continue;
      await deps.sender.send(batch.lines, batch.index);
      await deps.progress.acknowledged(runId, {
        index: batch.index,
        calls: batch.lines.length,
        bytes: batch.bytes,
        ...(record ? { messageIds: batch.lines.map(messageIdOf) } : {}),
      });
      batches++;
      bytes += batch.bytes;
    }
    await deps.progress.finished(runId, {
      status: 'ok',
      rows: manifest.rows,
      calls: manifest.calls,
      rejected: manifest.rejected,
      batches: total,
      nextSinceMicros: sinceMicros(manifest.started_at_micros, sync.lookbackMs),
    });
  } catch (error) {
    // a transient failure leaves the run staged: the next invocation resumes it
    if (!(error instanceof WharfError && error.transient)) await fail(deps, runId, error);
    throw withContext(error, { key: manifestKey });
  }
  return {
    syncId: manifest.sync_id,
    runId,
    resumed,
    rows: manifest.rows,
    calls: manifest.calls,
    rejected: manifest.rejected,
    rejections: manifest.rejections,
    alreadySent: manifest.already_sent,
    batches,
    bytes,
    sql: manifest.sql,
    parameter: manifest.parameter,
    sinceMicros: manifest.since_micros,
    startedAtMicros: manifest.started_at_micros,
    manifestKey,
  };
}

/**
 * Passes on what `source` yields, asking it for the next item as soon as one is handed over: the next
 * batch is read from the files and cut while the current one is on the wire (two in memory at most).
 */
async function* readAhead<T>(source: AsyncGenerator<T>): AsyncGenerator<T> {
  let next = source.next();
  try {
    for (;;) {
      const item = await next;
      if (item.done) return;
      next = source.next();
      next.catch(() => {});
      yield item.value;
    }
  } finally {
    await next.catch(() => {});
    await source.return(undefined);
  }
}

async function fail(deps: SyncRunDeps, runId: string, error: unknown): Promise<void> {
  const line = error instanceof WharfError ? error.oneLine() : String((error as Error)?.message ?? error);
  await deps.progress.finished(runId, { status: 'failed', error: line }).catch(() => {});
}

/** Counts rejected rows per reason, keeping the first few as examples. */
class Rejections {
  readonly counts: Record<string, number> = {};
  readonly samples: { row: number; reason: string }[] = [];
  total = 0;

  add(row: number, reason: string): void {
    this.total++;
    this.counts[reason] = (this.counts[reason] ?? 0) + 1;
    if (this.samples.length < REJECTED_SAMPLES) this.samples.push({ row, reason });
  }
}

/** Ids looked up in the ledger at a time. */
const LEDGER_CHUNK = 2000;

/** Reads, maps and stages a run's calls; returns its manifest (not yet written). */
async function stageRun(
  deps: SyncRunDeps,
  sync: SyncDefinition,
  runId: string,
  since: number,
): Promise<CallManifest> {
  const writer = new CallFileWriter({
    store: deps.store,
    syncId: sync.id,
    runId,
    spoolDir: deps.files.spoolDir,
    ...(deps.files.maxFileBytes === undefined ? {} : { maxFileBytes: deps.files.maxFileBytes }),
  });
  const ledger = (sync.lookbackMs ?? 0) > 0 ? deps.ledger : undefined;
  if ((sync.lookbackMs ?? 0) > 0 && ledger === undefined) {
    throw new WharfError(`sync ${sync.id} has a lookback but no ledger of sent calls was given`);
  }
  const rejections = new Rejections();
  let rows = 0;
  let calls = 0;
  let alreadySent = 0;
  let pending: string[] = [];
  const flush = async (): Promise<void> => {
    const ids = pending.map(messageIdOf);
    const sent = await ledger!.alreadySent(sync.id, ids);
    for (let i = 0; i < pending.length; i++) {
      if (sent.has(ids[i]!)) alreadySent++;
      else {
        calls++;
        const wait = writer.add(pending[i]!);
        if (wait) await wait;
      }
    }
    pending = [];
  };
  try {
    const read = await deps.reader.read(
      { query: sync.query, sinceMicros: since, timeoutMs: sync.timeoutMs },
      async (result) => {
        let mapper: CallMapper | undefined;
        for await (const batch of result.batches) {
          mapper ??= new CallMapper(sync.id, sync.type, batch.columns);
          for (const row of batch.rows) {
            rows++;
            const mapped = mapper.map(row);
            if (!mapped.ok) rejections.add(rows, mapped.reason);
            else if (ledger !== undefined) {
              pending.push(mapped.line);
              if (pending.length >= LEDGER_CHUNK) await flush();
            } else {
              calls++;
              const wait = writer.add(mapped.line);
              if (wait) await wait;
            }
          }
        }
        if (pending.length > 0) await flush();
        return { startedAtMicros: result.startedAtMicros, parameter: result.parameter };
      },
    );
    const files = await writer.finish();
    return {
      format_version: CALL_MANIFEST_VERSION,
      sync_id: sync.id,
      run_id: runId,
      type: sync.type,
      sql: sync.query.sql,
      parameter: parameterOf(read.parameter),
      since_micros: since,
      started_at: isoMicros(read.startedAtMicros),
      started_at_micros: read.startedAtMicros,
      rows,
      calls,
      rejected: rejections.total,
      already_sent: alreadySent,
      rejections: rejections.counts,
      rejected_samples: rejections.samples,
      files: [...files],
    };
  } catch (error) {
    await writer.discard();
    throw error;
  }
}

function parameterOf(p: BoundParameter | undefined): CallManifest['parameter'] {
  return p === undefined ? null : { type: p.name, kind: p.kind, value: p.value };
}

/** µs since the epoch → ISO-8601 UTC with microseconds. */
export function isoMicros(micros: number): string {
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return `${iso.slice(0, 19)}.${String(micros % 1_000_000).padStart(6, '0')}Z`;
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
