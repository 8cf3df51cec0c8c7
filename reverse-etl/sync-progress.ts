import type { CallManifest } from './call-files.js';

/** A run of a sync that did not finish. */
export interface UnfinishedRun {
  readonly runId: string;
  /** Set once the run's files and manifest are staged: its delivery can resume. Undefined: it died reading. */
  readonly manifestKey: string | undefined;
  /** Batches the receiver acknowledged, from the first: delivery resumes at this index. */
  readonly acknowledgedBatches: number;
}

/** What the next run of a sync starts from. */
export interface SyncState {
  /**
   * The start, on the warehouse's clock (µs since the Unix epoch), of the last successful run; before the
   * first one, 0 (or the sync's start time).
   */
  readonly lastSyncTimeMicros: number;
  readonly unfinished?: UnfinishedRun;
}

/** A batch the receiver acknowledged. */
export interface AcknowledgedBatch {
  readonly index: number;
  readonly calls: number;
  readonly bytes: number;
  /** The batch's messageIds, when the sync re-reads a lookback margin (see `SentCallLedger`). */
  readonly messageIds?: readonly string[];
}

/** How a run ended. */
export type RunOutcome =
  | {
      readonly status: 'ok';
      readonly rows: number;
      readonly calls: number;
      readonly rejected: number;
      readonly batches: number;
      /** The next run reads from here: ids sent by runs that started no later cannot be re-read. */
      readonly nextSinceMicros: number;
    }
  | { readonly status: 'failed'; readonly error: string };

/**
 * Where a sync's runs are recorded (the control database): one run at a time per sync (the caller holds
 * the sync's lock). A run is begun, staged (files and manifest written), acknowledged batch by batch,
 * finished. A run killed after staging resumes its delivery after its last acknowledged batch.
 */
export interface SyncProgress {
  state(syncId: string): Promise<SyncState>;
  /** Opens a new run; resolves with its id. */
  begin(syncId: string): Promise<string>;
  /** The run's files and manifest are staged; counts come from the manifest. */
  staged(runId: string, manifestKey: string, manifest: CallManifest): Promise<void>;
  acknowledged(runId: string, batch: AcknowledgedBatch): Promise<void>;
  finished(runId: string, outcome: RunOutcome): Promise<void>;
}

/**
 * The calls a sync recently delivered, so that a lookback re-read sends none twice: ids are recorded with
 * each acknowledged batch (`AcknowledgedBatch.messageIds`) and pruned when a run finishes.
 */
export interface SentCallLedger {
  /** Of these ids, the ones a run of this sync already delivered. */
  alreadySent(syncId: string, messageIds: readonly string[]): Promise<ReadonlySet<string>>;
}
