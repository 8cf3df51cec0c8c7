import { WharfError } from '../core/errors.js';
import type { CopyRecord } from './writers/file-format.js';

const NL = 0x0a;
const QUOTE = 0x22;
const COMMA = 0x2c;

/**
 * One record of PostgreSQL CSV COPY output. `raw` is usually a view into the chunk it arrived in
 * (no copy); fields are decoded only when asked for.
 */
export class CsvRecord implements CopyRecord {
  readonly raw: Buffer;
  readonly account: string;
  /** `raw` decoded, kept once asked for (the exporter calls `head`, then the writer `fields`). */
  #line: string | undefined;

  constructor(raw: Buffer, account: string) {
    this.raw = raw;
    this.account = account;
  }

  fields(): (string | null)[] {
    return decodeLine((this.#line ??= this.raw.toString('utf8')), Number.POSITIVE_INFINITY);
  }

  head(n: number): (string | null)[] {
    return decodeLine((this.#line ??= this.raw.toString('utf8')), n);
  }
}

/**
 * Records of COPY output, back to back in `bytes`: record i runs from `i === 0 ? start : ends[i - 1]` to
 * `ends[i]` (after its `\n`). `bytes` is usually the chunk the records arrived in (no copy).
 */
export interface CopyBatch {
  readonly bytes: Buffer;
  readonly start: number;
  readonly ends: Int32Array;
  readonly count: number;
}

/**
 * Splits PostgreSQL `COPY … TO STDOUT (FORMAT csv)` output (no header) into records, one batch per input
 * chunk (empty batches are skipped), without an object per record. A record may span chunks (it then comes
 * alone in a batch of its own bytes); quoted fields may hold `\n`, `\r`, `,` and doubled `"`.
 */
export async function* readCopyBatches(source: AsyncIterable<Buffer>): AsyncGenerator<CopyBatch> {
  /** Pieces of a record that started in an earlier chunk, all scanned already. */
  let carry: Buffer[] = [];
  let carryBytes = 0;
  let inQuote = false;
  let ends = new Int32Array(1024);

  for await (const input of source) {
    const chunk = typeof input === 'string' ? Buffer.from(input) : input;
    if (chunk.length === 0) continue;
    let count = 0;
    let first = 0; // where the first record wholly in `chunk` starts
    let start = 0; // where the current record starts in `chunk` (0 when it started in `carry`)
    let p = 0; // scan position
    // position of the next quote at or after `p`, or chunk.length when there is none
    let nextQuote = -1;
    const len = chunk.length;

    for (;;) {
      if (inQuote) {
        const q = chunk.indexOf(QUOTE, p);
        if (q < 0) {
          p = len;
          break;
        }
        inQuote = false;
        p = q + 1;
        continue;
      }
      const nl = chunk.indexOf(NL, p);
      if (nextQuote < p) {
        nextQuote = chunk.indexOf(QUOTE, p);
        if (nextQuote < 0) nextQuote = len;
      }
      if (nl < 0) {
        if (nextQuote < len) {
          inQuote = true;
          p = nextQuote + 1;
          continue;
        }
        p = len;
        break;
      }
      if (nextQuote < nl) {
        inQuote = true;
        p = nextQuote + 1;
        continue;
      }
      // a record ends at `nl`
      if (carryBytes > 0) {
        carry.push(chunk.subarray(0, nl + 1));
        const joined = Buffer.concat(carry, carryBytes + nl + 1);
        carry = [];
        carryBytes = 0;
        yield { bytes: joined, start: 0, ends: Int32Array.of(joined.length), count: 1 };
        first = nl + 1;
      } else {
        if (count === ends.length) {
          const grown = new Int32Array(ends.length * 2);
          grown.set(ends);
          ends = grown;
        }
        ends[count++] = nl + 1;
      }
      start = p = nl + 1;
      if (p >= len) break;
    }

    if (start < len) {
      carry.push(chunk.subarray(start));
      carryBytes += len - start;
    }
    if (count > 0) {
      yield { bytes: chunk, start: first, ends: ends.slice(0, count), count };
    }
  }

  if (carryBytes > 0) {
    throw new WharfError(`COPY output ended inside a record (${carryBytes} bytes without a final newline)`, {
      kind: 'transient',
      hint: 'the connection to the source was probably cut; run the export again',
    });
  }
}

/**
 * The same split as {@link readCopyBatches}, one `CopyRecord` per record (one array per input chunk).
 *
 * @example
 * for await (const batch of readCopyRecords(client.query(copyTo(sql)))) {
 *   for (const record of batch) sink.write(record);
 * }
 */
export async function* readCopyRecords(source: AsyncIterable<Buffer>): AsyncGenerator<CopyRecord[]> {
  const accounts = new AccountReader();
  for await (const batch of readCopyBatches(source)) {
    const out: CopyRecord[] = new Array(batch.count);
    let s = batch.start;
    for (let i = 0; i < batch.count; i++) {
      const e = batch.ends[i]!;
      out[i] = new CsvRecord(batch.bytes.subarray(s, e), accounts.read(batch.bytes, s, e));
      s = e;
    }
    yield out;
  }
}

/**
 * Reads the first field's text: the tenant column (never NULL in practice; NULL reads as ''). Records come
 * sorted by tenant, so the previous record's text is reused while the bytes are the same.
 */
export class AccountReader {
  #bytes: Buffer = Buffer.alloc(0);
  #text: string | undefined;

  /** The first field of the record at `bytes[start, end)`. */
  read(bytes: Buffer, start: number, end: number): string {
    if (bytes[start] === QUOTE) {
      this.#text = undefined;
      return decodeFields(bytes.subarray(start, end), 1)[0] ?? '';
    }
    let stop = bytes.indexOf(COMMA, start);
    if (stop < 0 || stop >= end) stop = end - 1;
    const length = stop - start;
    const last = this.#bytes;
    if (this.#text !== undefined && length === last.length) {
      let same = true;
      for (let i = 0; i < length; i++) {
        if (bytes[start + i] !== last[i]) {
          same = false;
          break;
        }
      }
      if (same) return this.#text;
    }
    this.#bytes = Buffer.from(bytes.subarray(start, stop));
    this.#text = bytes.toString('utf8', start, stop);
    return this.#text;
  }
}

/**
 * Decodes up to `n` fields of one record (`raw` ends with `\n`). Unquoted empty → null, `""` → ''.
 * The record is decoded to a string once and cut there: one native call instead of one per field.
 */
export function decodeFields(raw: Buffer, n: number): (string | null)[] {
  return decodeLine(raw.toString('utf8'), n);
}

function decodeLine(line: string, n: number): (string | null)[] {
  const fields: (string | null)[] = [];
  const end = line.length - 1; // the final '\n'
  let p = 0;
  while (fields.length < n) {
    if (line.charCodeAt(p) === QUOTE) {
      // quoted: runs until a quote that is not doubled
      let q = line.indexOf('"', p + 1);
      if (q < 0 || q >= end) throw malformed(line);
      if (line.charCodeAt(q + 1) !== QUOTE) {
        fields.push(line.slice(p + 1, q));
        p = q + 1;
      } else {
        let text = '';
        let from = p + 1;
        for (;;) {
          if (line.charCodeAt(q + 1) === QUOTE) {
            text += line.slice(from, q + 1);
            from = q + 2;
            q = line.indexOf('"', from);
            if (q < 0 || q >= end) throw malformed(line);
            continue;
          }
          text += line.slice(from, q);
          p = q + 1;
          break;
        }
        fields.push(text);
      }
    } else {
      let comma = line.indexOf(',', p);
      if (comma < 0 || comma > end) comma = end;
      fields.push(comma === p ? null : line.slice(p, comma));
      p = comma;
    }
    if (p >= end) break;
    if (line.charCodeAt(p) !== COMMA) throw malformed(line);
    p++;
    if (p === end) {
      // a trailing comma: the last field is an unquoted empty one
      if (fields.length < n) fields.push(null);
      break;
    }
  }
  return fields;
}

function malformed(line: string): WharfError {
  return new WharfError(`malformed CSV record in COPY output: ${JSON.stringify(line.slice(0, 200))}`, {
    kind: 'terminal',
  });
}
