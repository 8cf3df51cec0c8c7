import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { SchemaElement } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { Column, Stream } from '../../catalog/types.js';
import { WharfError } from '../../core/errors.js';
import type { CopyRecord, FileFormat, RowSink } from './file-format.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** `created_by` in every file: fixed, so the same rows give the same bytes. */
export const PARQUET_CREATED_BY = `wharf ${VERSION}`;

/** How the parquet writer buffers rows: a row group is written when either limit is reached. */
export interface ParquetFormatConfig {
  /** Rows per row group (default 32,768: keeps a 1M-row window under 300 MB of memory). */
  readonly rowGroupRows?: number;
  /** Bytes of COPY text per row group (default 8 MiB): bounds memory for wide rows. */
  readonly rowGroupBytes?: number;
}

type Converter = (text: string) => unknown;

/** How values wait for their row group: typed arrays for required integers (less for GC to trace). */
type Buffering = 'int64' | 'int32' | 'values';

/** How one column is selected, converted and described in the file. */
interface ParquetColumn {
  readonly name: string;
  readonly convert: Converter;
  readonly buffering: Buffering;
  /** The schema element written to the file. */
  readonly element: SchemaElement;
  /** The element the column chunks are encoded with, when it differs (jsonb: raw bytes). */
  readonly encodeAs?: SchemaElement;
  readonly statistics: boolean;
}

/**
 * Decimal text (`-12.3400`, `5`, `.5`) → the unscaled integer at `scale` (`-123400n`), by string
 * manipulation only, never through a float. More fraction digits than `scale` is an error.
 */
export function unscaledDecimal(text: string, scale: number): bigint {
  const dot = text.indexOf('.');
  let whole = dot < 0 ? text : text.slice(0, dot);
  let fraction = dot < 0 ? '' : text.slice(dot + 1);
  if (fraction.length > scale) {
    const extra = fraction.slice(scale);
    if (!/^0*$/.test(extra)) {
      throw new WharfError(`numeric value ${text} has more than ${scale} decimal places`, {
        kind: 'terminal',
      });
    }
    fraction = fraction.slice(0, scale);
  }
  if (whole === '' || whole === '-' || whole === '+') whole += '0';
  if (!/^[-+]?\d+$/.test(whole) || !/^\d*$/.test(fraction)) {
    throw new WharfError(`numeric value ${text} cannot be written as a Parquet DECIMAL`, {
      kind: 'terminal',
      hint: 'NaN and infinity have no DECIMAL representation; use the csv or json format for this data',
    });
  }
  return BigInt(whole + fraction.padEnd(scale, '0'));
}

/** `0190b3e4-…` → its 16 bytes. */
export function uuidBytes(text: string): Buffer {
  return Buffer.from(
    text.length === 36
      ? text.slice(0, 8) + text.slice(9, 13) + text.slice(14, 18) + text.slice(19, 23) + text.slice(24)
      : text.replaceAll('-', ''),
    'hex',
  );
}

function parquetColumn(column: Column): ParquetColumn {
  const base = {
    name: column.name,
    repetition_type: column.nullable ? ('OPTIONAL' as const) : ('REQUIRED' as const),
  };
  const plain = (convert: Converter, element: Omit<SchemaElement, 'name'>): ParquetColumn => ({
    name: column.name,
    convert,
    buffering: column.nullable
      ? 'values'
      : element.type === 'INT64'
        ? 'int64'
        : element.type === 'INT32'
          ? 'int32'
          : 'values',
    element: { ...base, ...element },
    // min/max of free text (user agents, URLs) cost time and help no reader skip anything
    statistics: column.type !== 'text',
  });
  switch (column.type) {
    case 'bigint':
      return plain(BigInt, { type: 'INT64' });
    case 'numeric': {
      const { precision, scale } = column;
      if (precision === undefined || scale === undefined || precision > 18) {
        // no fixed precision/scale that fits INT64: keep the exact decimal text
        return plain(String, {
          type: 'BYTE_ARRAY',
          converted_type: 'UTF8',
          logical_type: { type: 'STRING' },
        });
      }
      return plain((text) => unscaledDecimal(text, scale), {
        type: 'INT64',
        converted_type: 'DECIMAL',
        scale,
        precision,
        logical_type: { type: 'DECIMAL', scale, precision },
      });
    }
    case 'timestamptz':
      return plain(BigInt, {
        type: 'INT64',
        converted_type: 'TIMESTAMP_MICROS',
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
      });
    case 'date':
      return plain(Number, { type: 'INT32', converted_type: 'DATE', logical_type: { type: 'DATE' } });
    case 'uuid':
      return plain(uuidBytes, {
        type: 'FIXED_LEN_BYTE_ARRAY',
        type_length: 16,
        logical_type: { type: 'UUID' },
      });
    case 'boolean':
      return plain((text) => text === 't', { type: 'BOOLEAN' });
    case 'jsonb':
      // encoded as plain bytes (the writer would re-serialize a JSON column), described as JSON
      return {
        name: column.name,
        convert: (text) => Buffer.from(text, 'utf8'),
        buffering: 'values',
        element: { ...base, type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' } },
        encodeAs: { ...base, type: 'BYTE_ARRAY' },
        statistics: false,
      };
    case 'text':
    case 'char':
      return plain(String, { type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' } });
  }
}

/** The values of one column for the row group being gathered; reused from one row group to the next. */
class ColumnBuffer {
  readonly #column: ParquetColumn;
  #values: unknown[] | BigInt64Array | Int32Array;
  #length = 0;

  constructor(column: ParquetColumn) {
    this.#column = column;
    this.#values = this.#allocate(1024);
  }

  push(text: string | null): void {
    const value = text === null ? null : this.#column.convert(text);
    if (this.#length === this.#values.length && !Array.isArray(this.#values)) {
      const grown = this.#allocate(this.#length * 2);
      (grown as BigInt64Array).set(this.#values as BigInt64Array);
      this.#values = grown;
    }
    (this.#values as unknown[])[this.#length++] = value;
  }

  /** The gathered values; valid until the next `push` (the writer encodes them at once). */
  take(): unknown[] | BigInt64Array | Int32Array {
    const length = this.#length;
    this.#length = 0;
    if (Array.isArray(this.#values)) {
      const values = this.#values;
      values.length = length;
      this.#values = [];
      return values;
    }
    return this.#values.subarray(0, length);
  }

  #allocate(size: number): unknown[] | BigInt64Array | Int32Array {
    if (this.#column.buffering === 'int64') return new BigInt64Array(size);
    if (this.#column.buffering === 'int32') return new Int32Array(size);
    return [];
  }
}

function selectExpression(column: Column, quoted: string): string {
  switch (column.type) {
    case 'timestamptz':
      return `(extract(epoch from ${quoted}) * 1000000)::bigint`;
    case 'date':
      return `(${quoted} - date '1970-01-01')`;
    default:
      return quoted;
  }
}

/** A hyparquet `Writer` that hands what it has to `out` after each row group and at the end. */
class StreamWriter extends ByteWriter {
  readonly #out: Writable;

  constructor(out: Writable) {
    super(64 * 1024);
    this.#out = out;
  }

  flush(): undefined | Promise<void> {
    if (this.index === 0) return undefined;
    const bytes = Buffer.from(this.buffer.slice(0, this.index));
    this.index = 0;
    if (this.#out.write(bytes)) return undefined;
    return waitForDrain(this.#out);
  }

  override finish(): void {
    // the sink flushes and ends `out` itself (finish() cannot be awaited by hyparquet)
  }
}

function waitForDrain(out: Writable): Promise<void> {
  if (out.destroyed) return Promise.reject(out.errored ?? new Error('output stream destroyed'));
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      out.off('error', onError);
      resolve();
    };
    const onError = (error: Error) => {
      out.off('drain', onDrain);
      reject(error);
    };
    out.once('drain', onDrain);
    out.once('error', onError);
  });
}

class ParquetSink implements RowSink {
  readonly #out: Writable;
  readonly #writer: StreamWriter;
  readonly #parquet: ParquetWriter;
  readonly #columns: readonly ParquetColumn[];
  readonly #fileSchema: SchemaElement[];
  readonly #rowGroupRows: number;
  readonly #rowGroupBytes: number;
  readonly #buffers: readonly ColumnBuffer[];
  #rows = 0;
  #bytes = 0;

  constructor(stream: Stream, out: Writable, config: ParquetFormatConfig) {
    this.#out = out;
    this.#columns = stream.columns.map(parquetColumn);
    this.#rowGroupRows = config.rowGroupRows ?? 32_768;
    this.#rowGroupBytes = config.rowGroupBytes ?? 8 * 1024 * 1024;
    const root: SchemaElement = { name: 'schema', num_children: this.#columns.length };
    this.#fileSchema = [root, ...this.#columns.map((c) => c.element)];
    this.#writer = new StreamWriter(out);
    this.#parquet = new ParquetWriter({
      writer: this.#writer,
      schema: [root, ...this.#columns.map((c) => c.encodeAs ?? c.element)],
      codec: 'SNAPPY',
      createdBy: PARQUET_CREATED_BY,
    });
    this.#buffers = this.#columns.map((c) => new ColumnBuffer(c));
  }

  write(record: CopyRecord): undefined | Promise<void> {
    const fields = record.fields();
    const columns = this.#columns;
    if (fields.length !== columns.length) {
      throw new WharfError(
        `COPY record has ${fields.length} fields, the stream has ${columns.length} columns`,
      );
    }
    const buffers = this.#buffers;
    for (let i = 0; i < fields.length; i++) buffers[i]!.push(fields[i] ?? null);
    this.#rows++;
    this.#bytes += record.raw.length;
    if (this.#rows >= this.#rowGroupRows || this.#bytes >= this.#rowGroupBytes) return this.#writeRowGroup();
    return undefined;
  }

  async end(): Promise<void> {
    try {
      await this.#writeRowGroup();
      // the footer describes jsonb columns as JSON (their chunks were encoded as plain bytes)
      this.#parquet.schema = this.#fileSchema;
      this.#parquet.finish();
      await this.#writer.flush();
      this.#out.end();
      await finished(this.#out, { readable: false });
    } catch (error) {
      this.#out.destroy(error as Error);
      throw error;
    }
  }

  #writeRowGroup(): undefined | Promise<void> {
    if (this.#rows === 0) return undefined;
    const columnData = this.#columns.map((c, i) => ({
      name: c.name,
      data: this.#buffers[i]!.take(),
      statistics: c.statistics,
    }));
    const rows = this.#rows;
    this.#rows = 0;
    this.#bytes = 0;
    // biome-ignore lint/suspicious/noExplicitAny: hyparquet's DecodedArray is a union of typed arrays and any[]
    return this.#parquet.write({ columnData: columnData as any, rowGroupSize: rows }) ?? undefined;
  }
}

/** A parquet format with its own row-group limits. */
export function createParquetFormat(config: ParquetFormatConfig = {}): FileFormat {
  return {
    name: 'parquet',
    extension: 'parquet',
    selectExpression,
    open(stream: Stream, out: Writable): RowSink {
      return new ParquetSink(stream, out, config);
    },
  };
}

/**
 * `parquet`: typed columns (INT64, DECIMAL(18,4) as INT64, TIMESTAMP micros UTC, DATE, UUID, BOOLEAN,
 * JSON, UTF8 strings), snappy, one row group per 100,000 rows or 16 MiB of COPY text, so memory stays
 * flat. PostgreSQL turns timestamps into epoch microseconds and dates into day numbers.
 */
export const parquetFormat: FileFormat = createParquetFormat();
