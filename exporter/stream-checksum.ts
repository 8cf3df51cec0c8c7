import type { Stream } from '../catalog/types.js';
import type { CopyRecord } from './writers/file-format.js';

/**
 * An order-independent checksum of a stream's `(primary key, updated_at)` pairs: two 32-bit
 * FNV-1a-style hashes per pair, summed modulo 2^32, plus the count. The same rows in any order give
 * the same checksum; it is cheap enough to compute on every exported row.
 */
export class StreamChecksum {
  readonly #keyIndex: number;
  readonly #changeIndex: number;
  readonly #head: number;
  #a = 0;
  #b = 0;
  #count = 0;

  /** A checksum of `stream`'s records, whose fields are in the stream's column order. */
  constructor(stream: Stream) {
    this.#keyIndex = stream.columns.findIndex((c) => c.name === stream.primaryKey[0]);
    this.#changeIndex = stream.columns.findIndex((c) => c.name === stream.changeColumn);
    this.#head = Math.max(this.#keyIndex, this.#changeIndex) + 1;
  }

  /** Adds one COPY record (only its leading fields are decoded). */
  addRecord(record: CopyRecord): void {
    const head = record.head(this.#head);
    this.add(head[this.#keyIndex] ?? '', head[this.#changeIndex] ?? '');
  }

  add(key: string, changedAt: string): void {
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193;
    const text = `${key}\u001f${changedAt}`;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
    }
    this.#a = (this.#a + (h1 >>> 0)) >>> 0;
    this.#b = (this.#b + (h2 >>> 0)) >>> 0;
    this.#count++;
  }

  get count(): number {
    return this.#count;
  }

  /** `<count>:<hex a><hex b>` */
  toString(): string {
    return `${this.#count}:${this.#a.toString(16).padStart(8, '0')}${this.#b.toString(16).padStart(8, '0')}`;
  }
}
