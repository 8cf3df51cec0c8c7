import { createHash, type Hash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { WharfError } from '../../core/errors.js';
import { waitForDrain } from '../../staging/drain.js';

/** Where one member lies in the output, and the sha256 of its bytes. */
export interface MemberRange {
  readonly offset: number;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * A member's input is handed to deflate in pieces of at most this many bytes, cut at the same places whatever
 * the writes it came in (so the same rows give the same bytes); every piece ends with a full flush.
 */
const PIECE_BYTES = 1024 * 1024;
/** Pieces are cut out of arenas of this size (small members share one; no allocation per member). */
const ARENA_BYTES = 2 * PIECE_BYTES;
/** Text is gathered up to this many characters before it is turned into bytes. */
const TEXT_CHARS = 64 * 1024;
/**
 * Small output (headers, trailers, the deflate bytes of small members) is gathered up to this many bytes before it
 * is written: thousands of small members would otherwise be three writes each.
 */
const OUT_BYTES = 128 * 1024;

/** gzip member header: deflate, no name or time (so the bytes depend on the rows only), XFL fastest, OS unix. */
const MEMBER_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x04, 0x03]);
/** An empty final fixed-Huffman block: ends the deflate stream of a member after its last full flush. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

const crc32: (data: Uint8Array, value?: number) => number =
  (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32 ?? crc32Js;

/** A member's end: where its deflate bytes stop (in the deflate output), with its trailer values. */
interface Boundary {
  readonly position: number;
  readonly crc: number;
  readonly size: number;
}

/**
 * Writes consecutive gzip members (RFC 1952) into one output, one per `begin()`, through a single deflate
 * stream (level 1, in the thread pool) instead of one gzip stream per member: each member's input ends with a
 * full flush, which resets the compressor, so the deflate bytes between two flushes decode on their own; the
 * writer frames them as a member (header, those bytes, an empty final block, CRC-32 and size). The output is a
 * valid multi-member gzip file, and every member's byte range is a valid gzip file too.
 *
 * @example
 * const members = new GzipMembers(out);
 * members.begin(); members.writeText('id\n1\n'); members.begin(); members.writeText('id\n2\n');
 * const ranges = await members.end(); // [{ offset: 0, bytes: 33, sha256 }, { offset: 33, … }]
 */
export class GzipMembers {
  readonly #out: Writable;
  readonly #deflate: zlib.DeflateRaw;
  readonly #ranges: MemberRange[] = [];
  readonly #boundaries: Boundary[] = [];
  #arena = Buffer.allocUnsafe(ARENA_BYTES);
  /** Input of the open member not yet handed to deflate: `#arena[#start, #used)`. */
  #start = 0;
  #used = 0;
  #text = '';
  #open = false;
  #crc = 0;
  #size = 0;
  /** Deflate output seen so far, and output bytes written (members framed). */
  #deflated = 0;
  #written = 0;
  /** Output side: the member being framed. */
  #memberOffset = 0;
  #memberHash: Hash | undefined;
  #waitingForOut = false;
  #error: Error | undefined;
  /** Output gathered and not yet written: `#gathered[0, #gatheredBytes)`. */
  #gathered = Buffer.allocUnsafe(OUT_BYTES);
  #gatheredBytes = 0;

  constructor(out: Writable) {
    this.#out = out;
    const options: zlib.ZlibOptions & { highWaterMark: number } = {
      level: 1,
      flush: zlib.constants.Z_FULL_FLUSH,
      // the end adds nothing: every piece ends with a full flush already
      finishFlush: zlib.constants.Z_FULL_FLUSH,
      chunkSize: 256 * 1024,
      // room for a piece being compressed and the next one, while the writer fills a third
      highWaterMark: 2 * PIECE_BYTES,
    };
    this.#deflate = zlib.createDeflateRaw(options);
    this.#deflate.on('data', (chunk: Buffer) => this.#frame(chunk));
    this.#deflate.on('error', (error) => this.#fail(error));
    out.on('error', (error) => this.#fail(error));
  }

  /** Ends the open member, if any, and starts the next. */
  begin(): undefined | Promise<void> {
    const wait = this.#open ? this.#endMember() : undefined;
    this.#open = true;
    this.#crc = 0;
    this.#size = 0;
    return wait;
  }

  /** Adds bytes to the open member. */
  writeBytes(bytes: Buffer): undefined | Promise<void> {
    if (!this.#open) throw new WharfError('gzip member written before begin()');
    if (this.#text.length > 0) this.#textToBytes();
    let wait: Promise<void> | undefined;
    let p = 0;
    while (p < bytes.length) {
      if (this.#used - this.#start === PIECE_BYTES) wait = this.#submit(false) ?? wait;
      const n = Math.min(PIECE_BYTES - (this.#used - this.#start), bytes.length - p);
      if (this.#used + n > this.#arena.length) this.#newArena();
      bytes.copy(this.#arena, this.#used, p, p + n);
      this.#used += n;
      p += n;
    }
    this.#crc = crc32(bytes, this.#crc);
    this.#size += bytes.length;
    return wait;
  }

  /** Adds text (UTF-8) to the open member. */
  writeText(text: string): undefined | Promise<void> {
    if (!this.#open) throw new WharfError('gzip member written before begin()');
    this.#text += text;
    return this.#text.length < TEXT_CHARS ? undefined : this.#textToBytes();
  }

  /** Ends the last member and the output; resolves to every member's range, in order, once all is written. */
  async end(): Promise<readonly MemberRange[]> {
    try {
      if (this.#open) await this.#endMember();
      this.#open = false;
      this.#deflate.end();
      await finished(this.#deflate);
      if (this.#error) throw this.#error;
      if (this.#boundaries.length > 0 || this.#memberHash !== undefined) {
        throw new WharfError('gzip members: deflate output ended inside a member');
      }
      this.#writeGathered();
      this.#out.end();
      await finished(this.#out, { readable: false });
    } catch (error) {
      this.#deflate.destroy();
      this.#out.destroy(error as Error);
      throw error;
    }
    return this.#ranges;
  }

  #textToBytes(): undefined | Promise<void> {
    const bytes = Buffer.from(this.#text, 'utf8');
    this.#text = '';
    return this.writeBytes(bytes);
  }

  #endMember(): undefined | Promise<void> {
    if (this.#text.length > 0) this.#textToBytes();
    return this.#submit(true);
  }

  /** Moves the open member's pending input to a fresh arena (pieces handed to deflate keep the old one). */
  #newArena(): void {
    const arena = Buffer.allocUnsafe(ARENA_BYTES);
    this.#arena.copy(arena, 0, this.#start, this.#used);
    this.#used -= this.#start;
    this.#start = 0;
    this.#arena = arena;
  }

  /** Hands the pending input to deflate (a full flush ends it); `last` marks the end of the member. */
  #submit(last: boolean): undefined | Promise<void> {
    if (this.#error) throw this.#error;
    const piece = this.#arena.subarray(this.#start, this.#used);
    this.#start = this.#used;
    if (this.#arena.length - this.#used < PIECE_BYTES) {
      this.#arena = Buffer.allocUnsafe(ARENA_BYTES);
      this.#start = this.#used = 0;
    }
    const crc = this.#crc;
    const size = this.#size;
    const ok = this.#deflate.write(piece, (error) => {
      if (error || !last) return;
      // All output of this piece has been pushed by now, and none of the next: deflate takes the next piece
      // only after this callback. What it pushed was either framed already or waits in its buffer.
      this.#boundaries.push({ position: this.#deflated + this.#deflate.readableLength, crc, size });
      this.#closeReachedMembers();
    });
    return ok ? undefined : waitForDrain(this.#deflate);
  }

  /** Frames deflate output: a header before a member's first bytes, a trailer where its bytes end. */
  #frame(chunk: Buffer): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.#memberHash === undefined) this.#openMember();
      const boundary = this.#boundaries[0];
      const stop =
        boundary === undefined
          ? chunk.length
          : Math.min(chunk.length, p + boundary.position - this.#deflated);
      const piece = chunk.subarray(p, stop);
      this.#emit(piece);
      this.#deflated += piece.length;
      p = stop;
      this.#closeReachedMembers();
    }
  }

  #openMember(): void {
    this.#memberOffset = this.#written;
    this.#memberHash = createHash('sha256');
    this.#emit(MEMBER_HEADER);
  }

  /** Writes the trailer of every member whose deflate bytes are all out. */
  #closeReachedMembers(): void {
    while (this.#boundaries.length > 0 && this.#boundaries[0]!.position === this.#deflated) {
      const boundary = this.#boundaries.shift()!;
      if (this.#memberHash === undefined) this.#openMember();
      const trailer = Buffer.allocUnsafe(10);
      FINAL_BLOCK.copy(trailer, 0);
      trailer.writeUInt32LE(boundary.crc >>> 0, 2);
      trailer.writeUInt32LE(boundary.size % 2 ** 32, 6);
      this.#emit(trailer);
      this.#ranges.push({
        offset: this.#memberOffset,
        bytes: this.#written - this.#memberOffset,
        sha256: this.#memberHash!.digest('hex'),
      });
      this.#memberHash = undefined;
    }
  }

  #emit(bytes: Buffer): void {
    this.#memberHash!.update(bytes);
    this.#written += bytes.length;
    if (bytes.length >= OUT_BYTES / 2) {
      this.#writeGathered();
      this.#write(bytes);
      return;
    }
    if (this.#gatheredBytes + bytes.length > OUT_BYTES) this.#writeGathered();
    bytes.copy(this.#gathered, this.#gatheredBytes);
    this.#gatheredBytes += bytes.length;
  }

  /** Writes the output gathered so far (in a buffer of its own: the next is a fresh one). */
  #writeGathered(): void {
    if (this.#gatheredBytes === 0) return;
    const chunk = this.#gathered.subarray(0, this.#gatheredBytes);
    this.#gathered = Buffer.allocUnsafe(OUT_BYTES);
    this.#gatheredBytes = 0;
    this.#write(chunk);
  }

  #write(bytes: Buffer): void {
    if (!this.#out.write(bytes) && !this.#waitingForOut) {
      // the output is slow: deflate's output waits in its buffer, and then its input, and then the writer
      this.#waitingForOut = true;
      this.#deflate.pause();
      this.#out.once('drain', () => {
        this.#waitingForOut = false;
        this.#deflate.resume();
      });
    }
  }

  #fail(error: Error): void {
    this.#error ??= error;
    this.#deflate.destroy(error);
    this.#out.destroy(error);
  }
}

let crcTable: Int32Array | undefined;

/** CRC-32 (gzip's), for Node versions before `zlib.crc32`. */
function crc32Js(data: Uint8Array, value = 0): number {
  if (crcTable === undefined) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let crc = ~value;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
