import type { ColumnChunk, ColumnMetaData, Encoding, PageHeader } from 'hyparquet';
import type { ByteWriter } from 'hyparquet-writer/src/bytewriter.js';
import { writePageHeader } from 'hyparquet-writer/src/datapage.js';
import { BOOLEAN, BYTE_ARRAY, type ColumnBuffer, indexBitWidth } from './columns.js';
import { snappyCompress } from './snappy.js';

/** Data pages hold about this many bytes of values (before compression). */
export const PAGE_BYTES = 1024 * 1024;

/** A growable byte buffer for one page, reused from page to page. */
class PageBuffer {
  buf = new Uint8Array(PAGE_BYTES + 64 * 1024);
  pos = 0;

  ensure(bytes: number): Uint8Array {
    const need = this.pos + bytes;
    if (need > this.buf.length) {
      const next = new Uint8Array(Math.max(need, this.buf.length * 2));
      next.set(this.buf.subarray(0, this.pos));
      this.buf = next;
    }
    return this.buf;
  }
}

// Encoding is synchronous from the first page of a row group to its last: one buffer serves all sinks.
const page = new PageBuffer();

function writeVarInt(buf: Uint8Array, o: number, value: number): number {
  while (value > 0x7f) {
    buf[o++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[o++] = value;
  return o;
}

/**
 * The RLE / bit-packing hybrid of `values[start..end)` at `bitWidth` bits (definition levels,
 * dictionary indices): runs of 8 or more equal values as RLE runs, the rest bit-packed by 8.
 */
function writeHybrid(
  out: PageBuffer,
  values: Uint8Array | Int32Array,
  start: number,
  end: number,
  bitWidth: number,
) {
  const buf = out.ensure((((end - start + 7) >> 3) + 1) * (bitWidth + 10) + 16);
  const valueBytes = (bitWidth + 7) >> 3;
  let o = out.pos;
  let i = start;
  let groups = 0;
  let groupsStart = start;
  while (i < end) {
    const v = values[i]!;
    let run = 1;
    while (i + run < end && values[i + run] === v) run++;
    if (run >= 8) {
      if (groups > 0) {
        o = bitPack(buf, o, values, groupsStart, groups, end, bitWidth);
        groups = 0;
      }
      o = writeVarInt(buf, o, run * 2);
      for (let j = 0; j < valueBytes; j++) buf[o++] = (v >>> (8 * j)) & 0xff;
      i += run;
    } else {
      if (groups === 0) groupsStart = i;
      groups++;
      i += 8;
    }
  }
  if (groups > 0) o = bitPack(buf, o, values, groupsStart, groups, end, bitWidth);
  out.pos = o;
}

function bitPack(
  buf: Uint8Array,
  o: number,
  values: Uint8Array | Int32Array,
  start: number,
  groups: number,
  end: number,
  bitWidth: number,
): number {
  o = writeVarInt(buf, o, groups * 2 + 1);
  const stop = start + groups * 8;
  const full = Math.min(stop, end);
  let acc = 0;
  let bits = 0;
  for (let i = start; i < full; i++) {
    acc |= values[i]! << bits;
    bits += bitWidth;
    while (bits >= 8) {
      buf[o++] = acc & 0xff;
      acc >>>= 8;
      bits -= 8;
    }
  }
  // the last group is padded with zeros
  for (let i = full; i < stop; i++) {
    bits += bitWidth;
    while (bits >= 8) {
      buf[o++] = acc & 0xff;
      acc >>>= 8;
      bits -= 8;
    }
  }
  return o;
}

/** PLAIN values `[v0, v1)` of a column. */
function writePlain(out: PageBuffer, column: ColumnBuffer, v0: number, v1: number): void {
  const data = column.data;
  if (column.kind === BOOLEAN) {
    const buf = out.ensure(((v1 - v0 + 7) >> 3) + 1);
    let o = out.pos;
    let acc = 0;
    let bits = 0;
    for (let k = v0; k < v1; k++) {
      acc |= data[k]! << bits;
      if (++bits === 8) {
        buf[o++] = acc;
        acc = 0;
        bits = 0;
      }
    }
    if (bits > 0) buf[o++] = acc;
    out.pos = o;
    return;
  }
  // the values are kept PLAIN-encoded already
  const from = column.kind === BYTE_ARRAY ? column.offsets[v0]! : v0 * column.width;
  const to = column.kind === BYTE_ARRAY ? column.offsets[v1]! : v1 * column.width;
  out.ensure(to - from).set(data.subarray(from, to), out.pos);
  out.pos += to - from;
}

/** The PLAIN dictionary page payload: each entry's value. */
function writeDictionary(out: PageBuffer, column: ColumnBuffer): void {
  const buf = out.ensure(column.dictBytes);
  if (column.kind === BYTE_ARRAY) {
    // kept PLAIN-encoded already
    buf.set(column.dictData.subarray(0, column.dictBytes), out.pos);
    out.pos += column.dictBytes;
    return;
  }
  const data = column.data;
  const entries = column.entries;
  const n = column.dictCount;
  const w = column.width;
  let o = out.pos;
  for (let e = 0; e < n; e++) {
    const s = entries[e]! * w;
    for (let i = 0; i < w; i++) buf[o++] = data[s + i]!;
  }
  out.pos = o;
}

/** Compresses the page payload and appends header and page; returns [uncompressed, compressed] bytes. */
function emitPage(
  writer: ByteWriter,
  header: Omit<PageHeader, 'uncompressed_page_size' | 'compressed_page_size'>,
) {
  const payload = page.buf.subarray(0, page.pos);
  const compressed = snappyCompress(payload);
  const start = writer.offset;
  writePageHeader(writer, {
    ...header,
    uncompressed_page_size: payload.length,
    compressed_page_size: compressed.length,
  });
  const headerBytes = writer.offset - start;
  writer.appendBytes(compressed);
  return headerBytes + payload.length;
}

/** Number of values (definition level 1) among rows `[r0, r1)`. */
function valuesIn(column: ColumnBuffer, r0: number, r1: number): number {
  if (!column.nullable) return r1 - r0;
  const defs = column.defs;
  let n = 0;
  for (let r = r0; r < r1; r++) n += defs[r]!;
  return n;
}

/**
 * Writes one column chunk of the row group gathered in `column`: a dictionary page when the
 * dictionary pays, then DATA_PAGE (v1) pages of about PAGE_BYTES each, snappy compressed.
 */
export function writeColumnChunk(writer: ByteWriter, column: ColumnBuffer): ColumnChunk {
  const chunkStart = writer.offset;
  const rows = column.rows;
  const count = column.count;
  const useDictionary = column.useDictionary();
  const bitWidth = useDictionary ? indexBitWidth(column.dictCount) : 0;
  const encoding: Encoding = useDictionary ? 'RLE_DICTIONARY' : 'PLAIN';
  let uncompressed = 0;
  let dictionaryPageOffset: bigint | undefined;

  if (useDictionary) {
    dictionaryPageOffset = BigInt(writer.offset);
    page.pos = 0;
    writeDictionary(page, column);
    uncompressed += emitPage(writer, {
      type: 'DICTIONARY_PAGE',
      dictionary_page_header: { num_values: column.dictCount, encoding: 'PLAIN' },
    });
  }

  const dataPageOffset = BigInt(writer.offset);
  let pages = 0;
  // rows per page when every value has the same size
  const valueBits = useDictionary ? bitWidth : column.kind === BOOLEAN ? 1 : column.width * 8;
  const rowsPerPage = Math.max(8, Math.floor((PAGE_BYTES * 8) / Math.max(1, valueBits)));
  const offsets = column.offsets;
  let r0 = 0;
  let v0 = 0;
  do {
    let r1: number;
    let v1: number;
    if (column.kind === BYTE_ARRAY && !useDictionary) {
      // walk the rows until the values reach the page size
      const defs = column.defs;
      const nullable = column.nullable;
      r1 = r0;
      v1 = v0;
      const limit = offsets[v0]! + PAGE_BYTES;
      while (r1 < rows && (offsets[v1]! < limit || r1 === r0)) {
        if (!nullable || defs[r1] === 1) v1++;
        r1++;
      }
    } else {
      r1 = Math.min(rows, r0 + rowsPerPage);
      v1 = r1 === rows ? count : v0 + valuesIn(column, r0, r1);
    }

    page.pos = 0;
    if (column.nullable) {
      const lengthAt = page.pos;
      page.ensure(4);
      page.pos += 4;
      writeHybrid(page, column.defs, r0, r1, 1);
      const length = page.pos - lengthAt - 4;
      const buf = page.buf;
      buf[lengthAt] = length;
      buf[lengthAt + 1] = length >>> 8;
      buf[lengthAt + 2] = length >>> 16;
      buf[lengthAt + 3] = length >>> 24;
    }
    if (useDictionary) {
      page.ensure(1)[page.pos++] = bitWidth;
      writeHybrid(page, column.indices, v0, v1, bitWidth);
    } else {
      writePlain(page, column, v0, v1);
    }
    uncompressed += emitPage(writer, {
      type: 'DATA_PAGE',
      data_page_header: {
        num_values: r1 - r0,
        encoding,
        definition_level_encoding: 'RLE',
        repetition_level_encoding: 'RLE',
      },
    });
    pages++;
    r0 = r1;
    v0 = v1;
  } while (r0 < rows);

  const encodings: Encoding[] = useDictionary
    ? ['PLAIN', 'RLE', 'RLE_DICTIONARY']
    : column.nullable
      ? ['PLAIN', 'RLE']
      : ['PLAIN'];
  const encodingStats: ColumnMetaData['encoding_stats'] = [];
  if (useDictionary) encodingStats.push({ page_type: 'DICTIONARY_PAGE', encoding: 'PLAIN', count: 1 });
  encodingStats.push({ page_type: 'DATA_PAGE', encoding, count: pages });
  const element = column.spec.element;
  return {
    file_offset: BigInt(chunkStart),
    meta_data: {
      type: element.type!,
      encodings,
      path_in_schema: [element.name],
      codec: 'SNAPPY',
      num_values: BigInt(rows),
      total_uncompressed_size: BigInt(uncompressed),
      total_compressed_size: BigInt(writer.offset - chunkStart),
      data_page_offset: dataPageOffset,
      dictionary_page_offset: dictionaryPageOffset,
      statistics: column.statistics(),
      encoding_stats: encodingStats,
    },
  };
}
