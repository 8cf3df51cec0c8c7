import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type sql from 'mssql';
import pg from 'pg';
import {
  type ConnectionSettings,
  pgClientConfig,
  pgTlsOptions,
  sslMode,
} from '../connectors/connection-url.js';
import { errorMessage } from '../core/errors.js';
import { redact, type Secret } from '../core/secret.js';
import { quotePg } from '../db/postgres/quote.js';
import {
  CheckFailure,
  type CheckReport,
  type CheckResult,
  endpoint,
  reach,
  sqlstate,
} from '../destinations/check-report.js';
import { probeTls } from '../destinations/postgres/postgres-checks.js';

/** The ordered checks of a source, and the warnings they raised (a user that can write is one, not a failure). */
export interface SourceCheckReport extends CheckReport {
  readonly warnings: readonly string[];
}

/** What a PostgreSQL (or Redshift) source's user may do beyond reading: one row. */
export const PG_WRITE_PRIVILEGES_SQL = [
  'select coalesce((select usesuper from pg_user where usename = current_user), false) as superuser,',
  "  has_database_privilege(current_database(), 'CREATE') as create_schemas,",
  '  (select count(*) from pg_namespace n',
  "    where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'",
  "      and has_schema_privilege(n.oid, 'CREATE'))::int as create_in_schemas",
].join('\n');

/** The tables a PostgreSQL source's user may change (the first three, and how many). */
export const PG_WRITABLE_TABLES_SQL = [
  'select n.nspname as schema, c.relname as name, count(*) over () as total',
  'from pg_class c join pg_namespace n on n.oid = c.relnamespace',
  "where c.relkind in ('r', 'p', 'f')",
  "  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'",
  "  and (has_table_privilege(c.oid, 'INSERT') or has_table_privilege(c.oid, 'UPDATE')",
  "    or has_table_privilege(c.oid, 'DELETE') or has_table_privilege(c.oid, 'TRUNCATE'))",
  'order by 1, 2',
  'limit 3',
].join('\n');

/** What a SQL Server source's user may do beyond reading: one row of 0/1 flags. */
export const MSSQL_WRITE_PRIVILEGES_SQL = [
  "SELECT IS_SRVROLEMEMBER('sysadmin') AS sysadmin, IS_ROLEMEMBER('db_owner') AS db_owner,",
  "  IS_ROLEMEMBER('db_datawriter') AS db_datawriter, IS_ROLEMEMBER('db_ddladmin') AS db_ddladmin,",
  "  HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'INSERT') AS can_insert,",
  "  HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'UPDATE') AS can_update,",
  "  HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'DELETE') AS can_delete,",
  "  HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'CREATE TABLE') AS can_create,",
  '  (SELECT COUNT(*) FROM sys.schemas s',
  "    WHERE s.name NOT IN ('sys', 'INFORMATION_SCHEMA', 'guest')",
  "      AND (HAS_PERMS_BY_NAME(s.name, 'SCHEMA', 'INSERT') = 1 OR HAS_PERMS_BY_NAME(s.name, 'SCHEMA', 'UPDATE') = 1",
  "        OR HAS_PERMS_BY_NAME(s.name, 'SCHEMA', 'DELETE') = 1)) AS writable_schemas;",
].join('\n');

const READ_ONLY_HINT = 'give Wharf a read-only user: see "A read-only service user" in docs/reverse-etl.md';

/** Runs named steps in order, stopping at the first failure; each result one line, never the password. */
class Steps {
  readonly checks: CheckResult[] = [];
  readonly warnings: string[] = [];
  failed = false;
  readonly #password: Secret | undefined;

  constructor(password: Secret | undefined) {
    this.#password = password;
  }

  async run<T>(name: string, work: () => Promise<T>, note?: (value: T) => string): Promise<T | undefined> {
    if (this.failed) return undefined;
    const started = performance.now();
    try {
      const value = await work();
      const message = note?.(value);
      this.checks.push({
        name,
        ok: true,
        durationMs: performance.now() - started,
        ...(message ? { message: this.clean(message) } : {}),
      });
      return value;
    } catch (error) {
      this.failed = true;
      const code = error instanceof CheckFailure ? error.code : sqlstate(error);
      const line = error instanceof CheckFailure ? error.message : `${name} failed: ${errorMessage(error)}`;
      this.checks.push({
        name,
        ok: false,
        durationMs: performance.now() - started,
        message: this.clean(line),
        ...(code ? { code } : {}),
      });
      return undefined;
    }
  }

  warn(line: string): void {
    this.warnings.push(this.clean(line));
  }

  clean(text: string): string {
    return redact(text, [this.#password]);
  }

  report(target: string): SourceCheckReport {
    return { ok: !this.failed, target: this.clean(target), checks: this.checks, warnings: this.warnings };
  }
}

/**
 * A PostgreSQL or Redshift source, in order, stopping at the first failure: reach the host, TLS (when
 * sslmode requires it; a source's sslmode defaults to verify-full), authenticate, run `select 1`; then a
 * warning, not a failure, when the user can write (a superuser, CREATE on the database or a schema, or
 * INSERT / UPDATE / DELETE / TRUNCATE on a table).
 */
export async function checkPostgresSource(
  settings: ConnectionSettings,
  password: Secret | undefined,
  timeoutMs = 5_000,
): Promise<SourceCheckReport> {
  const steps = new Steps(password);
  const target = `${endpoint(settings)}/${settings.database}`;
  const mode = sslMode(settings.options.sslmode);
  (
    await steps.run(
      'reach',
      () => reach(settings, timeoutMs),
      () => `${endpoint(settings)} accepts connections`,
    )
  )?.destroy();
  let offersTls = false;
  if (mode === 'require' || mode === 'verify-ca' || mode === 'verify-full') {
    await steps.run(
      'tls',
      () => pgHandshake(settings, timeoutMs),
      (v) => v,
    );
    offersTls = true;
  } else if (mode !== 'disable' && !steps.failed) {
    offersTls = await probeTls(settings, timeoutMs).catch(() => false);
  }
  let client: pg.Client | undefined;
  try {
    client = await steps.run(
      'authenticate',
      async () => {
        const c = new pg.Client({
          ...pgClientConfig(settings, password, offersTls),
          connectionTimeoutMillis: timeoutMs * 2,
        });
        c.on('error', () => {});
        try {
          await c.connect();
          return c;
        } catch (error) {
          await c.end().catch(() => {});
          throw pgLoginFailure(error, settings);
        }
      },
      () => `logged in as ${settings.user}${offersTls ? ' over TLS' : ' without TLS'}`,
    );
    await steps.run(
      'select 1',
      async () =>
        (await client!.query<{ v: string }>("select 1 as one, current_setting('server_version') as v"))
          .rows[0]?.v,
      (v) => `select 1 works (server version ${v})`,
    );
    if (!steps.failed) await pgWriteWarning(client!, settings, steps);
  } finally {
    await client?.end().catch(() => {});
  }
  return steps.report(target);
}

async function pgWriteWarning(client: pg.Client, settings: ConnectionSettings, steps: Steps): Promise<void> {
  try {
    const p = (
      await client.query<{ superuser: boolean; create_schemas: boolean; create_in_schemas: number }>(
        PG_WRITE_PRIVILEGES_SQL,
      )
    ).rows[0]!;
    const tables = (
      await client.query<{ schema: string; name: string; total: string }>(PG_WRITABLE_TABLES_SQL)
    ).rows;
    const can: string[] = [];
    if (p.superuser) can.push('it is a superuser');
    if (p.create_schemas) can.push(`it may create schemas in database ${settings.database}`);
    if (p.create_in_schemas > 0) can.push(`it may create tables in ${p.create_in_schemas} schema(s)`);
    if (tables.length > 0) {
      const names = tables.map((t) => `${quotePg(t.schema)}.${quotePg(t.name)}`).join(', ');
      const total = Number(tables[0]!.total);
      can.push(`it may change ${total} table(s) (${names}${total > tables.length ? ', …' : ''})`);
    }
    if (can.length > 0) steps.warn(`user ${settings.user} can write: ${can.join('; ')}; ${READ_ONLY_HINT}`);
  } catch (error) {
    steps.warn(
      `cannot tell whether user ${settings.user} can write (${errorMessage(error)}); ${READ_ONLY_HINT}`,
    );
  }
}

/**
 * A SQL Server source, in order: reach the host, connect (TLS, verified unless the URL says
 * `trustServerCertificate=true`, and login), run `SELECT 1`; then a warning when the user can write
 * (sysadmin, db_owner, db_datawriter, db_ddladmin, or INSERT / UPDATE / DELETE / CREATE TABLE granted).
 * `driver` is the mssql configuration of the source (with its password).
 */
export async function checkMssqlSource(
  settings: ConnectionSettings,
  driver: sql.config,
  password: Secret | undefined,
): Promise<SourceCheckReport> {
  const steps = new Steps(password);
  const target = `${endpoint(settings)}/${settings.database}`;
  (
    await steps.run(
      'reach',
      () => reach(settings, 5_000),
      () => `${endpoint(settings)} accepts connections`,
    )
  )?.destroy();
  let pool: sql.ConnectionPool | undefined;
  try {
    await steps.run(
      'connect (TLS and login)',
      async () => {
        // the driver loads here, not with the CLI: it takes longer to load than the rest of Wharf
        const { ConnectionPool } = (await import('mssql')).default;
        pool = new ConnectionPool(driver);
        pool.on('error', () => {});
        try {
          await pool.connect();
        } catch (error) {
          throw new CheckFailure(
            `${errorMessage(error)}; check the user and password, and the TLS settings (for a self-signed certificate: trustServerCertificate=true, which turns verification off)`,
            String((error as { code?: string }).code ?? ''),
          );
        }
      },
      () => `logged in as ${settings.user}`,
    );
    await steps.run('select 1', async () => {
      await pool!.request().query('SELECT 1 AS one');
    });
    if (!steps.failed) {
      try {
        const row =
          (await pool!.request().query<Record<string, number>>(MSSQL_WRITE_PRIVILEGES_SQL)).recordset[0] ??
          {};
        const roles = ['sysadmin', 'db_owner', 'db_datawriter', 'db_ddladmin'].filter((r) => row[r] === 1);
        const perms = ['insert', 'update', 'delete', 'create'].filter((p) => row[`can_${p}`] === 1);
        const can: string[] = [];
        if (roles.length > 0) can.push(`it is a member of ${roles.join(', ')}`);
        if (perms.length > 0)
          can.push(
            `it holds ${perms.map((p) => (p === 'create' ? 'CREATE TABLE' : p.toUpperCase())).join(', ')} on the database`,
          );
        if ((row.writable_schemas ?? 0) > 0)
          can.push(`it may change tables in ${row.writable_schemas} schema(s)`);
        if (can.length > 0)
          steps.warn(`user ${settings.user} can write: ${can.join('; ')}; ${READ_ONLY_HINT}`);
      } catch (error) {
        steps.warn(
          `cannot tell whether user ${settings.user} can write (${errorMessage(error)}); ${READ_ONLY_HINT}`,
        );
      }
    }
  } finally {
    await pool?.close().catch(() => {});
  }
  return steps.report(target);
}

function pgLoginFailure(error: unknown, settings: ConnectionSettings): CheckFailure {
  const code = sqlstate(error);
  const u = settings.user;
  if (code === '28P01' || code === '28000') {
    return new CheckFailure(
      `authentication failed for user ${u}; check the password, and that pg_hba.conf lets ${u} connect to ${settings.database} from this machine`,
      code,
    );
  }
  if (code === '3D000') {
    return new CheckFailure(
      `database ${settings.database} does not exist on ${endpoint(settings)}; check the database in the URL`,
      code,
    );
  }
  if (code === '42501') {
    return new CheckFailure(
      `user ${u} may not connect to database ${settings.database}; grant connect on database ${quotePg(settings.database)} to ${quotePg(u)}`,
      code,
    );
  }
  if (code === '53300') return new CheckFailure('the server has too many connections; try again later', code);
  if (code === '57P03') return new CheckFailure('the server is starting up; try again in a moment', code);
  return new CheckFailure(`cannot connect: ${errorMessage(error)}`, code);
}

const CERT_UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** PostgreSQL's SSLRequest; resolves whether the server answered `S`. The socket is consumed. */
function sslRequest(socket: Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const request = Buffer.alloc(8);
    request.writeInt32BE(8, 0);
    request.writeInt32BE(80877103, 4);
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new CheckFailure('the server did not answer the TLS request in time', 'ETIMEDOUT'));
    });
    socket.once('error', (error: NodeJS.ErrnoException) =>
      reject(new CheckFailure(`TLS request failed: ${error.code}`, error.code)),
    );
    socket.once('data', (data) => {
      socket.setTimeout(0);
      resolve(data[0] === 0x53);
    });
    socket.write(request);
  });
}

/** A TLS handshake with a PostgreSQL server, verified as sslmode asks; resolves the protocol and mode. */
async function pgHandshake(settings: ConnectionSettings, timeoutMs: number): Promise<string> {
  const mode = sslMode(settings.options.sslmode);
  const socket = await reach(settings, timeoutMs);
  const offered = await sslRequest(socket, timeoutMs).catch((error: unknown) => {
    socket.destroy();
    throw error;
  });
  if (!offered) {
    socket.destroy();
    throw new CheckFailure(
      `the server at ${endpoint(settings)} does not accept TLS, but sslmode=${mode} requires it (a source's default is verify-full); enable ssl on the server, or add sslmode=disable to the URL on a network you trust`,
      'ENOTLS',
    );
  }
  const options = pgTlsOptions(settings, true);
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({
      ...(options || {}),
      socket,
      host: settings.host,
      ...(isIP(settings.host) === 0 ? { servername: settings.host } : {}),
    });
    tls.setTimeout(timeoutMs, () => {
      tls.destroy();
      reject(new CheckFailure('the TLS handshake did not finish in time', 'ETIMEDOUT'));
    });
    tls.once('error', (error: NodeJS.ErrnoException) => {
      tls.destroy();
      const code = error.code;
      let line: string;
      if (code && CERT_UNTRUSTED.has(code)) {
        line = settings.options.sslrootcert
          ? `the server's certificate is not signed by the CA in sslrootcert=${settings.options.sslrootcert}; point sslrootcert at the CA that signed it`
          : `the server's certificate is not signed by a trusted CA; add sslrootcert=/path/to/ca.pem (the CA that signed it) to the URL, or sslmode=require to encrypt without verifying`;
      } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
        line = `the server's certificate is not issued for ${settings.host}; connect by a name in the certificate, or use sslmode=verify-ca`;
      } else if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
        line = `the server's certificate is not valid now (${code}); renew it on the server`;
      } else {
        line = `the TLS handshake failed (${code ?? 'unknown error'}); check sslmode, sslrootcert, sslcert and sslkey`;
      }
      reject(new CheckFailure(line, code));
    });
    tls.once('secureConnect', () => {
      const protocol = tls.getProtocol() ?? 'TLS';
      tls.end();
      tls.destroy();
      resolve(`${protocol}, sslmode=${mode}`);
    });
  });
}
