import { WharfError } from '../core/errors.js';
import { classifyPgError } from '../db/postgres/errors.js';
import type { BatchSender } from './batch-sender.js';
import type { CallBatch } from './call-batches.js';
import { messageIdOf } from './row-to-call.js';
import type { SyncProgress } from './sync-progress.js';

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

/**
 * Sends a run's batches with up to `inFlight` requests at once and records each acknowledgement as it
 * comes, one write at a time and in the order they came, with the state of them all (every batch before
 * `upTo`, and those acknowledged out of order after it): a run stopped at any point resumes by sending
 * exactly the batches not acknowledged, so only those that were in flight can reach the receiver twice.
 */
export class CallDelivery {
  readonly #config: CallDeliveryConfig;
  readonly #inFlight: number;
  readonly #running = new Set<Promise<void>>();
  readonly #ahead: Set<number>;
  #upTo: number;
  #writes: Promise<void> = Promise.resolve();
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

  /** True once any batch was acknowledged (by this run, or before it was resumed). */
  get anyAcknowledged(): boolean {
    return this.#upTo > 0 || this.#ahead.size > 0;
  }

  /**
   * Starts sending a batch (skipped when it was acknowledged before); resolves once it is on its way, after
   * waiting for a free slot. Throws the first failure of any batch.
   */
  async send(batch: CallBatch): Promise<void> {
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

  /** Waits for the requests in flight and their records, whatever they end in (before a run stops). */
  async settle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running);
    await this.#writes.catch(() => {});
  }

  async #deliver(batch: CallBatch): Promise<void> {
    await this.#config.sender.send(batch.lines, batch.index);
    this.#ahead.add(batch.index);
    while (this.#ahead.delete(this.#upTo)) this.#upTo++;
    const ack = {
      index: batch.index,
      calls: batch.lines.length,
      bytes: batch.bytes,
      upTo: this.#upTo,
      ahead: [...this.#ahead].sort((a, b) => a - b),
      ...(this.#config.recordIds ? { messageIds: batch.lines.map(messageIdOf) } : {}),
    };
    this.#batches++;
    this.#bytes += batch.bytes;
    const write = this.#writes.then(() =>
      this.#config.progress.acknowledged(this.#config.runId, ack).catch((error: unknown) => {
        throw new WharfError(
          `cannot record that batch ${batch.index} of run ${this.#config.runId} was delivered: ${(error as Error).message}`,
          {
            kind: classifyPgError(error),
            cause: error,
            hint: 'check the control database; the batch is sent again when the run is taken up',
          },
        );
      }),
    );
    this.#writes = write.catch(() => {});
    await write;
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }
}
