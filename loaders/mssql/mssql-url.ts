import type { config as MssqlDriverConfig } from 'mssql';
import { type ConnectionSettings, parseConnectionUrl } from '../../connectors/connection-url.js';
import { UsageError } from '../../core/errors.js';
import type { Secret } from '../../core/secret.js';

/**
 * Where a SQL Server warehouse is, and how Wharf talks to it. TLS is on and the server's certificate is
 * verified unless the URL says otherwise (`trustServerCertificate=true` turns verification off).
 */
export interface MssqlConnection {
  readonly server: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password?: Secret;
  /** `true`: TLS; `'strict'`: TDS 8.0 (TLS before anything else, always verified); `false`: no TLS (not recommended). */
  readonly encrypt: boolean | 'strict';
  readonly trustServerCertificate: boolean;
  /** A named instance (`host\instance`), found through the SQL Browser service instead of the port. */
  readonly instanceName?: string;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly appName: string;
}

const OPTIONS = [
  'encrypt',
  'trustServerCertificate',
  'connectTimeout',
  'loginTimeout',
  'requestTimeout',
  'instanceName',
  'applicationName',
] as const;
const BY_LOWER = new Map<string, (typeof OPTIONS)[number]>(OPTIONS.map((o) => [o.toLowerCase(), o]));

const DEFAULT_CONNECT_TIMEOUT_S = 15;
/** A MERGE of a large catch-up window can take a while; a stuck request still ends. */
const DEFAULT_REQUEST_TIMEOUT_S = 3600;

function usage(message: string): UsageError {
  return new UsageError(
    `the SQL Server URL ${message}`,
    'write it as mssql://user:password@host:1433/database?encrypt=true&trustServerCertificate=false or sqlserver://host:1433;database=db;user=u;password=p',
  );
}

function flag(name: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (['true', 'yes', '1'].includes(v)) return true;
  if (['false', 'no', '0'].includes(v)) return false;
  throw usage(`has ${name}=${value}; use true or false`);
}

function seconds(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n))
    throw usage(`has ${name}=${value}; use whole seconds`);
  return n;
}

/**
 * SQL Server connection settings from parsed URL settings (see `parseConnectionUrl`). Option names are
 * case-insensitive; unknown ones are refused, so a misspelt `trustServerCertificate` cannot pass unseen.
 */
export function mssqlConnection(settings: ConnectionSettings, password?: Secret): MssqlConnection {
  if (settings.engine !== 'mssql') throw usage(`is for ${settings.engine}, not SQL Server`);
  const options = new Map<string, string>();
  for (const [key, value] of Object.entries(settings.options)) {
    const name = BY_LOWER.get(key.toLowerCase().replace(/\s+/g, ''));
    if (!name) throw usage(`has an unknown option "${key}"; known: ${OPTIONS.join(', ')}`);
    options.set(name, value);
  }
  const encryptText = options.get('encrypt');
  const encrypt: boolean | 'strict' =
    encryptText === undefined
      ? true
      : encryptText.trim().toLowerCase() === 'strict'
        ? 'strict'
        : flag('encrypt', encryptText);
  const trust = options.get('trustServerCertificate');
  const connect = options.get('connectTimeout') ?? options.get('loginTimeout');
  const request = options.get('requestTimeout');
  const instanceName = options.get('instanceName');
  return {
    server: settings.host,
    port: settings.port,
    database: settings.database,
    user: settings.user,
    ...(password ? { password } : {}),
    encrypt,
    trustServerCertificate: trust === undefined ? false : flag('trustServerCertificate', trust),
    ...(instanceName ? { instanceName } : {}),
    connectTimeoutMs:
      (connect === undefined ? DEFAULT_CONNECT_TIMEOUT_S : seconds('connectTimeout', connect)) * 1000,
    requestTimeoutMs:
      (request === undefined ? DEFAULT_REQUEST_TIMEOUT_S : seconds('requestTimeout', request)) * 1000,
    appName: options.get('applicationName') ?? 'wharf',
  };
}

/**
 * Parses `mssql://user[:password]@host[:port]/database?encrypt=true&trustServerCertificate=false` (user and
 * password percent-encoded) or `sqlserver://host[:port];database=db;user=u;password=p` (JDBC style: a value
 * holding `;` is wrapped in `{…}`). `password`, when given, replaces one in the URL.
 */
export function parseMssqlUrl(url: string, password?: Secret): MssqlConnection {
  const parsed = parseConnectionUrl(url, password);
  return mssqlConnection(parsed.settings, parsed.password);
}

/** The `mssql` driver configuration; the only place the password is revealed. */
export function mssqlDriverConfig(connection: MssqlConnection): MssqlDriverConfig {
  return {
    server: connection.server,
    ...(connection.instanceName ? {} : { port: connection.port }),
    database: connection.database,
    user: connection.user,
    ...(connection.password ? { password: connection.password.reveal() } : {}),
    connectionTimeout: connection.connectTimeoutMs,
    requestTimeout: connection.requestTimeoutMs,
    pool: { max: 4, min: 0, idleTimeoutMillis: 30_000 },
    options: {
      encrypt: connection.encrypt,
      trustServerCertificate: connection.trustServerCertificate,
      ...(connection.instanceName ? { instanceName: connection.instanceName } : {}),
      appName: connection.appName,
      useUTC: true,
      enableArithAbort: true,
    },
  };
}
