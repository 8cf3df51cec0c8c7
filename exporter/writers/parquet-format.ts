import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { FileMetaData, RowGroup, SchemaElement } from 'hyparquet';
import { ByteWriter } from 'hyparquet-writer/src/bytewriter.js';
import { writeMetadata } from 'hyparquet-writer/src/metadata.js';
import type { Column, Stream } from '../../catalog/types.js';
import { WharfError } from '../../core/errors.js';
import { WHARF_VERSION } from '../../core/version.js';
import { waitForDrain } from '../../staging/drain.js';
import { concatenatedParts } from './concatenated-parts.js';
import type { CopyRecord, FileFormat, InputForm, ObjectSink, RowSink } from './file-format.js';
import { ColumnBuffer, columnSpec } from './parquet/columns.js';
import { writeColumnChunk } from './parquet/encoding.js';

export { unscaledDecimal, uuidBytes } from './parquet/values.js';

/** `created_by` in every file: fixed, so the same rows give the same bytes. */
export const PARQUET_CREATED_BY = `wharf ${WHARF_VERSION}`;

/** How the parquet writer buffers rows: a row group is written when either limit is reached. */
export interface ParquetFormatConfig {
  /** Rows per row group (default 65,536). */
  readonly rowGroupRows?: number;
  /** Bytes of COPY text per row group (default 16 MiB): bounds memory for wide rows. */
  readonly rowGroupBytes?: number;
  /**
   * `select` (default): fields as this format's `selectExpression` prints them (epoch microseconds, day
   * numbers); `staged`: PostgreSQL's plain text of each column, as csv.gz staging files hold it.
   */
  readonly input?: InputForm;
}

const DEFAULT_ROW_GROUP_ROWS = 65_536;
const DEFAULT_ROW_GROUP_BYTES = 16 * 1024 * 1024;
/** `PAR1`, little-endian. */
const MAGIC = 0x31524150;
const COMMA = 0x2c;
/** Column buffers keep INT32/INT64 values in typed arrays whose bytes are written as they are. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

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

/**
 * Writes one parquet file from COPY records: each record's bytes are parsed straight into per-column
 * buffers (no per-value JS objects), and every row group is encoded and handed to `out` at once.
 */
class ParquetSink implements RowSink {
  readonly #out: Writable;
  readonly #columns: readonly ColumnBuffer[];
  readonly #schema: SchemaElement[];
  readonly #rowGroupRows: number;
  readonly #rowGroupBytes: number;
  readonly #rowGroups: RowGroup[] = [];
  /** Bytes handed to `out` so far. */
  #offset = 0;
  #rows = 0;
  #bytes = 0;
  #numRows = 0n;
  #failed = false;
  #buffer: ArrayBufferLike | undefined;
  #view: DataView = new DataView(new ArrayBuffer(0));

  constructor(stream: Stream, out: Writable, config: ParquetFormatConfig) {
    this.#out = out;
    const specs = stream.columns.map((c) => columnSpec(c, config.input));
    this.#columns = specs.map((spec) => new ColumnBuffer(spec));
    this.#schema = [{ name: 'schema', num_children: specs.length }, ...specs.map((s) => s.element)];
    this.#rowGroupRows = config.rowGroupRows ?? DEFAULT_ROW_GROUP_ROWS;
    this.#rowGroupBytes = config.rowGroupBytes ?? DEFAULT_ROW_GROUP_BYTES;
  }

  write(record: CopyRecord): undefined | Promise<void> {
    if (this.#failed) throw new WharfError('parquet writer used after a failed write');
    const raw = record.raw;
    if (raw.buffer !== this.#buffer) {
      // records are views into the chunks COPY data arrives in: one view per chunk
      this.#buffer = raw.buffer;
      this.#view = new DataView(raw.buffer);
    }
    const view = this.#view;
    const base = raw.byteOffset;
    const columns = this.#columns;
    const last = columns.length - 1;
    let p = 0;
    try {
      for (let i = 0; i < last; i++) {
        p = columns[i]!.add(raw, view, base, p);
        if (raw[p] !== COMMA) throw this.#fieldCount(record);
        p++;
      }
      p = columns[last]!.add(raw, view, base, p);
      if (p !== raw.length - 1) throw this.#fieldCount(record);
    } catch (error) {
      // the columns hold part of this record: the file cannot be finished
      this.#failed = true;
      throw error;
    }
    this.#rows++;
    this.#bytes += raw.length;
    if (this.#rows >= this.#rowGroupRows || this.#bytes >= this.#rowGroupBytes) return this.#writeRowGroup();
    return undefined;
  }

  async end(): Promise<void> {
    try {
      if (this.#failed) throw new WharfError('parquet file not finished: a record could not be written');
      await this.#writeRowGroup();
      const writer = this.#writer(16 * 1024);
      const metadata: Omit<FileMetaData, 'metadata_length'> = {
        version: 2,
        created_by: PARQUET_CREATED_BY,
        schema: this.#schema,
        num_rows: this.#numRows,
        row_groups: this.#rowGroups,
      };
      writeMetadata(writer, metadata as FileMetaData);
      writer.appendUint32(MAGIC);
      await this.#emit(writer);
      this.#out.end();
      await finished(this.#out, { readable: false });
    } catch (error) {
      this.#out.destroy(error as Error);
      throw error;
    }
  }

  #fieldCount(record: CopyRecord): WharfError {
    return new WharfError(
      `COPY record has ${record.fields().length} fields, the stream has ${this.#columns.length} columns`,
    );
  }

  /** A writer whose offsets are file offsets; the file starts with `PAR1`. */
  #writer(size: number): ByteWriter {
    const writer = new ByteWriter(size);
    writer.offset = this.#offset;
    if (this.#offset === 0) writer.appendUint32(MAGIC);
    return writer;
  }

  #emit(writer: ByteWriter): undefined | Promise<void> {
    if (writer.index === 0) return undefined;
    this.#offset = writer.offset;
    // the writer is not used again: its buffer goes to the stream as is
    if (this.#out.write(Buffer.from(writer.buffer, 0, writer.index))) return undefined;
    return waitForDrain(this.#out);
  }

  #writeRowGroup(): undefined | Promise<void> {
    const rows = this.#rows;
    if (rows === 0) return undefined;
    // the encoded row group is about a fifth of its COPY text; the writer grows when needed
    const writer = this.#writer(64 * 1024 + (this.#bytes >> 2));
    const start = writer.offset;
    const chunks = this.#columns.map((column) => writeColumnChunk(writer, column));
    let totalByteSize = 0n;
    for (const chunk of chunks) totalByteSize += chunk.meta_data!.total_uncompressed_size;
    this.#rowGroups.push({
      columns: chunks,
      total_byte_size: totalByteSize,
      num_rows: BigInt(rows),
      file_offset: BigInt(start),
      total_compressed_size: BigInt(writer.offset - start),
    });
    this.#numRows += BigInt(rows);
    for (const column of this.#columns) column.reset();
    this.#rows = 0;
    this.#bytes = 0;
    return this.#emit(writer);
  }
}

/** A parquet format with its own row-group limits. */
export function createParquetFormat(config: ParquetFormatConfig = {}): FileFormat {
  const format: FileFormat = {
    name: 'parquet',
    extension: 'parquet',
    selectExpression: config.input === 'staged' ? (_column, quoted) => quoted : selectExpression,
    open(stream: Stream, out: Writable): RowSink {
      if (!LITTLE_ENDIAN) throw new WharfError('the parquet writer needs a little-endian machine');
      return new ParquetSink(stream, out, config);
    },
    // each account's part is a parquet file of its own (footer included), so a ranged read of it is enough
    openObject(stream: Stream, out: Writable): ObjectSink {
      return concatenatedParts(format, stream, out);
    },
  };
  return format;
}

/**
 * `parquet`: typed columns (INT64, DECIMAL(18,4) as INT64, TIMESTAMP micros UTC, DATE, UUID, BOOLEAN,
 * JSON, UTF8 strings), dictionary encoding where values repeat, snappy, one row group per 65,536
 * rows or 16 MiB of COPY text, so memory stays flat. PostgreSQL turns timestamps into epoch
 * microseconds and dates into day numbers.
 */
export const parquetFormat: FileFormat = createParquetFormat();
