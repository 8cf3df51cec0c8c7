import type { Writable } from 'node:stream';
import type { Column, LogicalType, Stream } from '../../catalog/types.js';
import { WharfError } from '../../core/errors.js';
import { GzipOutput } from '../../staging/gzip-output.js';
import type { CopyRecord, FileFormat, InputForm, ObjectSink, PartRange, RowSink } from './file-format.js';
import { GzipMembers } from './gzip-members.js';

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

/**
 * PostgreSQL `timestamptz` text in UTC (`2026-11-23 09:20:00.1234+00`, `0044-03-15 12:00:00+00 BC`) → the
 * `timestamp` text `c at time zone 'UTC'` prints (`2026-11-23 09:20:00.1234`, `0044-03-15 12:00:00 BC`).
 */
export function utcTimestampText(text: string): string {
  if (text.endsWith('+00')) return text.slice(0, -3);
  if (text.endsWith('+00 BC')) return `${text.slice(0, -6)} BC`;
  return text;
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

/** The encoders of fields in the staged text form: only timestamptz differs (its `+00` is dropped). */
const stagedEncoders: Record<LogicalType, JsonEncoder> = {
  ...encoders,
  timestamptz: (text) => `"${isoTimestamp(utcTimestampText(text))}"`,
};

/** Turns records of a stream into JSON lines. */
class JsonLines {
  readonly #prefixes: readonly string[];
  readonly #encoders: readonly JsonEncoder[];

  constructor(stream: Stream, input: InputForm) {
    this.#prefixes = stream.columns.map((c, i) => `${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:`);
    const byType = input === 'staged' ? stagedEncoders : encoders;
    this.#encoders = stream.columns.map((c) => byType[c.type]);
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

  constructor(stream: Stream, out: Writable, input: InputForm) {
    this.#gzip = new GzipOutput(out);
    this.#lines = new JsonLines(stream, input);
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

  constructor(stream: Stream, out: Writable, input: InputForm) {
    this.#members = new GzipMembers(out);
    this.#lines = new JsonLines(stream, input);
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

/** How the ndjson.gz writer reads its input. */
export interface NdjsonGzFormatConfig {
  /** `select` (default): the text this format's `selectExpression` gives; `staged`: csv.gz staging text. */
  readonly input?: InputForm;
}

/** An ndjson.gz format reading the given input form (the staged form selects plain columns). */
export function createNdjsonGzFormat(config: NdjsonGzFormatConfig = {}): FileFormat {
  const input = config.input ?? 'select';
  return {
    name: 'json',
    extension: 'ndjson.gz',
    selectExpression(column: Column, quoted: string): string {
      // the timestamp in UTC whatever the session's TimeZone; JS only pads and reshapes it
      return input === 'select' && column.type === 'timestamptz' ? `(${quoted} at time zone 'UTC')` : quoted;
    },
    open(stream: Stream, out: Writable): RowSink {
      return new NdjsonGzSink(stream, out, input);
    },
    openObject(stream: Stream, out: Writable): ObjectSink {
      return new NdjsonGzObjectSink(stream, out, input);
    },
  };
}

/**
 * `ndjson.gz`: one JSON object per line, keys in column order, gzip level 1. bigint and numeric are
 * strings (exact), timestamptz is ISO-8601 UTC with microseconds, jsonb is its text in a string (so
 * SQL NULL `null` and JSON `"null"` differ), NULL is `null`.
 */
export const ndjsonGzFormat: FileFormat = createNdjsonGzFormat();
