import type { CallFile, CallManifest } from './call-files.js';

/** A run of a sync that did not finish. */
export interface UnfinishedRun {
  readonly runId: string;
  /** Set once the run's files and manifest are staged: its delivery can resume. Undefined: it died reading. */
  readonly manifestKey: string | undefined;
  /** Batches the receiver acknowledged, from the first: delivery resumes at this index. */
  readonly acknowledgedBatches: number;
  /** Batches after those the receiver acknowledged too (several requests were in flight): not sent again. */
  readonly acknowledgedAhead: readonly number[];
  /** The files the run had staged, in order: all of them once staged; while reading, those done so far. */
  readonly files: readonly CallFile[];
  /** The run's start on the warehouse's clock, once its read had begun. */
  readonly startedAtMicros: number | undefined;
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

/** A batch the receiver acknowledged, and the acknowledgements of the run so far. */
export interface AcknowledgedBatch {
  readonly index: number;
  readonly calls: number;
  readonly bytes: number;
  /** The batch's messageIds, when the sync re-reads a lookback margin (see `SentCallLedger`). */
  readonly messageIds?: readonly string[];
  /** Every batch before this index is acknowledged. */
  readonly upTo: number;
  /** The batches after `upTo` acknowledged too, ascending. */
  readonly ahead: readonly number[];
}

/** A file staged while the run reads, and what the read bound. */
export interface FileStaged {
  readonly seq: number;
  readonly file: CallFile;
  readonly sinceMicros: number;
  readonly startedAtMicros: number;
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
  | { readonly status: 'failed'; readonly error: string }
  /** Stopped by a transient error: recorded as failed in the run history, taken up by the next run. */
  | { readonly status: 'interrupted'; readonly error: string };

/**
 * Where a sync's runs are recorded (the control database): one run at a time per sync (the caller holds
 * the sync's lock). A run is begun, its files recorded one by one as they are staged (their delivery
 * starts at once), the run staged (every file and the manifest written), acknowledged batch by batch,
 * finished. A run killed after staging resumes its delivery; one killed while reading, after some of its
 * batches were acknowledged, has its staged files delivered and its calls remembered as sent.
 */
export interface SyncProgress {
  state(syncId: string): Promise<SyncState>;
  /** Opens a new run; resolves with its id. */
  begin(syncId: string): Promise<string>;
  fileStaged(runId: string, staged: FileStaged): Promise<void>;
  /** The run's files and manifest are staged; counts come from the manifest. */
  staged(runId: string, manifestKey: string, manifest: CallManifest): Promise<void>;
  acknowledged(runId: string, batch: AcknowledgedBatch): Promise<void>;
  finished(runId: string, outcome: RunOutcome): Promise<void>;
}

/**
 * The calls a sync recently delivered, so that a re-read sends none twice: ids are recorded with each
 * acknowledged batch when the sync has a lookback (`AcknowledgedBatch.messageIds`), or all at once for a
 * run that died while reading (`remember`), and pruned when a run finishes.
 */
export interface SentCallLedger {
  /** Of these ids, the ones a run of this sync already delivered. */
  alreadySent(syncId: string, messageIds: readonly string[]): Promise<ReadonlySet<string>>;
  /** Records ids as delivered by a run that started at `runStartedMicros` (on the warehouse's clock). */
  remember(syncId: string, runStartedMicros: number, messageIds: readonly string[]): Promise<void>;
}
