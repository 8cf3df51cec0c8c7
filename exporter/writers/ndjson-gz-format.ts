import type { Writable } from 'node:stream';
import type { Column, LogicalType, Stream } from '../../catalog/types.js';
import { WharfError } from '../../core/errors.js';
import type { CopyRecord, FileFormat, ObjectSink, PartRange, RowSink } from './file-format.js';
import { GzipMembers } from './gzip-members.js';
import { GzipOutput } from './gzip-output.js';

/** Turns a field's text (never NULL) into a JSON value. */
type JsonEncoder = (text: string) => string;

const asString: JsonEncoder = (text) => JSON.stringify(text);

/** Digits and a sign only: no escaping needed. */
const asNumericString: JsonEncoder = (text) => `"${text}"`;

/**
 * PostgreSQL `timestamp` text in the ISO DateStyle (`2026-11-23 09:20:00.1234`) → ISO-8601 UTC with
 * six fraction digits (`2026-11-23T09:20:00.123400Z`). `infinity`, `-infinity` and BC dates stay
 * PostgreSQL's own text.
 */
export function isoTimestamp(text: string): string {
  const space = text.indexOf(' ');
  if (space < 10 || text.length - space < 9 || text.endsWith(' BC')) return text;
  const time = text.slice(space + 1);
  return `${text.slice(0, space)}T${time.length === 8 ? `${time}.000000` : time.padEnd(15, '0')}Z`;
}

const encoders: Record<LogicalType, JsonEncoder> = {
  bigint: asNumericString,
  numeric: asNumericString,
  text: asString,
  char: asString,
  uuid: asNumericString,
  date: asNumericString,
  jsonb: asString,
  boolean: (text) => (text === 't' ? 'true' : 'false'),
  timestamptz: (text) => `"${isoTimestamp(text)}"`,
};

/** Turns records of a stream into JSON lines. */
class JsonLines {
  readonly #prefixes: readonly string[];
  readonly #encoders: readonly JsonEncoder[];

  constructor(stream: Stream) {
    this.#prefixes = stream.columns.map((c, i) => `${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:`);
    this.#encoders = stream.columns.map((c) => encoders[c.type]);
  }

  line(record: CopyRecord): string {
    const fields = record.fields();
    const prefixes = this.#prefixes;
    const encoders = this.#encoders;
    if (fields.length !== prefixes.length) throw columnMismatch(fields.length, prefixes.length);
    let line = '';
    for (let i = 0; i < fields.length; i++) {
      const text = fields[i]!;
      line += prefixes[i]! + (text === null ? 'null' : encoders[i]!(text));
    }
    return `${line}}\n`;
  }
}

class NdjsonGzSink implements RowSink {
  readonly #gzip: GzipOutput;
  readonly #lines: JsonLines;

  constructor(stream: Stream, out: Writable) {
    this.#gzip = new GzipOutput(out);
    this.#lines = new JsonLines(stream);
  }

  write(record: CopyRecord): undefined | Promise<void> {
    return this.#gzip.writeText(this.#lines.line(record));
  }

  end(): Promise<void> {
    return this.#gzip.end();
  }
}

/** One gzip member per part: every part reads as an ndjson.gz file of its own. */
class NdjsonGzObjectSink implements ObjectSink {
  readonly #members: GzipMembers;
  readonly #lines: JsonLines;

  constructor(stream: Stream, out: Writable) {
    this.#members = new GzipMembers(out);
    this.#lines = new JsonLines(stream);
  }

  beginPart(): undefined | Promise<void> {
    return this.#members.begin();
  }

  write(record: CopyRecord): undefined | Promise<void> {
    return this.#members.writeText(this.#lines.line(record));
  }

  end(): Promise<readonly PartRange[]> {
    return this.#members.end();
  }
}

function columnMismatch(got: number, expected: number): WharfError {
  return new WharfError(`COPY record has ${got} fields, the stream has ${expected} columns`);
}

/**
 * `ndjson.gz`: one JSON object per line, keys in column order, gzip level 1. bigint and numeric are
 * strings (exact), timestamptz is ISO-8601 UTC with microseconds, jsonb is its text in a string (so
 * SQL NULL `null` and JSON `"null"` differ), NULL is `null`.
 */
export const ndjsonGzFormat: FileFormat = {
  name: 'json',
  extension: 'ndjson.gz',
  selectExpression(column: Column, quoted: string): string {
    // the timestamp in UTC whatever the session's TimeZone; JS only pads and reshapes it
    return column.type === 'timestamptz' ? `(${quoted} at time zone 'UTC')` : quoted;
  },
  open(stream: Stream, out: Writable): RowSink {
    return new NdjsonGzSink(stream, out);
  },
  openObject(stream: Stream, out: Writable): ObjectSink {
    return new NdjsonGzObjectSink(stream, out);
  },
};
