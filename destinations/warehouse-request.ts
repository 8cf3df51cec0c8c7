import {
  type ConnectionSettings,
  parseConnectionUrl,
  type WarehouseEngine,
} from '../connectors/connection-url.js';
import type { StoredSettings } from '../connectors/connector-store.js';
import { UsageError } from '../core/errors.js';
import type { DestinationRequest, ParsedDestination } from './destination-kind.js';

const BUCKET_ONLY = [
  'accessKeyId',
  'secretAccessKey',
  's3Endpoint',
  's3PathStyle',
  's3Region',
  'every',
] as const;

/** `--s3-region` → `--s3-region` for messages. */
const flag = (field: string) => `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** How an engine measures an identifier against its limit, and in which unit. */
const IDENTIFIER_UNITS: Record<WarehouseEngine, { readonly unit: string; length(name: string): number }> = {
  postgres: { unit: 'bytes (UTF-8)', length: (name) => Buffer.byteLength(name, 'utf8') },
  mssql: { unit: 'characters (UTF-16 code units)', length: (name) => name.length },
};

/**
 * Refuses a warehouse schema name the engine cannot hold as given: empty, or longer than its identifier limit
 * (PostgreSQL would silently cut it to 63 bytes, so that two long names could end up the same schema).
 */
export function checkSchemaName(schema: string, engine: WarehouseEngine, maxLength: number): void {
  if (schema.trim() === '') {
    throw new UsageError('the warehouse schema name is empty', 'pass --schema NAME (default tracking)');
  }
  if (schema.includes('\u0000')) throw new UsageError('the warehouse schema name contains a NUL character');
  const { unit, length } = IDENTIFIER_UNITS[engine];
  const n = length(schema);
  if (n > maxLength) {
    throw new UsageError(
      `the warehouse schema name is ${n} ${unit} long; ${engine === 'postgres' ? 'PostgreSQL' : 'SQL Server'} keeps at most ${maxLength}`,
      'choose a shorter --schema',
    );
  }
}

/**
 * A warehouse's request: the URL (with its password, or the one from `--password-stdin`) parsed into
 * connection settings and a `password` secret field. Bucket options, a URL of another engine and a schema name
 * the engine cannot hold (`maxIdentifierLength`, in the engine's unit) are refused.
 */
export function parseWarehouseRequest(
  request: DestinationRequest,
  engine: WarehouseEngine,
  maxIdentifierLength: number,
): ParsedDestination<ConnectionSettings> {
  if (request.schema !== undefined) checkSchemaName(request.schema, engine, maxIdentifierLength);
  const stray = BUCKET_ONLY.find((field) => request[field] !== undefined);
  if (stray) {
    throw new UsageError(`${flag(stray)} is for bucket connectors`, `remove it, or use --engine bucket`);
  }
  const parsed = parseConnectionUrl(request.url, request.password);
  if (parsed.settings.engine !== engine) {
    throw new UsageError(
      `--engine ${engine} does not match the URL scheme (a ${parsed.settings.engine} URL)`,
      'use postgres:// for postgres and mssql:// or sqlserver:// for mssql',
    );
  }
  return { settings: parsed.settings, secret: parsed.password ? { password: parsed.password } : {} };
}

/** A warehouse kind's stored settings as the connection settings they are (the kind wrote them). */
export function connection(settings: StoredSettings): ConnectionSettings {
  return settings as ConnectionSettings;
}
