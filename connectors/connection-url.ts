import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import { ConfigError, UsageError } from '../core/errors.js';
import { Secret } from '../core/secret.js';

export type WarehouseEngine = 'postgres' | 'mssql';

/** Where a warehouse is and who Wharf logs in as. Never holds the password. */
export interface ConnectionSettings {
  readonly engine: WarehouseEngine;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** Driver options from the URL: `sslmode`, `sslrootcert`, `encrypt`, `trustServerCertificate`, … */
  readonly options: Readonly<Record<string, string>>;
}

/** A parsed URL: settings, and the password kept apart as a `Secret`. */
export interface ParsedConnection {
  readonly settings: ConnectionSettings;
  readonly password?: Secret;
}

const DEFAULT_PORT: Record<WarehouseEngine, number> = { postgres: 5432, mssql: 1433 };
const URL_FORMS =
  'postgres://user:password@host:5432/database?sslmode=verify-full, mssql://user:password@host:1433/database, or sqlserver://host:1433;database=db;user=u;password=p;encrypt=true';

function invalid(what: string): UsageError {
  // the URL itself is never echoed: it may hold a password
  return new UsageError(
    `the warehouse URL ${what}`,
    `write it as ${URL_FORMS} (percent-encode special characters in the user and password)`,
  );
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw invalid(`has a ${what} that is not valid percent-encoding`);
  }
}

function parsePort(text: string, engine: WarehouseEngine): number {
  if (text === '') return DEFAULT_PORT[engine];
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535)
    throw invalid('has a port that is not a number from 1 to 65535');
  return port;
}

/**
 * Parses a warehouse URL into settings and a separate password:
 *
 * - `postgres://user[:password]@host[:port]/database?sslmode=…` (or `postgresql://`); a `password=`
 *   query parameter is accepted too;
 * - `mssql://user[:password]@host[:1433]/database?encrypt=true&trustServerCertificate=false`;
 * - `sqlserver://host[:1433];database=db;user=u;password=p;encrypt=true` (JDBC style: values are
 *   literal, wrap one in `{…}` when it contains `;`, and write `}` inside braces as `}}`).
 *
 * In the URL forms, the user and password are percent-decoded (`p%40ss` → `p@ss`).
 * `password`, when given, replaces any password in the URL (e.g. from `--password-stdin`).
 */
export function parseConnectionUrl(url: string, password?: Secret): ParsedConnection {
  const text = url.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  let parsed: ParsedConnection;
  if (scheme === 'postgres' || scheme === 'postgresql') parsed = parseUrlForm(text, 'postgres');
  else if (scheme === 'mssql') parsed = parseUrlForm(text, 'mssql');
  else if (scheme === 'sqlserver') parsed = parseJdbcForm(text.slice('sqlserver://'.length));
  else throw invalid(scheme ? `has an unknown scheme "${scheme}"` : 'is not a URL');
  if (password !== undefined) return { settings: parsed.settings, password };
  return parsed;
}

function parseUrlForm(text: string, engine: WarehouseEngine): ParsedConnection {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw invalid('is not a valid URL');
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw invalid('names no host');
  const database = decode(u.pathname.replace(/^\//, ''), 'database name');
  const options: Record<string, string> = {};
  let user = decode(u.username, 'user name');
  let password = u.password === '' ? undefined : decode(u.password, 'password');
  for (const [key, value] of u.searchParams) {
    if (key === 'password') password = value;
    else if (key === 'user') user = value;
    else options[key] = value;
  }
  if (database === '' || database.includes('/')) throw invalid('names no database (…@host:port/database)');
  if (user === '') throw invalid('names no user (…://user:password@host…)');
  if (engine === 'postgres' && options.sslmode !== undefined) sslMode(options.sslmode);
  return parsed({ engine, host, port: parsePort(u.port, engine), database, user, options }, password);
}

/** Splits `a=1;b={x;y}` into pairs, honouring JDBC's `{…}` quoting. */
function jdbcPairs(text: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    const semi = text.indexOf(';', i);
    if (eq < 0 || (semi >= 0 && semi < eq)) {
      if (text.slice(i, semi < 0 ? undefined : semi).trim() !== '')
        throw invalid('has a property without a value');
      i = semi < 0 ? text.length : semi + 1;
      continue;
    }
    const key = text.slice(i, eq).trim();
    let value = '';
    let j = eq + 1;
    if (text[j] === '{') {
      j++;
      for (;;) {
        if (j >= text.length) throw invalid('has a "{" value without its closing "}"');
        if (text[j] === '}') {
          if (text[j + 1] === '}') {
            value += '}';
            j += 2;
            continue;
          }
          j++;
          break;
        }
        value += text[j];
        j++;
      }
      const end = text.indexOf(';', j);
      j = end < 0 ? text.length : end + 1;
    } else {
      const end = text.indexOf(';', j);
      value = text.slice(j, end < 0 ? undefined : end);
      j = end < 0 ? text.length : end + 1;
    }
    pairs.push([key, value]);
    i = j;
  }
  return pairs;
}

function parseJdbcForm(rest: string): ParsedConnection {
  const first = rest.indexOf(';');
  const server = first < 0 ? rest : rest.slice(0, first);
  const props = first < 0 ? '' : rest.slice(first + 1);
  const hostPort = /^(\[[^\]]+\]|[^:\\/;]+)(?:\\([^:;]+))?(?::(\d*))?\/?$/.exec(server);
  if (!hostPort) throw invalid('names no host (sqlserver://host:1433;…)');
  const host = hostPort[1]!.replace(/^\[(.*)\]$/, '$1');
  const options: Record<string, string> = {};
  if (hostPort[2]) options.instanceName = hostPort[2];
  let database = '';
  let user = '';
  let password: string | undefined;
  for (const [key, value] of jdbcPairs(props)) {
    const k = key.toLowerCase().replace(/\s+/g, '');
    if (k === 'database' || k === 'databasename') database = value;
    else if (k === 'user' || k === 'username' || k === 'userid' || k === 'uid') user = value;
    else if (k === 'password' || k === 'pwd') password = value;
    else if (k === 'servername') continue;
    else options[key] = value;
  }
  if (database === '') throw invalid('names no database (…;database=name)');
  if (user === '') throw invalid('names no user (…;user=name)');
  return parsed(
    { engine: 'mssql', host, port: parsePort(hostPort[3] ?? '', 'mssql'), database, user, options },
    password,
  );
}

/** Settings and, when there is one, the password as a `Secret` (an empty password is none). */
function parsed(settings: ConnectionSettings, password: string | undefined): ParsedConnection {
  return password === undefined || password === ''
    ? { settings }
    : { settings, password: new Secret(password) };
}

/** A URL for messages and `connectors show`: everything but the password. */
export function describeConnection(settings: ConnectionSettings): string {
  const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
  const query = new URLSearchParams(Object.entries(settings.options)).toString();
  return (
    `${settings.engine}://${encodeURIComponent(settings.user)}@${host}:${settings.port}/` +
    `${encodeURIComponent(settings.database)}${query ? `?${query}` : ''}`
  );
}

/** Same as `describeConnection`. */
export const describe = describeConnection;

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

/** The URL's `sslmode` (default `prefer`). */
export function sslMode(value: string | undefined): SslMode {
  if (value === undefined || value === '') return 'prefer';
  if ((SSL_MODES as readonly string[]).includes(value)) return value as SslMode;
  throw invalid(`has sslmode=${value}; use one of ${SSL_MODES.join(', ')}`);
}

function readPem(path: string, option: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`cannot read the ${option} file ${path}`, {
      hint: `check the ${option}= path in the warehouse URL`,
      code: (error as NodeJS.ErrnoException).code,
    });
  }
}

/**
 * The TLS options for a PostgreSQL connection, or `false` for none. `serverOffersTls` matters for
 * `prefer` / `allow` only (see `probeTls` in checks-postgres.ts): they encrypt without verifying
 * when the server offers TLS, and connect in clear otherwise. `require` encrypts without verifying
 * (unless `sslrootcert` is given: then like `verify-ca`), `verify-ca` checks the chain against
 * `sslrootcert`, `verify-full` also checks the host name (against `sslrootcert`, or the system's CAs
 * when it is absent or `system`).
 */
export function pgTlsOptions(
  settings: ConnectionSettings,
  serverOffersTls = false,
): ConnectionOptions | false {
  const mode = sslMode(settings.options.sslmode);
  if (mode === 'disable') return false;
  if ((mode === 'prefer' || mode === 'allow') && !serverOffersTls) return false;
  const options: ConnectionOptions = {};
  const rootcert = settings.options.sslrootcert;
  if (rootcert && rootcert !== 'system') options.ca = readPem(rootcert, 'sslrootcert');
  if (settings.options.sslcert) options.cert = readPem(settings.options.sslcert, 'sslcert');
  if (settings.options.sslkey) options.key = readPem(settings.options.sslkey, 'sslkey');
  const verifyChain =
    mode === 'verify-ca' || mode === 'verify-full' || (mode === 'require' && options.ca !== undefined);
  if (!verifyChain) return { ...options, rejectUnauthorized: false };
  options.rejectUnauthorized = true;
  // verify-full: Node checks the certificate against the host (node-postgres passes it, and SNI for names)
  if (mode !== 'verify-full') options.checkServerIdentity = () => undefined;
  return options;
}

/**
 * A node-postgres client configuration for a PostgreSQL warehouse. For `sslmode=prefer` (the
 * default) pass whether the server offers TLS, or use `pgConnectionConfig` (checks-postgres.ts),
 * which asks the server.
 */
export function pgClientConfig(
  settings: ConnectionSettings,
  password: Secret | undefined,
  serverOffersTls = false,
): pg.ClientConfig {
  if (settings.engine !== 'postgres') {
    throw new ConfigError(`a ${settings.engine} warehouse has no PostgreSQL client configuration`);
  }
  const timeout = Number(settings.options.connect_timeout);
  return {
    host: settings.host,
    port: settings.port,
    database: settings.database,
    user: settings.user,
    ...(password ? { password: password.reveal() } : {}),
    ssl: pgTlsOptions(settings, serverOffersTls),
    application_name: settings.options.application_name ?? 'wharf',
    connectionTimeoutMillis: Number.isFinite(timeout) && timeout > 0 ? timeout * 1000 : 15_000,
  };
}
