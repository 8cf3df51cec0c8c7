import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Stream } from '../../catalog/types.js';
import { WharfError } from '../../core/errors.js';
import { waitForDrain } from '../../staging/drain.js';
import type { CopyRecord, FileFormat, ObjectSink, PartRange, RowSink } from './file-format.js';

/** One part's output: its bytes go on to the object's output, counted and hashed; ending it ends the part only. */
class PartOutput extends Writable {
  readonly #target: Writable;
  readonly #hash = createHash('sha256');
  bytes = 0;

  constructor(target: Writable) {
    super();
    this.#target = target;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#hash.update(chunk);
    this.bytes += chunk.length;
    if (this.#target.write(chunk)) callback();
    else waitForDrain(this.#target).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback();
  }

  sha256(): string {
    return this.#hash.digest('hex');
  }
}

class ConcatenatedParts implements ObjectSink {
  readonly #format: FileFormat;
  readonly #stream: Stream;
  readonly #out: Writable;
  readonly #ranges: PartRange[] = [];
  #part: { readonly sink: RowSink; readonly output: PartOutput } | undefined;
  #offset = 0;

  constructor(format: FileFormat, stream: Stream, out: Writable) {
    this.#format = format;
    this.#stream = stream;
    this.#out = out;
  }

  async beginPart(): Promise<void> {
    await this.#endPart();
    const output = new PartOutput(this.#out);
    this.#part = { sink: this.#format.open(this.#stream, output), output };
  }

  write(record: CopyRecord): undefined | Promise<void> {
    if (this.#part === undefined) throw new WharfError('object part written before beginPart()');
    return this.#part.sink.write(record);
  }

  async end(): Promise<readonly PartRange[]> {
    try {
      await this.#endPart();
      this.#out.end();
      await finished(this.#out, { readable: false });
    } catch (error) {
      this.#out.destroy(error as Error);
      throw error;
    }
    return this.#ranges;
  }

  async #endPart(): Promise<void> {
    const part = this.#part;
    if (part === undefined) return;
    this.#part = undefined;
    await part.sink.end();
    this.#ranges.push({ offset: this.#offset, bytes: part.output.bytes, sha256: part.output.sha256() });
    this.#offset += part.output.bytes;
  }
}

/**
 * An object of any format: each part is a complete file written by `format.open`, and the object is the parts
 * back to back. For gzip formats the object is a multi-member gzip file as well; for parquet it is not a file
 * a parquet reader opens whole: its parts are read by range.
 */
export function concatenatedParts(format: FileFormat, stream: Stream, out: Writable): ObjectSink {
  return new ConcatenatedParts(format, stream, out);
}
