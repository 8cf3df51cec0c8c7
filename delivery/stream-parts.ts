import { createGunzip } from 'node:zlib';
import type { Stream } from '../catalog/types.js';
import { type ErrorContext, IntegrityError, withContext } from '../core/errors.js';
import { AccountReader, CsvRecord, readCopyBatches } from '../exporter/copy-records.js';
import { csvField } from '../exporter/writers/csv-gz-format.js';
import type { FileFormat, FormatName, RowSink } from '../exporter/writers/file-format.js';
import { waitForDrain } from '../staging/drain.js';
import type { StagedPart } from '../staging/staged-part.js';
import type { BucketClient, ObjectWriter } from './bucket-client.js';
import type { DeliveryTarget } from './deliver.js';
import { DELIVERY_CONTENT_TYPES, type DeliveredFile, deliveryObjectKey } from './delivery-layout.js';
import type { PendingObjects } from './pending-objects.js';

/**
 * How one stream's rows of a delivery become objects: a staged csv.gz file copied as it is, or the rows of its
 * staged files streamed through the format's writer into parts cut every so many rows.
 */

/** The rows of one stream, at one schema version, in the delivery's windows. */
export interface StreamGroup {
  readonly stream: Stream;
  readonly version: number;
  readonly parts: StagedPart[];
}

/** An object of the delivery, once stored. */
export interface WrittenPart {
  readonly file: DeliveredFile;
  /** It was already there with these bytes. */
  readonly existing: boolean;
}

/** Where a group's objects go and how they are written. */
export interface PartContext {
  readonly bucket: BucketClient;
  readonly target: DeliveryTarget;
  /** The format's writer, reading staged text. */
  readonly format: FileFormat;
  readonly deliveryId: string;
  /** Objects still being stored. */
  readonly objects: PendingObjects<WrittenPart>;
}

/** Uploads a staged csv.gz file as it is (its sha256 is checked as it streams). */
export async function copyStagedFile(
  parts: PartContext,
  group: StreamGroup,
  staged: StagedPart,
): Promise<void> {
  const { bucket, target, deliveryId, objects } = parts;
  const key = deliveryObjectKey(bucket.prefix, group.stream.name, group.version, deliveryId, 0, 'csv');
  const context = { connector: target.connectorId, stream: group.stream.name, key };
  let writer: ObjectWriter | undefined;
  try {
    writer = await bucket.createObject(key, DELIVERY_CONTENT_TYPES.csv);
    const out = writer.out;
    for await (const chunk of await staged.open()) {
      if (!out.write(chunk)) await waitForDrain(out);
    }
    out.end();
  } catch (error) {
    writer?.abort(error as Error);
    throw withContext(error, context);
  }
  await objects.add(storedPart(writer, group, staged.rows, 'csv', context));
}

/** The object `writer` is storing, as the manifest will list it. */
function storedPart(
  writer: ObjectWriter,
  group: StreamGroup,
  rows: number,
  format: FormatName,
  context: ErrorContext,
): Promise<WrittenPart> {
  return writer.done().then(
    (result) => ({
      file: {
        key: result.key,
        stream: group.stream.name,
        rows,
        bytes: result.bytes,
        sha256: result.sha256,
        format,
        schema_version: group.version,
      },
      existing: result.outcome === 'existing',
    }),
    (error: unknown) => {
      throw withContext(error, context);
    },
  );
}

/** The objects of one group, cut every `perPart` rows; fed the staged parts in order. */
export class PartSequence {
  /** Rows fed so far (header lines excluded). */
  rows = 0;
  /** The key of the part being written. */
  key: string | undefined;
  readonly #context: PartContext;
  readonly #group: StreamGroup;
  readonly #perPart: number;
  readonly #header: Buffer;
  #writer: ObjectWriter | undefined;
  #sink: RowSink | undefined;
  #partRows = 0;
  /** Parts opened so far. */
  #parts = 0;

  constructor(context: PartContext, group: StreamGroup, perPart: number) {
    this.#context = context;
    this.#group = group;
    this.#perPart = perPart;
    this.#header = Buffer.from(`${group.stream.columns.map((c) => csvField(c.name)).join(',')}\n`);
  }

  /** Reads one staged part's rows into the parts. */
  async feed(staged: StagedPart): Promise<void> {
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    const source = await staged.open();
    // a failed read (a sha256 mismatch at the end) fails the rows read from it
    source.once('error', (error) => gunzip.destroy(error));
    source.pipe(gunzip);
    try {
      await this.#feedRows(staged, gunzip);
    } finally {
      source.destroy();
    }
  }

  async #feedRows(staged: StagedPart, gunzip: AsyncIterable<Buffer>): Promise<void> {
    const account = this.#context.target.account;
    const accounts = new AccountReader();
    let header = true;
    let rows = 0;
    for await (const batch of readCopyBatches(gunzip)) {
      const { bytes, ends, count } = batch;
      let s = batch.start;
      let i = 0;
      if (header) {
        const e = ends[0]!;
        if (!bytes.subarray(s, e).equals(this.#header)) {
          throw new IntegrityError(`staged file ${staged.key} does not start with the stream's header line`, {
            context: { key: staged.key },
          });
        }
        header = false;
        s = e;
        i = 1;
      }
      let run = s;
      for (; i < count; i++) {
        const e = ends[i]!;
        if (accounts.read(bytes, s, e) !== account) {
          throw new IntegrityError(`staged file ${staged.key} holds a row of another account`, {
            context: { key: staged.key, account },
          });
        }
        if (this.#sink === undefined) await this.#open();
        const sink = this.#sink!;
        if (sink.writeRange === undefined) {
          const wait = sink.write(new CsvRecord(bytes.subarray(s, e), account));
          if (wait) await wait;
          run = e;
        }
        s = e;
        rows++;
        if (++this.#partRows >= this.#perPart) {
          if (sink.writeRange !== undefined && run < s) {
            const wait = sink.writeRange(bytes, run, s);
            if (wait) await wait;
          }
          run = s;
          await this.close();
        }
      }
      if (this.#sink?.writeRange !== undefined && run < s) {
        const wait = this.#sink.writeRange(bytes, run, s);
        if (wait) await wait;
      }
    }
    if (rows !== staged.rows) {
      throw new IntegrityError(
        `staged file ${staged.key} holds ${rows} rows, its manifest says ${staged.rows}`,
        {
          context: { key: staged.key },
        },
      );
    }
    this.rows += rows;
  }

  /** Ends the part being written (if any) and records it. */
  async close(): Promise<void> {
    const sink = this.#sink;
    const writer = this.#writer;
    if (sink === undefined || writer === undefined) return;
    // still the current part while it ends: a failure there aborts its upload
    await sink.end();
    this.#sink = undefined;
    this.#writer = undefined;
    const { connectorId, format } = this.#context.target;
    const context = {
      connector: connectorId,
      stream: this.#group.stream.name,
      ...(this.key ? { key: this.key } : {}),
    };
    const storing = storedPart(writer, this.#group, this.#partRows, format, context);
    this.#partRows = 0;
    this.key = undefined;
    await this.#context.objects.add(storing);
  }

  /** Gives up the part being written. */
  abort(error: Error): void {
    this.#writer?.abort(error);
    this.#writer = undefined;
    this.#sink = undefined;
  }

  async #open(): Promise<void> {
    const { bucket, target, deliveryId } = this.#context;
    const key = deliveryObjectKey(
      bucket.prefix,
      this.#group.stream.name,
      this.#group.version,
      deliveryId,
      this.#parts++,
      target.format,
    );
    this.key = key;
    this.#writer = await bucket.createObject(key, DELIVERY_CONTENT_TYPES[target.format]);
    this.#sink = this.#context.format.open(this.#group.stream, this.#writer.out);
    this.#partRows = 0;
  }
}
