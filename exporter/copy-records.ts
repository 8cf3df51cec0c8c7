import { WharfError } from '../core/errors.js';
import type { CopyRecord } from './writers/file-format.js';

const NL = 0x0a;
const QUOTE = 0x22;
const COMMA = 0x2c;

/**
 * One record of PostgreSQL CSV COPY output. `raw` is usually a view into the chunk it arrived in
 * (no copy); fields are decoded only when asked for.
 */
class CsvRecord implements CopyRecord {
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
 * Splits PostgreSQL `COPY … TO STDOUT (FORMAT csv)` output (no header) into records. Yields one
 * array of records per input chunk (empty arrays are skipped), so the per-record overhead stays low.
 * A record may span chunks; quoted fields may hold `\n`, `\r`, `,` and doubled `"`.
 *
 * @example
 * for await (const batch of readCopyRecords(client.query(copyTo(sql)))) {
 *   for (const record of batch) sink.write(record);
 * }
 */
export async function* readCopyRecords(source: AsyncIterable<Buffer>): AsyncGenerator<CopyRecord[]> {
  /** Pieces of a record that started in an earlier chunk, all scanned already. */
  let carry: Buffer[] = [];
  let carryBytes = 0;
  let inQuote = false;
  const account = new AccountReader();

  for await (const input of source) {
    const chunk = typeof input === 'string' ? Buffer.from(input) : input;
    if (chunk.length === 0) continue;
    const out: CopyRecord[] = [];
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
      let raw: Buffer;
      if (carryBytes > 0) {
        carry.push(chunk.subarray(0, nl + 1));
        raw = Buffer.concat(carry, carryBytes + nl + 1);
        carry = [];
        carryBytes = 0;
      } else {
        raw = chunk.subarray(start, nl + 1);
      }
      out.push(new CsvRecord(raw, account.read(raw)));
      start = p = nl + 1;
      if (p >= len) break;
    }

    if (start < len) {
      carry.push(chunk.subarray(start));
      carryBytes += len - start;
    }
    if (out.length > 0) yield out;
  }

  if (carryBytes > 0) {
    throw new WharfError(`COPY output ended inside a record (${carryBytes} bytes without a final newline)`, {
      kind: 'transient',
      hint: 'the connection to the source was probably cut; run the export again',
    });
  }
}

/**
 * Reads the first field's text: the tenant column (never NULL in practice; NULL reads as ''). Records come
 * sorted by tenant, so the previous record's text is reused while the bytes are the same.
 */
class AccountReader {
  #bytes: Buffer = Buffer.alloc(0);
  #text: string | undefined;

  read(raw: Buffer): string {
    if (raw[0] === QUOTE) {
      this.#text = undefined;
      return decodeFields(raw, 1)[0] ?? '';
    }
    let end = raw.indexOf(COMMA);
    if (end < 0) end = raw.length - 1;
    const last = this.#bytes;
    if (this.#text !== undefined && end === last.length) {
      let same = true;
      for (let i = 0; i < end; i++) {
        if (raw[i] !== last[i]) {
          same = false;
          break;
        }
      }
      if (same) return this.#text;
    }
    this.#bytes = Buffer.from(raw.subarray(0, end));
    this.#text = raw.toString('utf8', 0, end);
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
