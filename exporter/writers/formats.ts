import { UsageError } from '../../core/errors.js';
import { csvGzFormat } from './csv-gz-format.js';
import type { FileFormat, FormatName } from './file-format.js';
import { createNdjsonGzFormat, ndjsonGzFormat } from './ndjson-gz-format.js';
import { createParquetFormat, parquetFormat } from './parquet-format.js';

/** Every file format, by name. */
export const formats: Readonly<Record<FormatName, FileFormat>> = {
  csv: csvGzFormat,
  parquet: parquetFormat,
  json: ndjsonGzFormat,
};

/**
 * Every file format reading the text of csv.gz staging files (PostgreSQL's plain output of each column) instead of
 * its own select expressions: what bucket delivery converts staged rows with. csv.gz takes that text as it is.
 */
export const stagedInputFormats: Readonly<Record<FormatName, FileFormat>> = {
  csv: csvGzFormat,
  parquet: createParquetFormat({ input: 'staged' }),
  json: createNdjsonGzFormat({ input: 'staged' }),
};

/** The format called `name` (`csv`, `parquet`, `json`). */
export function formatByName(name: FormatName): FileFormat {
  const format = formats[name];
  if (!format) {
    throw new UsageError(`unknown file format "${name}"`, `use one of ${Object.keys(formats).join(', ')}`);
  }
  return format;
}
