// The worker thread of `MappingThread` (mapping-thread.ts): maps rows to calls and packs them into batches, off the
// thread that reads the warehouse, stages files and delivers them. Messages in: `{rows, first}` (rows in the order
// read, `first` the 1-based number of the first) and `{end: true}`. Messages out, in order: `batch` (a packed batch,
// its bytes transferred), `mapped` (after each `rows`: the calls and the rejected rows with their reasons) and
// `done` (after `end`, the last batch before it).
import { parentPort, workerData } from 'node:worker_threads';
import { type BatchLimits, BatchPacker, type PackedBatch } from './call-batches.js';
import { CallMapper, type CallType } from './row-to-call.js';
import type { JsonValue, ResultColumn } from './warehouse-rows.js';

/** What the thread is started with. */
export interface MappingWorkerData {
  readonly syncId: string;
  readonly type: CallType;
  readonly columns: readonly ResultColumn[];
  readonly limits: BatchLimits;
}

/** What the thread sends back. */
export type MappingWorkerMessage =
  | {
      readonly kind: 'batch';
      readonly index: number;
      readonly calls: number;
      readonly bytes: number;
      readonly buffer: ArrayBuffer;
      readonly offset: number;
      readonly length: number;
    }
  | {
      readonly kind: 'mapped';
      readonly calls: number;
      readonly rejected: ReadonlyArray<readonly [number, string]>;
    }
  | { readonly kind: 'done' };

const port = parentPort;
if (port !== null) {
  const data = workerData as MappingWorkerData;
  const mapper = new CallMapper(data.syncId, data.type, data.columns);
  const packer = new BatchPacker(data.limits);
  const seed = mapper.seed;
  const send = (batch: PackedBatch): void => {
    // the packer is done with a batch's buffer once it returned it: its bytes move to the other thread
    const { buffer, byteOffset, length } = batch.payload;
    const message: MappingWorkerMessage = {
      kind: 'batch',
      index: batch.index,
      calls: batch.calls,
      bytes: batch.bytes,
      buffer: buffer as ArrayBuffer,
      offset: byteOffset,
      length,
    };
    port.postMessage(message, [buffer as ArrayBuffer]);
  };
  port.on(
    'message',
    (message: { rows: readonly (readonly JsonValue[])[]; first: number } | { end: true }) => {
      if ('end' in message) {
        const last = packer.flush();
        if (last !== undefined) send(last);
        port.postMessage({ kind: 'done' } satisfies MappingWorkerMessage);
        return;
      }
      const rejected: [number, string][] = [];
      let calls = 0;
      let row = message.first;
      for (const values of message.rows) {
        const mapped = mapper.mapBody(values);
        if (!mapped.ok) rejected.push([row, mapped.reason]);
        else {
          calls++;
          const closed = packer.addCall(seed, mapped.body);
          if (closed !== undefined) send(closed);
        }
        row++;
      }
      port.postMessage({ kind: 'mapped', calls, rejected } satisfies MappingWorkerMessage);
    },
  );
}
