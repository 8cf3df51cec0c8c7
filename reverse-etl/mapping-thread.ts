import { Worker } from 'node:worker_threads';
import type { BatchLimits, PackedBatch } from './call-batches.js';
import type { MappingWorkerData, MappingWorkerMessage } from './mapping-worker.js';
import type { CallType } from './row-to-call.js';
import type { JsonValue, ResultColumn } from './warehouse-rows.js';

/** Row batches handed to the thread and not yet mapped, at most: memory stays flat, the thread never waits. */
const ROWS_AHEAD = 2;

/** The worker's young generation: small, its garbage dies young (a call's strings live until it is packed). */
const LIMITS = { maxYoungGenerationSizeMb: 8 };

export interface MappingThreadConfig {
  readonly syncId: string;
  readonly type: CallType;
  /** The result's columns (a `CallMapper` of them was built already: they are known to map). */
  readonly columns: readonly ResultColumn[];
  readonly limits: BatchLimits;
  /** Each packed batch, in order; the next waits for the promise it returns. */
  readonly onBatch: (batch: PackedBatch) => undefined | Promise<void>;
  /** Each rejected row (1-based, in the order read) with its reason, in order. */
  readonly onRejected: (row: number, reason: string) => void;
}

/**
 * Maps rows to calls and packs them into batches on a worker thread (`mapping-worker.ts`), so that the thread that
 * reads the warehouse (and stages and delivers) uses one core and the mapping, messageIds and encoding another.
 * The same `CallMapper` and `BatchPacker` as on one thread: the same calls, batches and bytes. Batches come back
 * in order, their bytes moved (not copied), to `onBatch`; `map` waits while the thread has `ROWS_AHEAD` row
 * batches to do, and the thread's batches wait for `onBatch`, so memory is bounded by a few batches.
 */
export class MappingThread {
  readonly #config: MappingThreadConfig;
  readonly #worker: Worker;
  readonly #inbox: MappingWorkerMessage[] = [];
  readonly #consumed: Promise<void>;
  #wake: (() => void) | undefined;
  #credit: (() => void) | undefined;
  #failure: { readonly error: unknown } | undefined;
  #ahead = 0;
  #calls = 0;
  #done = false;

  constructor(config: MappingThreadConfig) {
    this.#config = config;
    const data: MappingWorkerData = {
      syncId: config.syncId,
      type: config.type,
      columns: config.columns,
      limits: config.limits,
    };
    this.#worker = startWorker(data);
    this.#worker.on('message', (message: MappingWorkerMessage) => {
      this.#inbox.push(message);
      this.#signal();
    });
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', (code) => {
      if (!this.#done) this.#fail(new Error(`the mapping thread stopped (exit code ${code})`));
    });
    this.#consumed = this.#consume();
  }

  /** Hands rows over (`first`: the 1-based number of the first); waits while the thread is `ROWS_AHEAD` behind. */
  async map(rows: ReadonlyArray<readonly JsonValue[]>, first: number): Promise<void> {
    this.#throwIfFailed();
    this.#ahead++;
    this.#worker.postMessage({ rows, first });
    while (this.#ahead >= ROWS_AHEAD && this.#failure === undefined) {
      await new Promise<void>((resolve) => {
        this.#credit = resolve;
      });
    }
    this.#throwIfFailed();
  }

  /** Once every row is handed over: waits for the last batch to be taken; resolves with the calls mapped. */
  async finish(): Promise<number> {
    this.#throwIfFailed();
    this.#worker.postMessage({ end: true });
    await this.#consumed;
    this.#throwIfFailed();
    return this.#calls;
  }

  /** Stops the thread (at once, whatever it was doing). */
  async close(): Promise<void> {
    this.#done = true;
    await this.#worker.terminate();
  }

  async #consume(): Promise<void> {
    for (;;) {
      while (this.#inbox.length === 0) {
        if (this.#failure !== undefined) return;
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
      const message = this.#inbox.shift()!;
      try {
        if (message.kind === 'batch') {
          const wait = this.#config.onBatch({
            index: message.index,
            calls: message.calls,
            bytes: message.bytes,
            payload: Buffer.from(message.buffer, message.offset, message.length),
          });
          if (wait) await wait;
        } else if (message.kind === 'mapped') {
          for (const [row, reason] of message.rejected) this.#config.onRejected(row, reason);
          this.#calls += message.calls;
          this.#ahead--;
          this.#credit?.();
        } else {
          this.#done = true;
          return;
        }
      } catch (error) {
        this.#fail(error);
        return;
      }
    }
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #fail(error: unknown): void {
    this.#failure ??= { error };
    this.#signal();
    this.#credit?.();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }
}

/**
 * The worker, from the compiled JavaScript beside this file, or from the TypeScript source through tsx (when
 * Wharf runs from its sources: tests, benchmarks, `wharf` before `npm run build`).
 */
function startWorker(data: MappingWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./mapping-worker.js', import.meta.url), {
      workerData: data,
      resourceLimits: LIMITS,
    });
  }
  const source = new URL('./mapping-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(
    `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); })`,
    { eval: true, workerData: data, resourceLimits: LIMITS },
  );
}
