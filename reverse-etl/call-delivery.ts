import { WharfError } from '../core/errors.js';
import { classifyPgError } from '../db/postgres/errors.js';
import type { BatchSender } from './batch-sender.js';
import { type PackedBatch, packedMessageIds } from './call-batches.js';
import type { AcknowledgedBatch, SyncProgress } from './sync-progress.js';

export interface CallDeliveryConfig {
  readonly sender: BatchSender;
  readonly progress: SyncProgress;
  readonly runId: string;
  /** Record each batch's messageIds with its acknowledgement (a sync with a lookback). */
  readonly recordIds: boolean;
  /** What the receiver acknowledged already (a resumed run): those batches are not sent again. */
  readonly acknowledged?: { readonly upTo: number; readonly ahead: readonly number[] };
  /** Requests in flight at most. Default 1. */
  readonly inFlight?: number;
}

type Ack = { -readonly [K in keyof AcknowledgedBatch]: AcknowledgedBatch[K] };

/**
 * Sends a run's batches with up to `inFlight` requests at once and records the acknowledgements as they
 * come, one write at a time, each with the state of them all (every batch before `upTo`, and those
 * acknowledged out of order after it); acknowledgements that come while a write is on its way go in the next
 * one together. A request's slot is free again once its acknowledgement is recorded, so a run stopped at any
 * point resumes by sending exactly the batches that were in flight, and those not sent yet.
 */
export class CallDelivery {
  readonly #config: CallDeliveryConfig;
  readonly #inFlight: number;
  readonly #running = new Set<Promise<void>>();
  readonly #ahead: Set<number>;
  #upTo: number;
  #pending: Ack | undefined;
  /** Told once the pending acknowledgements are recorded (or failed to be). */
  #recorded: Array<(error?: unknown) => void> = [];
  #writing: Promise<void> | undefined;
  #failure: { readonly error: unknown } | undefined;
  #batches = 0;
  #bytes = 0;
  #total = 0;

  constructor(config: CallDeliveryConfig) {
    this.#config = config;
    this.#inFlight = Math.max(1, config.inFlight ?? 1);
    this.#upTo = config.acknowledged?.upTo ?? 0;
    this.#ahead = new Set(config.acknowledged?.ahead ?? []);
  }

  /**
   * Starts sending a batch (skipped when it was acknowledged before); resolves once it is on its way, after
   * waiting for a free slot. Throws the first failure of any batch.
   */
  async send(batch: PackedBatch): Promise<void> {
    this.#total = Math.max(this.#total, batch.index + 1);
    this.#throwIfFailed();
    if (batch.index < this.#upTo || this.#ahead.has(batch.index)) return;
    while (this.#running.size >= this.#inFlight) {
      await Promise.race(this.#running);
      this.#throwIfFailed();
    }
    const running: Promise<void> = this.#deliver(batch)
      .catch((error: unknown) => {
        this.#failure ??= { error };
      })
      .finally(() => this.#running.delete(running));
    this.#running.add(running);
  }

  /** Waits for every batch sent and its acknowledgement to be recorded; throws the first failure. */
  async finish(): Promise<{ readonly batches: number; readonly bytes: number; readonly total: number }> {
    await this.settle();
    this.#throwIfFailed();
    return { batches: this.#batches, bytes: this.#bytes, total: this.#total };
  }

  /** Waits for the requests in flight and the records of what was acknowledged, whatever they end in. */
  async settle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running);
    while (this.#writing !== undefined) await this.#writing;
  }

  async #deliver(batch: PackedBatch): Promise<void> {
    await this.#config.sender.send(batch.payload, batch.index);
    this.#ahead.add(batch.index);
    while (this.#ahead.delete(this.#upTo)) this.#upTo++;
    this.#batches++;
    this.#bytes += batch.bytes;
    const ids = this.#config.recordIds ? packedMessageIds(batch.payload) : undefined;
    const pending = this.#pending;
    this.#pending = {
      index: batch.index,
      calls: (pending?.calls ?? 0) + batch.calls,
      bytes: (pending?.bytes ?? 0) + batch.bytes,
      upTo: this.#upTo,
      ahead: [...this.#ahead].sort((a, b) => a - b),
      ...(ids === undefined ? {} : { messageIds: [...(pending?.messageIds ?? []), ...ids] }),
    };
    // the slot stays taken until the acknowledgement is recorded: a run stopped at any point sends again
    // only what was in flight
    const recorded = new Promise<void>((resolve, reject) =>
      this.#recorded.push((error) => (error === undefined ? resolve() : reject(error))),
    );
    this.#writing ??= this.#write();
    await recorded;
  }

  /** Writes the pending acknowledgements until none is left. */
  async #write(): Promise<void> {
    try {
      while (this.#pending !== undefined) {
        const ack = this.#pending;
        const waiting = this.#recorded;
        this.#pending = undefined;
        this.#recorded = [];
        await this.#config.progress
          .acknowledged(this.#config.runId, ack)
          .then(
            () => {
              for (const done of waiting) done();
            },
            (error: unknown) => {
              for (const done of waiting) done(error);
              throw error;
            },
          )
          .catch((error: unknown) => {
            throw new WharfError(
              `cannot record that batch ${ack.index} of run ${this.#config.runId} was delivered: ${(error as Error).message}`,
              {
                kind: classifyPgError(error),
                cause: error,
                hint: 'check the control database; the batch is sent again when the run is taken up',
              },
            );
          });
      }
    } catch (error) {
      this.#failure ??= { error };
    } finally {
      this.#writing = undefined;
    }
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }
}
