import type { Writable } from 'node:stream';
import type { Column, Stream } from '../../catalog/types.js';
import { GzipOutput } from '../../staging/gzip-output.js';
import type { CopyRecord, FileFormat, ObjectSink, PartRange, RowSink } from './file-format.js';
import { GzipMembers } from './gzip-members.js';

/** The header line: the column names, quoted as CSV where needed. */
function headerLine(stream: Stream): string {
  return `${stream.columns.map((c) => csvField(c.name)).join(',')}\n`;
}

/** One CSV field as PostgreSQL writes it: quoted only when it has to be. */
export function csvField(text: string): string {
  return /[",\r\n]/.test(text) || text === '' || text === '\\.' ? `"${text.replaceAll('"', '""')}"` : text;
}

class CsvGzSink implements RowSink {
  readonly #gzip: GzipOutput;

  constructor(stream: Stream, out: Writable) {
    this.#gzip = new GzipOutput(out);
    this.#gzip.writeText(headerLine(stream));
  }

  write(record: CopyRecord): undefined | Promise<void> {
    return this.#gzip.writeBytes(record.raw);
  }

  writeRange(bytes: Buffer, start: number, end: number): undefined | Promise<void> {
    return this.#gzip.writeBytes(bytes.subarray(start, end));
  }

  end(): Promise<void> {
    return this.#gzip.end();
  }
}

/** One gzip member per part, each with the header line: every part reads as a csv.gz file of its own. */
class CsvGzObjectSink implements ObjectSink {
  readonly #members: GzipMembers;
  readonly #header: string;

  constructor(stream: Stream, out: Writable) {
    this.#members = new GzipMembers(out);
    this.#header = headerLine(stream);
  }

  beginPart(): undefined | Promise<void> {
    const wait = this.#members.begin();
    this.#members.writeText(this.#header);
    return wait;
  }

  write(record: CopyRecord): undefined | Promise<void> {
    return this.#members.writeBytes(record.raw);
  }

  writeRange(bytes: Buffer, start: number, end: number): undefined | Promise<void> {
    return this.#members.writeBytes(bytes.subarray(start, end));
  }

  end(): Promise<readonly PartRange[]> {
    return this.#members.end();
  }
}

/**
 * `csv.gz`: a header line of column names, then PostgreSQL's CSV records byte for byte (NULL is an
 * unquoted empty field, '' is `""`), gzip level 1. Values are PostgreSQL's text output under the
 * exporter's session settings (UTC, ISO dates); see docs/formats.md.
 */
export const csvGzFormat: FileFormat = {
  name: 'csv',
  extension: 'csv.gz',
  selectExpression(_column: Column, quoted: string): string {
    return quoted;
  },
  open(stream: Stream, out: Writable): RowSink {
    return new CsvGzSink(stream, out);
  },
  openObject(stream: Stream, out: Writable): ObjectSink {
    return new CsvGzObjectSink(stream, out);
  },
};
