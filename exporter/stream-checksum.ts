import type { Stream } from '../catalog/types.js';
import { decodeFields } from './copy-records.js';
import type { CopyRecord } from './writers/file-format.js';

const COMMA = 0x2c;
const QUOTE = 0x22;
const NL = 0x0a;
/** The unit separator between key and change value in the hashed text. */
const SEPARATOR = 0x1f;

/**
 * An order-independent checksum of a stream's `(primary key, updated_at)` pairs: two 32-bit
 * FNV-1a-style hashes per pair, summed modulo 2^32, plus the count. The same rows in any order give
 * the same checksum; it is cheap enough to compute on every exported row.
 */
export class StreamChecksum {
  readonly #keyIndex: number;
  readonly #changeIndex: number;
  readonly #head: number;
  /** Field start and end offsets of the record being hashed (reused). */
  readonly #starts: Int32Array;
  readonly #ends: Int32Array;
  #a = 0;
  #b = 0;
  #count = 0;

  /** A checksum of `stream`'s records, whose fields are in the stream's column order. */
  constructor(stream: Stream) {
    this.#keyIndex = stream.columns.findIndex((c) => c.name === stream.primaryKey[0]);
    this.#changeIndex = stream.columns.findIndex((c) => c.name === stream.changeColumn);
    this.#head = Math.max(this.#keyIndex, this.#changeIndex) + 1;
    this.#starts = new Int32Array(this.#head);
    this.#ends = new Int32Array(this.#head);
  }

  /**
   * Adds one COPY record. The usual record (leading fields unquoted and ASCII: ids, uuids, timestamps) is
   * hashed from its bytes, which gives the same sums as hashing the decoded text; any other is decoded.
   */
  addRecord(record: CopyRecord): void {
    this.addRange(record.raw, 0, record.raw.length);
  }

  /** Adds the record at `bytes[start, end)` (it ends with its `\n`). */
  addRange(bytes: Buffer, start: number, end: number): void {
    if (!this.#addAscii(bytes, start, end)) {
      const head = decodeFields(bytes.subarray(start, end), this.#head);
      this.add(head[this.#keyIndex] ?? '', head[this.#changeIndex] ?? '');
    }
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

  /** Hashes key and change value straight from `raw`; false (nothing added) when a field needs decoding. */
  #addAscii(raw: Buffer, from: number, to: number): boolean {
    const starts = this.#starts;
    const ends = this.#ends;
    let p = from;
    for (let f = 0; f < this.#head; f++) {
      if (raw[p] === QUOTE) return false;
      let end = raw.indexOf(COMMA, p);
      if (end < 0 || end >= to) {
        end = to - 1; // the final '\n'
        if (f < this.#head - 1 || raw[end] !== NL) return false;
      }
      starts[f] = p;
      ends[f] = end;
      p = end + 1;
    }
    const ks = starts[this.#keyIndex]!;
    const ke = ends[this.#keyIndex]!;
    const cs = starts[this.#changeIndex]!;
    const ce = ends[this.#changeIndex]!;
    for (let i = ks; i < ke; i++) if (raw[i]! >= 0x80) return false;
    for (let i = cs; i < ce; i++) if (raw[i]! >= 0x80) return false;
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193;
    for (let i = ks; i < ke; i++) {
      const c = raw[i]!;
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
    }
    h1 = Math.imul(h1 ^ SEPARATOR, 0x01000193);
    h2 = Math.imul(h2 ^ SEPARATOR, 0x5bd1e995) ^ (h2 >>> 15);
    for (let i = cs; i < ce; i++) {
      const c = raw[i]!;
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
    }
    this.#a = (this.#a + (h1 >>> 0)) >>> 0;
    this.#b = (this.#b + (h2 >>> 0)) >>> 0;
    this.#count++;
    return true;
  }

  get count(): number {
    return this.#count;
  }

  /** `<count>:<hex a><hex b>` */
  toString(): string {
    return `${this.#count}:${this.#a.toString(16).padStart(8, '0')}${this.#b.toString(16).padStart(8, '0')}`;
  }
}
