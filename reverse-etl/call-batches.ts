/** The most bytes one request body may have (the Segment HTTP API allows 500 KB; decimal KB, to be safe). */
export const MAX_BATCH_BYTES = 500_000;

/** `{"batch":[` + `],"sentAt":"` + 24 characters of ISO-8601 + `"}`. */
const BODY_OVERHEAD = '{"batch":['.length + '],"sentAt":"'.length + 24 + '"}'.length;

/** Calls that go out in one request. */
export interface CallBatch {
  /** From 0, in the run's order of calls. */
  readonly index: number;
  /** Each call's JSON (as written in the run's files). */
  readonly lines: readonly string[];
  /** The request body's size in bytes, `sentAt` included. */
  readonly bytes: number;
}

export interface BatchLimits {
  /** Default `MAX_BATCH_BYTES`. */
  readonly maxBytes?: number;
  /** Default no limit (size only). */
  readonly maxCalls?: number;
}

/**
 * Cuts calls into request bodies of at most `maxBytes` (and `maxCalls`), greedily and in order, one call at
 * a time: the same calls always make the same batches, so a resumed run can skip the ones already
 * acknowledged. Indices go on from `firstIndex`.
 */
export class BatchCutter {
  readonly #maxBytes: number;
  readonly #maxCalls: number;
  #index: number;
  #lines: string[] = [];
  #bytes = BODY_OVERHEAD;

  constructor(limits: BatchLimits = {}, firstIndex = 0) {
    this.#maxBytes = limits.maxBytes ?? MAX_BATCH_BYTES;
    this.#maxCalls = limits.maxCalls ?? Number.POSITIVE_INFINITY;
    this.#index = firstIndex;
  }

  /** Adds a call; returns the batch it closed, if it closed one (the call starts the next batch). */
  add(line: string): CallBatch | undefined {
    const size = Buffer.byteLength(line);
    let closed: CallBatch | undefined;
    // a comma before every call but the first
    if (
      this.#lines.length > 0 &&
      (this.#bytes + 1 + size > this.#maxBytes || this.#lines.length >= this.#maxCalls)
    ) {
      closed = this.flush();
    }
    this.#bytes += size + (this.#lines.length > 0 ? 1 : 0);
    this.#lines.push(line);
    return closed;
  }

  /** The batch being filled, if it has calls; the next call starts a new one. */
  flush(): CallBatch | undefined {
    if (this.#lines.length === 0) return undefined;
    const batch = { index: this.#index++, lines: this.#lines, bytes: this.#bytes };
    this.#lines = [];
    this.#bytes = BODY_OVERHEAD;
    return batch;
  }
}

/** Cuts a run's calls into batches (see `BatchCutter`). */
export async function* callBatches(
  lines: AsyncIterable<string>,
  limits: BatchLimits = {},
  firstIndex = 0,
): AsyncGenerator<CallBatch> {
  const cutter = new BatchCutter(limits, firstIndex);
  for await (const line of lines) {
    const batch = cutter.add(line);
    if (batch !== undefined) yield batch;
  }
  const last = cutter.flush();
  if (last !== undefined) yield last;
}

/** The request body of a batch: `{"batch":[…],"sentAt":"…"}`, `sentAt` the moment it is sent. */
export function batchBody(lines: readonly string[], sentAt: Date): string {
  return `{"batch":[${lines.join(',')}],"sentAt":"${sentAt.toISOString()}"}`;
}
