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
 * Cuts a run's calls into request bodies of at most `maxBytes` (and `maxCalls`), greedily and in order:
 * the same calls always make the same batches, so a resumed run can skip the ones already acknowledged.
 */
export async function* callBatches(
  lines: AsyncIterable<string>,
  limits: BatchLimits = {},
): AsyncGenerator<CallBatch> {
  const maxBytes = limits.maxBytes ?? MAX_BATCH_BYTES;
  const maxCalls = limits.maxCalls ?? Number.POSITIVE_INFINITY;
  let index = 0;
  let batch: string[] = [];
  let bytes = BODY_OVERHEAD;
  for await (const line of lines) {
    const size = Buffer.byteLength(line);
    // a comma before every call but the first
    if (batch.length > 0 && (bytes + 1 + size > maxBytes || batch.length >= maxCalls)) {
      yield { index: index++, lines: batch, bytes };
      batch = [];
      bytes = BODY_OVERHEAD;
    }
    bytes += size + (batch.length > 0 ? 1 : 0);
    batch.push(line);
  }
  if (batch.length > 0) yield { index, lines: batch, bytes };
}

/** The request body of a batch: `{"batch":[…],"sentAt":"…"}`, `sentAt` the moment it is sent. */
export function batchBody(lines: readonly string[], sentAt: Date): string {
  return `{"batch":[${lines.join(',')}],"sentAt":"${sentAt.toISOString()}"}`;
}
