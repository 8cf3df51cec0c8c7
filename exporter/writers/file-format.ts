import type { Writable } from 'node:stream';
import type { Column, Stream } from '../../catalog/types.js';

export type FormatName = 'csv' | 'parquet' | 'json';

/**
 * The text a writer reads in each field: `select` is what the format's own `selectExpression` makes PostgreSQL
 * print (the export), `staged` is PostgreSQL's plain output of the column, as csv.gz staging files hold it
 * (timestamps `2026-11-23 09:20:00.123456+00`, dates `2026-11-23`): bucket delivery converts those.
 */
export type InputForm = 'select' | 'staged';

/**
 * One record of PostgreSQL's `COPY … TO STDOUT (FORMAT csv)` output.
 * `raw` is the record's bytes including its final `\n`. Decoded fields: a field that was unquoted
 * and empty is SQL NULL → `null`; `""` is the empty string.
 */
export interface CopyRecord {
  readonly raw: Buffer;
  /** The first field's text (the exporter always selects the tenant column first). */
  readonly account: string;
  /** All fields, decoded. */
  fields(): (string | null)[];
  /** The first `n` fields only, decoded (cheaper than `fields()`). */
  head(n: number): (string | null)[];
}

/** Writes the rows of one file. */
export interface RowSink {
  /** Adds one record; when it returns a promise, wait for it before the next write. */
  write(record: CopyRecord): undefined | Promise<void>;
  /**
   * Adds the records at `bytes[start, end)`, back to back as COPY printed them. Formats whose files hold COPY's
   * own text (csv) implement it; the exporter then skips the per-record objects.
   */
  writeRange?(bytes: Buffer, start: number, end: number): undefined | Promise<void>;
  /** Flushes everything and ends the output stream; resolves once the output has finished. */
  end(): Promise<void>;
}

/**
 * A file format. It decides how each column is selected in the source's COPY (so that the text
 * PostgreSQL prints is what the format wants), and how records become bytes.
 */
export interface FileFormat {
  readonly name: FormatName;
  /** File name extension without the dot: `csv.gz`, `parquet`, `ndjson.gz`. */
  readonly extension: string;
  /** SQL expression selecting `column` (its quoted name is `quoted`) for COPY; must keep NULL as NULL. */
  selectExpression(column: Column, quoted: string): string;
  /** Starts a file of `stream` rows written to `out` (already created; the sink must end it). */
  open(stream: Stream, out: Writable): RowSink;
}
