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

/**
 * A warehouse's request: the URL (with its password, or the one from `--password-stdin`) parsed into
 * connection settings and a `password` secret field. Bucket options and a URL of another engine are refused.
 */
export function parseWarehouseRequest(
  request: DestinationRequest,
  engine: WarehouseEngine,
): ParsedDestination<ConnectionSettings> {
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
