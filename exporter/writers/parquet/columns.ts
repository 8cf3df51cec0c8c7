import type { SchemaElement, Statistics } from 'hyparquet';
import type { Column } from '../../../catalog/types.js';
import { WharfError } from '../../../core/errors.js';
import type { InputForm } from '../file-format.js';
import { parsedTemporal, readDateText, readTimestampText } from './temporal-text.js';
import { unscaledDecimal, uuidBytes } from './values.js';

/** How values are held and written: the physical shape of a column. */
export const INT64 = 0;
/** INT64 holding a DECIMAL's unscaled value. */
export const DECIMAL = 1;
export const INT32 = 2;
/** FIXED_LEN_BYTE_ARRAY(16). */
export const UUID = 3;
export const BOOLEAN = 4;
export const BYTE_ARRAY = 5;
/** How a field's text is read when it is not in the physical kind's own form: timestamptz text → INT64 micros. */
const TIMESTAMP_TEXT = 6;
/** Date text → INT32 days. */
const DATE_TEXT = 7;

/** Bytes per value of each kind (0: variable). */
const WIDTH = [8, 8, 4, 16, 1, 0] as const;

/** How one catalog column is written. */
export interface ColumnSpec {
  readonly name: string;
  readonly kind: number;
  readonly nullable: boolean;
  /** DECIMAL scale. */
  readonly scale: number;
  /** The schema element in the footer. */
  readonly element: SchemaElement;
  /** Whether min/max statistics are written (not for free text and JSON). */
  readonly minMax: boolean;
  /** Whether dictionary encoding is tried. */
  readonly dictionary: boolean;
  /** How the field's text is read: the kind's own form, or timestamp / date text (staged input). */
  readonly parse: number;
}

/** How `column` is written, reading its fields in the `input` form (default: the select expressions' numbers). */
export function columnSpec(column: Column, input: InputForm = 'select'): ColumnSpec {
  const staged = input === 'staged';
  const base = {
    name: column.name,
    repetition_type: column.nullable ? ('OPTIONAL' as const) : ('REQUIRED' as const),
  };
  const spec = (kind: number, element: Omit<SchemaElement, 'name'>, scale = 0): ColumnSpec => ({
    name: column.name,
    kind,
    nullable: column.nullable,
    scale,
    element: { ...base, ...element },
    // min/max of free text (user agents, URLs) cost time and help no reader skip anything
    minMax: column.type !== 'text' && column.type !== 'jsonb',
    dictionary: kind !== BOOLEAN,
    parse:
      staged && column.type === 'timestamptz'
        ? TIMESTAMP_TEXT
        : staged && column.type === 'date'
          ? DATE_TEXT
          : kind,
  });
  const utf8 = { type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' } } as const;
  switch (column.type) {
    case 'bigint':
      return spec(INT64, { type: 'INT64' });
    case 'numeric': {
      const { precision, scale } = column;
      // no fixed precision/scale that fits INT64: keep the exact decimal text
      if (precision === undefined || scale === undefined || precision > 18) return spec(BYTE_ARRAY, utf8);
      return spec(
        DECIMAL,
        {
          type: 'INT64',
          converted_type: 'DECIMAL',
          scale,
          precision,
          logical_type: { type: 'DECIMAL', scale, precision },
        },
        scale,
      );
    }
    case 'timestamptz':
      return spec(INT64, {
        type: 'INT64',
        converted_type: 'TIMESTAMP_MICROS',
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
      });
    case 'date':
      return spec(INT32, { type: 'INT32', converted_type: 'DATE', logical_type: { type: 'DATE' } });
    case 'uuid':
      return spec(UUID, { type: 'FIXED_LEN_BYTE_ARRAY', type_length: 16, logical_type: { type: 'UUID' } });
    case 'boolean':
      return spec(BOOLEAN, { type: 'BOOLEAN' });
    case 'jsonb':
      return spec(BYTE_ARRAY, { type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' } });
    case 'text':
    case 'char':
      return spec(BYTE_ARRAY, utf8);
  }
}

const COMMA = 0x2c;
const NL = 0x0a;
const QUOTE = 0x22;
const MINUS = 0x2d;
const DOT = 0x2e;
const TWO_32 = 4294967296;
const TWO_MINUS_32 = 1 / TWO_32;
const TWO_53 = 9007199254740992;
const POW10 = Array.from({ length: 19 }, (_, i) => 10 ** i);
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** The dictionary is first weighed against plain values after this many distinct values. */
const FIRST_CHECK = 4096;
/** Beyond this many distinct values (or bytes of dictionary page) a chunk is written plain. */
const MAX_ENTRIES = 65536;
const MAX_DICTIONARY_BYTES = 1024 * 1024;

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
const G_OFFSET = 0x6a09e667;
const G_PRIME = 0x5bd1e995;

function mix(a: number, b: number): number {
  let h = Math.imul(a ^ Math.imul(b, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Bits per dictionary index for `entries` entries (at least 1). */
export function indexBitWidth(entries: number): number {
  return entries <= 2 ? 1 : 32 - Math.clz32(entries - 1);
}

/**
 * Decodes 4 hex digits (a little-endian word of 4 characters) into 2 bytes at `to[o]`; returns -1
 * when one of them is not a hex digit (0 otherwise).
 */
function hex4(w: number, to: Uint8Array, o: number): number {
  // per byte x < 0x80: the high bit of x + (0x80 - lo) is set when x >= lo, of x + (0x7f - hi) when x > hi
  const digit = (w + 0x50505050) & ~(w + 0x46464646);
  const lower = w | 0x20202020;
  const letter = (lower + 0x1f1f1f1f) & ~(lower + 0x19191919);
  if (((digit | letter) & 0x80808080) !== (0x80808080 | 0) || (w & 0x80808080) !== 0) return -1;
  // digits are x & 15, letters (bit 6 set) x & 15 + 9
  const nibbles = (w & 0x0f0f0f0f) + ((w >>> 6) & 0x01010101) * 9;
  const pairs = ((nibbles << 4) | (nibbles >>> 8)) & 0x00ff00ff;
  to[o] = pairs;
  to[o + 1] = pairs >>> 16;
  return 0;
}

/** One field's text, decoded (for the rare values the fast paths do not take). */
function readField(raw: Buffer, p: number): { text: string; end: number } {
  if (raw[p] !== QUOTE) {
    let e = p;
    while (e < raw.length && raw[e] !== COMMA && raw[e] !== NL) e++;
    return { text: raw.toString('utf8', p, e), end: e };
  }
  const parts: Buffer[] = [];
  let s = p + 1;
  for (;;) {
    const q = raw.indexOf(QUOTE, s);
    if (q < 0) throw malformed();
    if (raw[q + 1] === QUOTE) {
      parts.push(raw.subarray(s, q + 1));
      s = q + 2;
      continue;
    }
    parts.push(raw.subarray(s, q));
    return { text: Buffer.concat(parts).toString('utf8'), end: q + 1 };
  }
}

function malformed(): WharfError {
  return new WharfError('malformed COPY record: a quoted field does not end', { kind: 'transient' });
}

const ONES = 0x01010101;
const HIGHS = 0x80808080;
const COMMAS = 0x2c2c2c2c;
const NLS = 0x0a0a0a0a;
const QUOTES = 0x22222222;

function hasDelimiter(w: number): number {
  const c = w ^ COMMAS;
  const n = w ^ NLS;
  return (((c - ONES) & ~c) | ((n - ONES) & ~n)) & HIGHS;
}

function hasQuote(w: number): number {
  const q = w ^ QUOTES;
  return (q - ONES) & ~q & HIGHS;
}

/** The hash of the last field scanned by `scanHash…` (as `hashBytes` computes it). */
let scannedHash = 0;

/**
 * Finds the `,` or `\n` ending the unquoted field that starts at `p` (a record always ends with
 * `\n`) and hashes the field's bytes on the way, 4 at a time; the hash is left in `scannedHash`.
 */
function scanHashDelimited(raw: Buffer, view: DataView, base: number, p: number): number {
  const start = p;
  const limit = raw.length - 4;
  let h = FNV_OFFSET;
  let g = G_OFFSET;
  for (;;) {
    if (p > limit) break;
    let w = view.getInt32(base + p, true);
    if (hasDelimiter(w)) break;
    h = Math.imul(h ^ w, FNV_PRIME);
    p += 4;
    if (p > limit) break;
    w = view.getInt32(base + p, true);
    if (hasDelimiter(w)) break;
    g = Math.imul(g ^ w, G_PRIME);
    p += 4;
  }
  let b = raw[p]!;
  while (b !== COMMA && b !== NL) {
    g = Math.imul(g ^ b, G_PRIME);
    b = raw[++p]!;
  }
  scannedHash = mix(h ^ Math.imul(g, 0x9e3779b1), p - start);
  return p;
}

/** Like `scanHashDelimited` for the content of a quoted field: returns the next `"` (or the length). */
function scanHashQuoted(raw: Buffer, view: DataView, base: number, p: number): number {
  const start = p;
  const length = raw.length;
  const limit = length - 4;
  let h = FNV_OFFSET;
  let g = G_OFFSET;
  for (;;) {
    if (p > limit) break;
    let w = view.getInt32(base + p, true);
    if (hasQuote(w)) break;
    h = Math.imul(h ^ w, FNV_PRIME);
    p += 4;
    if (p > limit) break;
    w = view.getInt32(base + p, true);
    if (hasQuote(w)) break;
    g = Math.imul(g ^ w, G_PRIME);
    p += 4;
  }
  while (p < length && raw[p] !== QUOTE) {
    g = Math.imul(g ^ raw[p]!, G_PRIME);
    p++;
  }
  scannedHash = mix(h ^ Math.imul(g, 0x9e3779b1), p - start);
  return p;
}

/**
 * Copies the unquoted field that starts at `p` to `to` at `o` (4 bytes at a time; up to 3 bytes
 * past it may be written) and returns the position of the `,` or `\n` that ends it.
 */
function scanCopyDelimited(
  raw: Buffer,
  view: DataView,
  base: number,
  p: number,
  to: Uint8Array,
  toView: DataView,
  o: number,
): number {
  const limit = raw.length - 4;
  while (p <= limit) {
    const w = view.getInt32(base + p, true);
    toView.setInt32(o, w, true);
    if (hasDelimiter(w)) break;
    p += 4;
    o += 4;
  }
  let b = raw[p]!;
  while (b !== COMMA && b !== NL) {
    to[o++] = b;
    b = raw[++p]!;
  }
  return p;
}

/** Like `scanCopyDelimited` for the content of a quoted field: returns the next `"` (or the length). */
function scanCopyQuoted(
  raw: Buffer,
  view: DataView,
  base: number,
  p: number,
  to: Uint8Array,
  toView: DataView,
  o: number,
): number {
  const length = raw.length;
  const limit = length - 4;
  while (p <= limit) {
    const w = view.getInt32(base + p, true);
    toView.setInt32(o, w, true);
    if (hasQuote(w)) break;
    p += 4;
    o += 4;
  }
  while (p < length) {
    const b = raw[p]!;
    if (b === QUOTE) break;
    to[o++] = b;
    p++;
  }
  return p;
}

/** The value of 4 ASCII digits read as a little-endian word, or -1 when they are not all digits. */
function fourDigits(w: number): number {
  if ((w & 0xf0f0f0f0) !== 0x30303030 || ((w + 0x06060606) & 0xf0f0f0f0) !== 0x30303030) return -1;
  const d = w - 0x30303030;
  const pairs = (d * 10 + (d >>> 8)) & 0x00ff00ff;
  return (pairs & 0xff) * 100 + (pairs >>> 16);
}

/** Where a quoted field with doubled quotes is unescaped for a dictionary lookup. */
let scratch = Buffer.allocUnsafe(4096);
let scratchView = new DataView(scratch.buffer, scratch.byteOffset, scratch.byteLength);

function scratchFor(length: number): void {
  if (scratch.length < length) {
    scratch = Buffer.allocUnsafe(Math.max(length, scratch.length * 2));
    scratchView = new DataView(scratch.buffer, scratch.byteOffset, scratch.byteLength);
  }
}

/**
 * Unescapes the quoted field whose content starts at `p` (`""` → `"`) into `to` at `o`; returns the
 * position after the closing quote. The unescaped length is left in `unescapedLength`.
 */
function unescapeQuoted(raw: Buffer, p: number, to: Uint8Array, o: number): number {
  const length = raw.length;
  const from = o;
  for (;;) {
    if (p >= length) throw malformed();
    const b = raw[p]!;
    if (b === QUOTE) {
      if (raw[p + 1] !== QUOTE) {
        unescapedLength = o - from;
        return p + 1;
      }
      p++;
    }
    to[o++] = b;
    p++;
  }
}
let unescapedLength = 0;

function hashBytes(src: Buffer, view: DataView, base: number, s: number, e: number): number {
  // two independent lanes over 8-byte steps, then 4-byte and 1-byte tails
  let h = FNV_OFFSET;
  let g = G_OFFSET;
  let i = s;
  for (; i + 8 <= e; i += 8) {
    h = Math.imul(h ^ view.getInt32(base + i, true), FNV_PRIME);
    g = Math.imul(g ^ view.getInt32(base + i + 4, true), G_PRIME);
  }
  if (i + 4 <= e) {
    h = Math.imul(h ^ view.getInt32(base + i, true), FNV_PRIME);
    i += 4;
  }
  for (; i < e; i++) g = Math.imul(g ^ src[i]!, G_PRIME);
  return mix(h ^ Math.imul(g, 0x9e3779b1), e - s);
}

/** Copies `src[s..e)` to `to` at `o` (4 bytes at a time). */
function copyBytes(
  src: Buffer,
  view: DataView,
  base: number,
  s: number,
  e: number,
  to: Uint8Array,
  toView: DataView,
  o: number,
): void {
  let i = s;
  for (; i + 4 <= e; i += 4, o += 4) toView.setInt32(o, view.getInt32(base + i, true), true);
  for (; i < e; i++) to[o++] = src[i]!;
}

function setLength(view: DataView, o: number, length: number): void {
  view.setInt32(o, length, true);
}

/**
 * The values of one column for the row group being gathered, in compact form: fixed-width values
 * as their little-endian PLAIN bytes (INT64 as two Int32 words), byte arrays as their PLAIN bytes
 * (length, bytes) with offsets, definition levels as bytes. While a column's distinct values stay
 * few, each value is only looked up in the chunk's dictionary and its index kept. Buffers are
 * reused from one row group to the next.
 */
export class ColumnBuffer {
  readonly spec: ColumnSpec;
  readonly kind: number;
  readonly width: number;
  readonly nullable: boolean;
  readonly #parse: number;
  /** Rows gathered (NULL included). */
  rows = 0;
  /** Non-NULL values gathered. */
  count = 0;
  nulls = 0;
  /** Definition level of each row (1: value, 0: NULL), for nullable columns. */
  defs: Uint8Array;
  /**
   * PLAIN-encoded values: `count * width` bytes for fixed widths; for byte arrays (once not in
   * dictionary mode) value k, with its length prefix, is `data[offsets[k] .. offsets[k + 1])`.
   */
  data: Uint8Array;
  #dataView: DataView;
  /** `data` as Int32 words (fixed widths of 4, 8 and 16 bytes). */
  words: Int32Array;
  offsets: Int32Array;
  /** Whether values are being looked up in the dictionary (else gathered plain). */
  dictionary: boolean;
  /** Dictionary index of each value (while `dictionary`). */
  indices: Int32Array;
  dictCount = 0;
  /** Size of the dictionary page, PLAIN encoded. */
  dictBytes = 0;
  /** Fixed widths: the value index of the first occurrence of each dictionary entry. */
  entries: Int32Array;
  /** Byte arrays: the PLAIN dictionary page; entry e's bytes start at `dictData[entryStarts[e]]`. */
  dictData: Uint8Array;
  #dictView: DataView;
  entryStarts: Int32Array;
  /**
   * Open addressing, `#stride` words per slot: entry + 1 (0 when free), the hash, then the key
   * (INT64: low and high word; INT32: the value; UUID: 4 words; byte arrays: start and length).
   */
  #table: Int32Array;
  readonly #stride: number;
  #slots = 64;
  #nextCheck = FIRST_CHECK;
  /** PLAIN size of the values gathered. */
  #plainBytes = 0;
  readonly #scale: number;
  #capacity: number;

  constructor(spec: ColumnSpec) {
    this.spec = spec;
    this.kind = spec.kind;
    this.width = WIDTH[spec.kind as 0]!;
    this.nullable = spec.nullable;
    this.#parse = spec.parse;
    this.#scale = spec.scale;
    this.dictionary = spec.dictionary;
    // small to start with (a file may hold a few rows); buffers double as they fill
    const capacity = 64;
    const bytes = this.kind === BYTE_ARRAY;
    this.#capacity = capacity;
    this.defs = new Uint8Array(spec.nullable ? capacity : 0);
    this.data = new Uint8Array(bytes ? 1024 : capacity * this.width);
    this.#dataView = new DataView(this.data.buffer);
    this.words = new Int32Array(this.width >= 4 ? this.data.buffer : new ArrayBuffer(0));
    this.offsets = new Int32Array(bytes ? capacity + 1 : 0);
    this.indices = new Int32Array(spec.dictionary ? capacity : 0);
    const entries = spec.dictionary ? 64 : 0;
    this.entries = new Int32Array(bytes ? 0 : entries);
    this.entryStarts = new Int32Array(bytes ? entries : 0);
    this.dictData = new Uint8Array(bytes && spec.dictionary ? 1024 : 0);
    this.#dictView = new DataView(this.dictData.buffer);
    this.#stride = this.kind === UUID ? 6 : 4;
    this.#table = new Int32Array(spec.dictionary ? this.#slots * this.#stride : 0);
  }

  /** Starts the next row group (keeps the buffers). */
  reset(): void {
    if (this.dictCount > 0) this.#table.fill(0);
    this.rows = 0;
    this.count = 0;
    this.nulls = 0;
    this.dictCount = 0;
    this.dictBytes = 0;
    this.#plainBytes = 0;
    this.#nextCheck = FIRST_CHECK;
    this.dictionary = this.spec.dictionary;
  }

  /**
   * Adds the field that starts at `raw[p]` (a PostgreSQL CSV field: unquoted empty is NULL) and
   * returns the position of the delimiter after it. `view` reads `raw`'s memory, `raw[i]` being
   * at `view` offset `base + i`.
   */
  add(raw: Buffer, view: DataView, base: number, p: number): number {
    const b = raw[p];
    if (b === COMMA || b === NL) {
      this.#addNull();
      return p;
    }
    if (this.count === this.#capacity) this.#grow();
    if (this.nullable) {
      if (this.rows === this.defs.length) this.#growRows();
      this.defs[this.rows] = 1;
    }
    this.rows++;
    switch (this.#parse) {
      case INT64:
        return this.#int64(raw, view, base, p);
      case DECIMAL:
        return this.#decimal(raw, p);
      case INT32:
        return this.#int32(raw, p);
      case UUID:
        return this.#uuid(raw, view, base, p);
      case BOOLEAN:
        return this.#boolean(raw, p);
      case TIMESTAMP_TEXT: {
        const end = readTimestampText(raw, p, this.spec.name);
        if (parsedTemporal.exact) this.#putNumber(parsedTemporal.value);
        else this.#putBigInt(parsedTemporal.big);
        return end;
      }
      case DATE_TEXT: {
        const end = readDateText(raw, p, this.spec.name);
        this.#putInt32(parsedTemporal.value);
        return end;
      }
      default:
        return this.#bytes(raw, view, base, p);
    }
  }

  #addNull(): void {
    if (!this.nullable) {
      throw new WharfError(`column ${this.spec.name} is NOT NULL in the catalog but the source sent NULL`, {
        kind: 'terminal',
      });
    }
    if (this.rows === this.defs.length) this.#growRows();
    this.defs[this.rows++] = 0;
    this.nulls++;
  }

  #int64(raw: Buffer, view: DataView, base: number, start: number): number {
    let p = start;
    const negative = raw[p] === MINUS;
    if (negative) p++;
    const first = p;
    let v = 0;
    const limit = raw.length - 4;
    while (p <= limit) {
      const four = fourDigits(view.getInt32(base + p, true));
      if (four < 0) break;
      v = v * 10000 + four;
      p += 4;
    }
    let b = raw[p]!;
    while (b >= 0x30 && b <= 0x39) {
      v = v * 10 + (b - 0x30);
      b = raw[++p]!;
    }
    // up to 16 digits below 2^53 are exact in a double
    if ((b !== COMMA && b !== NL) || p === first || p - first > 16 || v >= TWO_53) {
      const field = readField(raw, start);
      this.#putBigInt(BigInt(field.text));
      return field.end;
    }
    this.#putNumber(negative ? -v : v);
    return p;
  }

  #decimal(raw: Buffer, start: number): number {
    const scale = this.#scale;
    let p = start;
    let b = raw[p]!;
    const negative = b === MINUS;
    if (negative) b = raw[++p]!;
    const first = p;
    let v = 0;
    while (b >= 0x30 && b <= 0x39) {
      v = v * 10 + (b - 0x30);
      b = raw[++p]!;
    }
    let digits = p - first;
    let fraction = 0;
    let exact = true;
    if (b === DOT) {
      b = raw[++p]!;
      while (b >= 0x30 && b <= 0x39) {
        if (fraction < scale) {
          v = v * 10 + (b - 0x30);
          fraction++;
          digits++;
        } else if (b !== 0x30) {
          exact = false;
        }
        b = raw[++p]!;
      }
    }
    if (!exact || digits === 0 || (b !== COMMA && b !== NL) || digits - fraction + scale > 15) {
      const field = readField(raw, start);
      this.#putBigInt(unscaledDecimal(field.text, scale));
      return field.end;
    }
    v *= POW10[scale - fraction]!;
    this.#putNumber(negative ? -v : v);
    return p;
  }

  /** An integer with |v| < 2^53 as INT64. */
  #putNumber(v: number): void {
    // exact: multiplying by a power of two does not round
    const hi = Math.floor(v * TWO_MINUS_32);
    const lo = (v - hi * TWO_32) | 0;
    const k = this.count;
    const words = this.words;
    words[2 * k] = lo;
    words[2 * k + 1] = hi;
    if (this.dictionary) {
      // sorted and constant columns (the tenant column) repeat the previous value
      if (k > 0 && words[2 * k - 2] === lo && words[2 * k - 1] === hi) this.indices[k] = this.indices[k - 1]!;
      else this.#lookupFixed(mix(lo, hi));
    }
    this.count = k + 1;
  }

  #putBigInt(v: bigint): void {
    if (v < INT64_MIN || v > INT64_MAX) {
      throw new WharfError(`value ${v} of column ${this.spec.name} does not fit a Parquet INT64`, {
        kind: 'terminal',
      });
    }
    const lo = Number(BigInt.asIntN(32, v));
    const hi = Number(BigInt.asIntN(32, v >> 32n));
    const k = this.count;
    this.words[2 * k] = lo;
    this.words[2 * k + 1] = hi;
    if (this.dictionary) this.#lookupFixed(mix(lo, hi));
    this.count = k + 1;
  }

  #int32(raw: Buffer, start: number): number {
    let p = start;
    let b = raw[p]!;
    const negative = b === MINUS;
    if (negative) b = raw[++p]!;
    const first = p;
    let v = 0;
    while (b >= 0x30 && b <= 0x39) {
      v = v * 10 + (b - 0x30);
      b = raw[++p]!;
    }
    if (negative) v = -v;
    let end = p;
    if ((b !== COMMA && b !== NL) || p === first || p - first > 10 || v !== (v | 0)) {
      const field = readField(raw, start);
      v = Number(field.text);
      if (!Number.isInteger(v) || v !== (v | 0)) {
        throw new WharfError(`value ${field.text} of column ${this.spec.name} does not fit a Parquet INT32`, {
          kind: 'terminal',
        });
      }
      end = field.end;
    }
    this.#putInt32(v);
    return end;
  }

  #putInt32(v: number): void {
    const k = this.count;
    this.words[k] = v;
    if (this.dictionary) this.#lookupFixed(mix(v, 0));
    this.count = k + 1;
  }

  #uuid(raw: Buffer, view: DataView, base: number, start: number): number {
    const data = this.data;
    const o = this.count * 16;
    let end = start + 36;
    let bad = 0;
    const after = raw[end];
    if (
      (after === COMMA || after === NL) &&
      raw[start + 8] === MINUS &&
      raw[start + 13] === MINUS &&
      raw[start + 18] === MINUS &&
      raw[start + 23] === MINUS
    ) {
      // 8-4-4-4-12 hex digits, 4 at a time
      const at = base + start;
      bad =
        hex4(view.getInt32(at, true), data, o) |
        hex4(view.getInt32(at + 4, true), data, o + 2) |
        hex4(view.getInt32(at + 9, true), data, o + 4) |
        hex4(view.getInt32(at + 14, true), data, o + 6) |
        hex4(view.getInt32(at + 19, true), data, o + 8) |
        hex4(view.getInt32(at + 24, true), data, o + 10) |
        hex4(view.getInt32(at + 28, true), data, o + 12) |
        hex4(view.getInt32(at + 32, true), data, o + 14);
    } else {
      bad = -1;
    }
    if (bad < 0) {
      const field = readField(raw, start);
      const bytes = uuidBytes(field.text);
      if (bytes.length !== 16) {
        throw new WharfError(`value ${field.text} of column ${this.spec.name} is not a UUID`, {
          kind: 'terminal',
        });
      }
      data.set(bytes, o);
      end = field.end;
    }
    const k = this.count;
    if (this.dictionary) {
      const w = this.words;
      const i = 4 * k;
      this.#lookupFixed(mix(mix(w[i]!, w[i + 1]!), mix(w[i + 2]!, w[i + 3]!)));
    }
    this.count = k + 1;
    return end;
  }

  #boolean(raw: Buffer, start: number): number {
    const b = raw[start];
    const after = raw[start + 1];
    let end = start + 1;
    let value: boolean;
    if ((b === 0x74 || b === 0x66) && (after === COMMA || after === NL)) {
      value = b === 0x74;
    } else {
      const field = readField(raw, start);
      value = field.text === 't';
      end = field.end;
    }
    this.data[this.count++] = value ? 1 : 0;
    return end;
  }

  #bytes(raw: Buffer, view: DataView, base: number, start: number): number {
    const quoted = raw[start] === QUOTE;
    const s = quoted ? start + 1 : start;
    let e: number;
    let next: number;
    if (this.dictionary) {
      e = quoted ? scanHashQuoted(raw, view, base, s) : scanHashDelimited(raw, view, base, s);
      next = e;
      if (quoted) {
        if (e >= raw.length) throw malformed();
        next = e + 1;
        if (raw[next] === QUOTE) {
          // doubled quotes inside: the value is the unescaped text
          scratchFor(raw.length);
          next = unescapeQuoted(raw, s, scratch, 0);
          const length = unescapedLength;
          this.#plainBytes += length + 4;
          this.#lookupBytes(
            scratch,
            scratchView,
            0,
            0,
            length,
            hashBytes(scratch, scratchView, 0, 0, length),
          );
          this.count++;
          return next;
        }
      }
      this.#plainBytes += e - s + 4;
      this.#lookupBytes(raw, view, base, s, e, scannedHash);
    } else {
      const k = this.count;
      const o = this.offsets[k]!;
      const need = o + 8 + raw.length - start;
      if (need > this.data.length) this.#growData(need);
      const data = this.data;
      const dataView = this.#dataView;
      let end: number;
      if (quoted) {
        e = scanCopyQuoted(raw, view, base, s, data, dataView, o + 4);
        if (e >= raw.length) throw malformed();
        next = e + 1;
        if (raw[next] === QUOTE) {
          next = unescapeQuoted(raw, s, data, o + 4);
          end = o + 4 + unescapedLength;
        } else {
          end = o + 4 + e - s;
        }
      } else {
        e = scanCopyDelimited(raw, view, base, s, data, dataView, o + 4);
        next = e;
        end = o + 4 + e - s;
      }
      setLength(dataView, o, end - o - 4);
      this.offsets[k + 1] = end;
      this.#plainBytes += end - o;
    }
    this.count++;
    return next;
  }

  /** Finds value `count` (already in `data`) in the dictionary, adding it when new. */
  #lookupFixed(h: number): void {
    const table = this.#table;
    const stride = this.#stride;
    const words = this.words;
    const k = this.count;
    const kind = this.kind;
    // the value's words
    const w = kind === UUID ? 4 * k : kind === INT32 ? k : 2 * k;
    const w0 = words[w]!;
    const w1 = kind === INT32 ? 0 : words[w + 1]!;
    let i = (h & (this.#slots - 1)) * stride;
    for (;;) {
      const e = table[i]!;
      if (e === 0) {
        if (this.dictCount === this.entries.length) this.entries = grown(this.entries, this.dictCount * 2);
        this.entries[this.dictCount] = k;
        table[i + 1] = h;
        table[i + 2] = w0;
        table[i + 3] = w1;
        if (kind === UUID) {
          table[i + 4] = words[w + 2]!;
          table[i + 5] = words[w + 3]!;
        }
        this.#insert(i, this.width);
        return;
      }
      if (
        table[i + 2] === w0 &&
        table[i + 3] === w1 &&
        (kind !== UUID || (table[i + 4] === words[w + 2] && table[i + 5] === words[w + 3]))
      ) {
        this.indices[k] = e - 1;
        return;
      }
      i += stride;
      if (i === table.length) i = 0;
    }
  }

  /** Finds `src[s..e)` in the dictionary, adding it when new. */
  #lookupBytes(src: Buffer, srcView: DataView, srcBase: number, s: number, e: number, h: number): void {
    const table = this.#table;
    const length = e - s;
    let t = (h & (this.#slots - 1)) * 4;
    for (;;) {
      const x = table[t]!;
      if (x === 0) break;
      if (table[t + 1] === h && table[t + 3] === length) {
        const d = table[t + 2]!;
        const dictView = this.#dictView;
        let i = 0;
        while (
          i + 4 <= length &&
          dictView.getInt32(d + i, true) === srcView.getInt32(srcBase + s + i, true)
        ) {
          i += 4;
        }
        if (i + 4 > length) {
          const dictData = this.dictData;
          while (i < length && dictData[d + i] === src[s + i]) i++;
        }
        if (i === length) {
          this.indices[this.count] = x - 1;
          return;
        }
      }
      t += 4;
      if (t === table.length) t = 0;
    }
    // a new entry: append it to the dictionary page
    const o = this.dictBytes;
    if (o + 4 + length > this.dictData.length) {
      this.dictData = grown(this.dictData, Math.max(o + 4 + length, this.dictData.length * 2));
      this.#dictView = new DataView(this.dictData.buffer);
    }
    setLength(this.#dictView, o, length);
    copyBytes(src, srcView, srcBase, s, e, this.dictData, this.#dictView, o + 4);
    if (this.dictCount === this.entryStarts.length)
      this.entryStarts = grown(this.entryStarts, this.dictCount * 2);
    this.entryStarts[this.dictCount] = o + 4;
    table[t + 1] = h;
    table[t + 2] = o + 4;
    table[t + 3] = length;
    this.#insert(t, length + 4);
  }

  /** Adds value `count` as a new entry, its slot (at `t`) filled but for the entry number. */
  #insert(t: number, bytes: number): void {
    const e = this.dictCount;
    this.#table[t] = e + 1;
    this.indices[this.count] = e;
    this.dictCount = e + 1;
    this.dictBytes += bytes;
    if (this.dictCount * 2 > this.#slots) this.#growTable();
    if (this.dictCount >= this.#nextCheck || this.dictBytes > MAX_DICTIONARY_BYTES) this.#weigh();
  }

  /** Gives up the dictionary when it is too large or does not pay for itself. */
  #weigh(): void {
    this.#nextCheck = Math.min(this.#nextCheck * 2, MAX_ENTRIES + 1);
    const values = this.count + 1; // the value being added counts
    if (this.dictCount > MAX_ENTRIES || this.dictBytes > MAX_DICTIONARY_BYTES || !this.#pays(values)) {
      this.#dropDictionary(values);
    }
  }

  /** Whether dictionary page plus indices are smaller than the PLAIN values. */
  #pays(values: number): boolean {
    const plain = this.kind === BYTE_ARRAY ? this.#plainBytes : values * this.width;
    return this.dictBytes + Math.ceil((values * indexBitWidth(this.dictCount)) / 8) < plain;
  }

  /** Turns the first `values` values from dictionary indices into PLAIN values. */
  #dropDictionary(values: number): void {
    this.dictionary = false;
    if (this.kind !== BYTE_ARRAY) return; // fixed widths are always kept PLAIN too
    if (this.#plainBytes > this.data.length) this.#growData(this.#plainBytes);
    const data = this.data;
    const dictData = this.dictData;
    const starts = this.entryStarts;
    const indices = this.indices;
    const offsets = this.offsets;
    let o = 0;
    const dictView = this.#dictView;
    for (let k = 0; k < values; k++) {
      const d = starts[indices[k]!]! - 4;
      const end = d + 4 + dictView.getInt32(d, true);
      for (let i = d; i < end; i++) data[o++] = dictData[i]!;
      offsets[k + 1] = o;
    }
  }

  /**
   * Decides how the chunk is written: true for dictionary encoding (the dictionary was kept and
   * pays for itself), false for PLAIN (`data` then holds every value).
   */
  useDictionary(): boolean {
    if (!this.dictionary) return false;
    if (this.dictCount > 0 && this.#pays(this.count)) return true;
    this.#dropDictionary(this.count);
    return false;
  }

  #growTable(): void {
    const old = this.#table;
    const stride = this.#stride;
    this.#slots *= 2;
    const table = new Int32Array(this.#slots * stride);
    const mask = this.#slots - 1;
    for (let i = 0; i < old.length; i += stride) {
      if (old[i] === 0) continue;
      let t = (old[i + 1]! & mask) * stride;
      while (table[t] !== 0) {
        t += stride;
        if (t === table.length) t = 0;
      }
      table.set(old.subarray(i, i + stride), t);
    }
    this.#table = table;
  }

  #grow(): void {
    const capacity = this.#capacity * 2;
    this.#capacity = capacity;
    if (this.kind === BYTE_ARRAY) {
      this.offsets = grown(this.offsets, capacity + 1);
    } else {
      this.data = grown(this.data, capacity * this.width);
      this.#dataView = new DataView(this.data.buffer);
      if (this.width >= 4) this.words = new Int32Array(this.data.buffer);
    }
    if (this.spec.dictionary) this.indices = grown(this.indices, capacity);
  }

  #growRows(): void {
    this.defs = grown(this.defs, Math.max(256, this.defs.length * 2));
  }

  #growData(need: number): void {
    this.data = grown(this.data, Math.max(need, this.data.length * 2));
    this.#dataView = new DataView(this.data.buffer);
  }

  /** Statistics of the chunk: null count, and min/max unless the column has none. */
  statistics(): Statistics {
    const statistics: Statistics = { null_count: BigInt(this.nulls) };
    if (!this.spec.minMax || this.count === 0) return statistics;
    // with a dictionary, its entries are the distinct values
    const n = this.dictionary ? this.dictCount : this.count;
    const at = this.dictionary && this.kind !== BYTE_ARRAY ? this.entries : undefined;
    let min = at ? at[0]! : 0;
    let max = min;
    const words = this.words;
    switch (this.kind) {
      case INT64:
      case DECIMAL: {
        let minHi = words[2 * min + 1]!;
        let minLo = words[2 * min]! >>> 0;
        let maxHi = minHi;
        let maxLo = minLo;
        for (let i = 1; i < n; i++) {
          const k = at ? at[i]! : i;
          const hi = words[2 * k + 1]!;
          const lo = words[2 * k]! >>> 0;
          if (hi < minHi || (hi === minHi && lo < minLo)) {
            minHi = hi;
            minLo = lo;
          }
          if (hi > maxHi || (hi === maxHi && lo > maxLo)) {
            maxHi = hi;
            maxLo = lo;
          }
        }
        statistics.min_value = BigInt(minHi) * 4294967296n + BigInt(minLo);
        statistics.max_value = BigInt(maxHi) * 4294967296n + BigInt(maxLo);
        return statistics;
      }
      case INT32: {
        let low = words[min]!;
        let high = low;
        for (let i = 1; i < n; i++) {
          const v = words[at ? at[i]! : i]!;
          if (v < low) low = v;
          if (v > high) high = v;
        }
        statistics.min_value = low;
        statistics.max_value = high;
        return statistics;
      }
      case BOOLEAN: {
        let any = 0;
        let all = 1;
        for (let i = 0; i < n; i++) {
          any |= this.data[i]!;
          all &= this.data[i]!;
        }
        statistics.min_value = all === 1;
        statistics.max_value = any === 1;
        return statistics;
      }
      case UUID: {
        const data = this.data;
        for (let i = 1; i < n; i++) {
          const k = at ? at[i]! : i;
          if (compareBytes(data, k * 16, 16, data, min * 16, 16) < 0) min = k;
          if (compareBytes(data, k * 16, 16, data, max * 16, 16) > 0) max = k;
        }
        statistics.min_value = data.slice(min * 16, min * 16 + 16);
        statistics.max_value = data.slice(max * 16, max * 16 + 16);
        return statistics;
      }
      default: {
        // value i is bytes [start(i), end(i)) of `bytes`
        const dictionary = this.dictionary;
        const bytes = dictionary ? this.dictData : this.data;
        const starts = this.entryStarts;
        const offsets = this.offsets;
        const start = (i: number) => (dictionary ? starts[i]! : offsets[i]! + 4);
        const end = (i: number) =>
          dictionary ? (i + 1 < n ? starts[i + 1]! - 4 : this.dictBytes) : offsets[i + 1]!;
        for (let i = 1; i < n; i++) {
          const s = start(i);
          const length = end(i) - s;
          if (compareBytes(bytes, s, length, bytes, start(min), end(min) - start(min)) < 0) min = i;
          if (compareBytes(bytes, s, length, bytes, start(max), end(max) - start(max)) > 0) max = i;
        }
        statistics.min_value = bytes.slice(start(min), end(min));
        statistics.max_value = bytes.slice(start(max), end(max));
        return statistics;
      }
    }
  }
}

/** Unsigned lexicographic order, as Parquet orders byte arrays. */
function compareBytes(a: Uint8Array, as: number, al: number, b: Uint8Array, bs: number, bl: number): number {
  const n = Math.min(al, bl);
  for (let i = 0; i < n; i++) {
    const d = a[as + i]! - b[bs + i]!;
    if (d !== 0) return d;
  }
  return al - bl;
}

function grown<T extends Uint8Array | Int32Array>(array: T, length: number): T {
  const next = new (array.constructor as new (n: number) => T)(length);
  next.set(array);
  return next;
}
