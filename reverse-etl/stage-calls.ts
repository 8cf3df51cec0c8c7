import { WharfError } from '../core/errors.js';
import type { PackedBatch } from './call-batches.js';
import type { CallDelivery } from './call-delivery.js';
import {
  CALL_MANIFEST_VERSION,
  CallFileWriter,
  type CallManifest,
  REJECTED_SAMPLES,
  type StagedCallFile,
} from './call-files.js';
import { MappingThread } from './mapping-thread.js';
import { CallMapper, messageIdOf } from './row-to-call.js';
import { isoMicros, parameterOf } from './run-values.js';
import type { SyncDefinition, SyncRunDeps } from './sync-run.js';

/** What `stageCalls` leaves to do once the manifest is recorded: the last file's batches. */
export interface StagedCalls {
  readonly manifest: CallManifest;
  /** Batches of the file staged after the read ended: delivered only once the run is recorded as staged. */
  readonly rest: readonly PackedBatch[];
}

/**
 * A result whose first fetch has at least this many rows (more are likely to follow) is mapped on a second thread
 * (`MappingThread`); a smaller one on this thread, without the cost of starting one. A sync with a lookback maps
 * on this thread (its calls are checked against the ledger before they are cut into batches).
 */
export const MAP_THREAD_ROWS = 1000;

/** Ids looked up in the ledger at a time. */
const LEDGER_CHUNK = 2000;

/**
 * Reads the sync's query, maps each row to a call (rejecting invalid rows with a reason) and writes the
 * calls as files; each file is recorded as soon as it is staged and, while the read goes on, handed to
 * `delivery` (at most one file waits behind the one being sent, so memory stays flat and the receiver works
 * while the warehouse is read). With `filterSent`, calls the ledger knows as delivered are left out.
 * Returns the manifest (not yet written) and the batches of the last file.
 */
export async function stageCalls(
  deps: SyncRunDeps,
  sync: SyncDefinition,
  runId: string,
  since: number,
  filterSent: boolean,
  delivery: CallDelivery,
): Promise<StagedCalls> {
  const ledger = filterSent ? deps.ledger : undefined;
  if (filterSent && ledger === undefined) {
    throw new WharfError(`sync ${sync.id} re-reads calls it sent, but no ledger of sent calls was given`);
  }
  let reading = true;
  let startedAtMicros = 0;
  const rest: PackedBatch[] = [];
  // the files handed to delivery, each a promise that they are all on their way
  let queue: Promise<void> = Promise.resolve();
  const handed: Promise<void>[] = [];
  const onFile = async (staged: StagedCallFile): Promise<void> => {
    await deps.progress.fileStaged(runId, {
      seq: staged.seq,
      file: staged.file,
      sinceMicros: since,
      startedAtMicros,
    });
    if (!reading) {
      rest.push(...staged.batches);
      return;
    }
    queue = queue.then(async () => {
      for (const batch of staged.batches) await delivery.send(batch);
    });
    queue.catch(() => {});
    handed.push(queue);
    // one file waits behind the one on the wire, no more
    if (handed.length >= 2) await handed[handed.length - 2];
  };
  const writer = new CallFileWriter({
    store: deps.store,
    syncId: sync.id,
    runId,
    spoolDir: deps.files.spoolDir,
    limits: deps.sender.limits ?? {},
    onFile,
    ...(deps.files.maxFileBytes === undefined ? {} : { maxFileBytes: deps.files.maxFileBytes }),
  });
  const rejections = new Rejections();
  let rows = 0;
  let calls = 0;
  let alreadySent = 0;
  let pending: string[] = [];
  let thread: MappingThread | undefined;
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
        startedAtMicros = result.startedAtMicros;
        let mapper: CallMapper | undefined;
        for await (const batch of result.batches) {
          if (mapper === undefined) {
            // built here whatever the thread: a query whose columns cannot map fails before anything starts
            mapper = new CallMapper(sync.id, sync.type, batch.columns);
            if (ledger === undefined && batch.rows.length >= MAP_THREAD_ROWS) {
              thread = new MappingThread({
                syncId: sync.id,
                type: sync.type,
                columns: batch.columns,
                limits: deps.sender.limits ?? {},
                onBatch: (packed) => writer.addBatch(packed),
                onRejected: (row, reason) => rejections.add(row, reason),
              });
            }
          }
          if (thread !== undefined) {
            await thread.map(batch.rows, rows + 1);
            rows += batch.rows.length;
            continue;
          }
          if (ledger !== undefined) {
            for (const row of batch.rows) {
              rows++;
              const mapped = mapper.map(row);
              if (!mapped.ok) rejections.add(rows, mapped.reason);
              else {
                pending.push(mapped.line);
                if (pending.length >= LEDGER_CHUNK) await flush();
              }
            }
            continue;
          }
          // each call written once, with its messageId, into its batch
          const seed = mapper.seed;
          for (const row of batch.rows) {
            rows++;
            const mapped = mapper.mapBody(row);
            if (!mapped.ok) rejections.add(rows, mapped.reason);
            else {
              calls++;
              const wait = writer.addCall(seed, mapped.body);
              if (wait) await wait;
            }
          }
        }
        if (pending.length > 0) await flush();
        if (thread !== undefined) calls = await thread.finish();
        return { startedAtMicros: result.startedAtMicros, parameter: result.parameter };
      },
    );
    reading = false;
    const files = await writer.finish();
    // the files handed to delivery are all on their way (a failure among them ends the run here)
    await queue;
    return {
      manifest: {
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
      },
      rest,
    };
  } catch (error) {
    await writer.discard();
    throw error;
  } finally {
    await thread?.close();
  }
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
