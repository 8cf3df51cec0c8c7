import { CALL_HEAD_BYTES, writeCall } from './row-to-call.js';

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

/** A batch ready for the wire: its calls' JSON, one per line, as UTF-8 bytes (encoded once, sent as is). */
export interface PackedBatch {
  /** From 0, in the run's order of calls. */
  readonly index: number;
  readonly calls: number;
  /** The request body's size in bytes, `sentAt` included. */
  readonly bytes: number;
  /** The calls' JSON with `\n` between them: what a call file holds, less its last newline. */
  readonly payload: Buffer;
}

/** A batch's calls encoded once (see `PackedBatch`). */
export function packBatch(batch: CallBatch): PackedBatch {
  return {
    index: batch.index,
    calls: batch.lines.length,
    bytes: batch.bytes,
    payload: Buffer.from(batch.lines.join('\n')),
  };
}

const BODY_START = Buffer.from('{"batch":[');
const NEWLINE = 10;
const COMMA = 44;

/** Room past the batch limit, for the call that closes a batch (a call is at most 32 KB; 3 bytes per UTF-16 unit). */
const SLACK_BYTES = 128 * 1024;

/**
 * Cuts calls into packed batches the way `BatchCutter` does (the same calls make the same batches), writing each
 * call's UTF-8 once, straight into the batch's buffer: no array of lines, no join, no second encoding. A call
 * that does not fit closes the batch and moves (one copy) to the next. Indices go on from `firstIndex`.
 */
export class BatchPacker {
  readonly #maxBytes: number;
  readonly #maxCalls: number;
  readonly #capacity: number;
  #index: number;
  #buffer: Buffer;
  #used = 0;
  #calls = 0;
  #bytes = BODY_OVERHEAD;

  constructor(limits: BatchLimits = {}, firstIndex = 0) {
    this.#maxBytes = limits.maxBytes ?? MAX_BATCH_BYTES;
    this.#maxCalls = limits.maxCalls ?? Number.POSITIVE_INFINITY;
    this.#capacity = Math.min(this.#maxBytes, 1024 * 1024) + SLACK_BYTES;
    this.#index = firstIndex;
    this.#buffer = Buffer.allocUnsafe(this.#capacity);
  }

  /** Adds a call's line (as written in a call file); returns the batch it closed, if it closed one. */
  add(line: string): PackedBatch | undefined {
    const at = this.#reserve(line.length * 3);
    return this.#commit(at, this.#buffer.write(line, at, 'utf8'));
  }

  /**
   * Adds a call from its body and the mapper's seed (`CallMapper.mapBody`, `CallMapper.seed`): written with its
   * messageId by `writeCall`, the same bytes as `add` of `map`'s line. Returns the batch it closed, if any.
   */
  addCall(seed: Buffer, body: string): PackedBatch | undefined {
    const at = this.#reserve(CALL_HEAD_BYTES + body.length * 3);
    return this.#commit(at, writeCall(this.#buffer, at, seed, body));
  }

  /** The batch being filled, if it has calls; the next call starts a new one. */
  flush(): PackedBatch | undefined {
    if (this.#calls === 0) return undefined;
    const batch: PackedBatch = {
      index: this.#index++,
      calls: this.#calls,
      bytes: this.#bytes,
      payload: this.#buffer.subarray(0, this.#used),
    };
    this.#buffer = Buffer.allocUnsafe(this.#capacity);
    this.#used = 0;
    this.#calls = 0;
    this.#bytes = BODY_OVERHEAD;
    return batch;
  }

  /** Where the next call goes (after its separator), with room for `most` bytes. */
  #reserve(most: number): number {
    const at = this.#used + (this.#calls > 0 ? 1 : 0);
    if (at + most > this.#buffer.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, at + most));
      this.#buffer.copy(bigger, 0, 0, this.#used);
      this.#buffer = bigger;
    }
    return at;
  }

  /** Takes the `size` bytes written at `at` into the batch, or into the next one when they do not fit. */
  #commit(at: number, size: number): PackedBatch | undefined {
    if (this.#calls > 0 && (this.#bytes + 1 + size > this.#maxBytes || this.#calls >= this.#maxCalls)) {
      const written = this.#buffer;
      const closed = this.flush();
      if (size > this.#buffer.length) this.#buffer = Buffer.allocUnsafe(size + SLACK_BYTES);
      written.copy(this.#buffer, 0, at, at + size);
      this.#used = size;
      this.#calls = 1;
      this.#bytes = BODY_OVERHEAD + size;
      return closed;
    }
    if (this.#calls > 0) this.#buffer[this.#used] = NEWLINE;
    this.#used = at + size;
    this.#bytes += size + (this.#calls > 0 ? 1 : 0);
    this.#calls++;
    return undefined;
  }
}

/**
 * The request body of a packed batch, `{"batch":[…],"sentAt":"…"}`: the payload copied once, its newlines made
 * commas (JSON text holds no raw newline, so each is a separator). The same bytes as `batchBody` of its lines.
 */
export function packedBody(payload: Buffer, sentAt: Date): Buffer {
  const end = Buffer.from(`],"sentAt":"${sentAt.toISOString()}"}`);
  const body = Buffer.allocUnsafe(BODY_START.length + payload.length + end.length);
  BODY_START.copy(body, 0);
  payload.copy(body, BODY_START.length);
  end.copy(body, BODY_START.length + payload.length);
  const stop = BODY_START.length + payload.length;
  for (
    let at = body.indexOf(NEWLINE, BODY_START.length);
    at >= 0 && at < stop;
    at = body.indexOf(NEWLINE, at + 1)
  ) {
    body[at] = COMMA;
  }
  return body;
}

/** The messageIds of a packed batch's calls, in order (each line starts with `{"messageId":"`). */
export function packedMessageIds(payload: Buffer): string[] {
  const ids: string[] = [];
  const prefix = '{"messageId":"'.length;
  for (let start = 0; start < payload.length; ) {
    const end = payload.indexOf('"', start + prefix);
    ids.push(payload.toString('latin1', start + prefix, end));
    const next = payload.indexOf(NEWLINE, end);
    if (next < 0) break;
    start = next + 1;
  }
  return ids;
}
