import { UsageError } from '../../core/errors.js';
import { csvGzFormat } from './csv-gz-format.js';
import type { FileFormat, FormatName } from './file-format.js';
import { ndjsonGzFormat } from './ndjson-gz-format.js';
import { parquetFormat } from './parquet-format.js';

/** Every file format, by name. */
export const formats: Readonly<Record<FormatName, FileFormat>> = {
  csv: csvGzFormat,
  parquet: parquetFormat,
  json: ndjsonGzFormat,
};

/** The format called `name` (`csv`, `parquet`, `json`). */
export function formatByName(name: FormatName): FileFormat {
  const format = formats[name];
  if (!format) {
    throw new UsageError(`unknown file format "${name}"`, `use one of ${Object.keys(formats).join(', ')}`);
  }
  return format;
}
