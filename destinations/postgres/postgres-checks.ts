import { randomBytes } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect as tlsConnect } from 'node:tls';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import {
  type ConnectionSettings,
  pgClientConfig,
  pgTlsOptions,
  sslMode,
} from '../../connectors/connection-url.js';
import { redact, type Secret } from '../../core/secret.js';
import { CONNECTION_LOST, watchClient } from '../../db/postgres/connection.js';
import { isConnectionLoss } from '../../db/postgres/errors.js';
import { literalPg, quotePg } from '../../db/postgres/quote.js';
import { DEFAULT_SESSION_LIMITS } from '../../loaders/warehouse.js';
import {
  CheckFailure,
  type CheckOptions,
  type CheckReport,
  type CheckResult,
  endpoint,
  reach,
  sqlstate,
} from '../check-report.js';

const CERT_UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** Asks a PostgreSQL server whether it speaks TLS (SSLRequest); the socket is consumed. */
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
      resolve(data[0] === 0x53); // 'S'
    });
    socket.write(request);
  });
}

/** Whether the server at `settings` offers TLS (for sslmode=prefer). */
export async function probeTls(settings: ConnectionSettings, timeoutMs = 5_000): Promise<boolean> {
  const socket = await reach(settings, timeoutMs);
  try {
    return await sslRequest(socket, timeoutMs);
  } finally {
    socket.destroy();
  }
}

async function handshake(settings: ConnectionSettings, timeoutMs: number): Promise<string> {
  const mode = sslMode(settings.options.sslmode);
  const socket = await reach(settings, timeoutMs);
  let offered: boolean;
  try {
    offered = await sslRequest(socket, timeoutMs);
  } catch (error) {
    socket.destroy();
    throw error;
  }
  if (!offered) {
    socket.destroy();
    throw new CheckFailure(
      `the server at ${endpoint(settings)} does not accept TLS, but sslmode=${mode} requires it; enable ssl on the server, or use sslmode=disable on a trusted network`,
      'ENOTLS',
    );
  }
  const options = pgTlsOptions(settings, true);
  return new Promise((resolve, reject) => {
    // like node-postgres: the host for the identity check, SNI for names only
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
          : `the server's certificate is not signed by a trusted CA; add sslrootcert=/path/to/ca.pem (the CA that signed it) to the URL, or use sslmode=require to encrypt without verifying`;
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

function connectFailure(error: unknown, settings: ConnectionSettings): CheckFailure {
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
      `database ${settings.database} does not exist on ${endpoint(settings)}; check the database in the URL, or create it: create database ${quotePg(settings.database)} owner ${quotePg(u)}`,
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
  return new CheckFailure(`cannot connect: ${(error as Error).message ?? String(error)}`, code);
}

/** The warehouse schema check's failure line for a missing privilege. */
function schemaGrant(settings: ConnectionSettings, schema: string, exists: boolean): string {
  const u = quotePg(settings.user);
  return exists
    ? `user ${settings.user} may not create tables in schema ${schema}; grant usage, create on schema ${quotePg(schema)} to ${u}`
    : `user ${settings.user} may not create schema ${schema}; grant create on database ${quotePg(settings.database)} to ${u} (or create it yourself: create schema ${quotePg(schema)} authorization ${u})`;
}

/**
 * Pre-flight checks for a PostgreSQL warehouse, in order, stopping at the first failure: reach the
 * host, TLS (when sslmode requires it), authenticate, the database, the schema (created when
 * missing), create a table, create a temporary table, COPY into it, drop the probe. Each failure is
 * one line with the fix; the password appears in none of them.
 */
export async function checkPostgresWarehouse(
  settings: ConnectionSettings,
  password: Secret | undefined,
  schema: string,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const checks: CheckResult[] = [];
  const target = `${endpoint(settings)}/${settings.database} schema ${schema}`;
  const clean = (text: string) => redact(text, [password]);
  let failed = false;

  const step = async <T>(
    name: string,
    work: () => Promise<T>,
    note?: (value: T) => string,
  ): Promise<T | undefined> => {
    if (failed) return undefined;
    const started = performance.now();
    try {
      const value = await work();
      const message = note?.(value);
      checks.push({
        name,
        ok: true,
        durationMs: performance.now() - started,
        ...(message ? { message: clean(message) } : {}),
      });
      return value;
    } catch (error) {
      failed = true;
      const code =
        (error instanceof CheckFailure ? error.code : sqlstate(error)) ??
        (isConnectionLoss(error) ? CONNECTION_LOST : undefined);
      const line =
        error instanceof CheckFailure
          ? error.message
          : `${name} failed: ${(error as Error)?.message ?? String(error)}`;
      checks.push({
        name,
        ok: false,
        durationMs: performance.now() - started,
        message: clean(line),
        ...(code ? { code } : {}),
      });
      return undefined;
    }
  };

  if (settings.engine !== 'postgres') {
    return {
      ok: false,
      target,
      checks: [
        {
          name: 'engine',
          ok: false,
          durationMs: 0,
          message: `a ${settings.engine} warehouse is not a PostgreSQL one`,
        },
      ],
    };
  }
  const mode = sslMode(settings.options.sslmode);
  const socket = await step(
    'reach',
    () => reach(settings, timeoutMs),
    () => `${endpoint(settings)} accepts connections`,
  );
  socket?.destroy();

  let offersTls = false;
  if (mode === 'require' || mode === 'verify-ca' || mode === 'verify-full') {
    await step(
      'tls',
      () => handshake(settings, timeoutMs),
      (v) => v,
    );
    offersTls = true;
  } else if (mode !== 'disable' && !failed) {
    offersTls = await probeTls(settings, timeoutMs).catch(() => false);
  }

  let client: pg.Client | undefined;
  let connectError: unknown;
  await step(
    'authenticate',
    async () => {
      const candidate = watchClient(
        new pg.Client({
          ...pgClientConfig(settings, password, offersTls),
          connectionTimeoutMillis: timeoutMs * 2,
        }),
        'warehouse',
      );
      try {
        await candidate.connect();
        // a check waits for a lock no longer than a load would
        await candidate.query(
          "select set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)",
          [
            `${options.lockTimeoutMs ?? DEFAULT_SESSION_LIMITS.lockTimeoutMs}ms`,
            `${Math.max(60_000, timeoutMs * 12)}ms`,
          ],
        );
        client = candidate;
      } catch (error) {
        await candidate.end().catch(() => {});
        if (sqlstate(error) === '3D000')
          connectError = error; // authenticated; the database is the problem
        else throw connectFailure(error, settings);
      }
    },
    () => `logged in as ${settings.user}`,
  );

  const probe = `_wharf_probe_${randomBytes(4).toString('hex')}`;
  const s = quotePg(schema);
  let probeCreated = false;
  /** The schema step created the schema: a later failure drops it again (the warehouse is left as it was). */
  let schemaCreated = false;
  try {
    await step(
      'database',
      async () => {
        if (connectError) throw connectFailure(connectError, settings);
        const row = (
          await client!.query<{ version: string }>('select current_setting($1) as version', [
            'server_version',
          ])
        ).rows[0];
        return row?.version ?? '';
      },
      (v) => `database ${settings.database}, PostgreSQL ${v}`,
    );

    await step(
      'schema',
      async () => {
        const exists =
          (await client!.query('select 1 from pg_namespace where nspname = $1', [schema])).rowCount! > 0;
        if (exists) {
          const can = (
            await client!.query<{ ok: boolean }>(
              `select has_schema_privilege(current_user, $1, 'USAGE') and has_schema_privilege(current_user, $1, 'CREATE') as ok`,
              [schema],
            )
          ).rows[0]?.ok;
          if (!can) throw new CheckFailure(schemaGrant(settings, schema, true), '42501');
          return `schema ${schema} exists`;
        }
        try {
          await client!.query(`create schema if not exists ${s}`);
          schemaCreated = true;
        } catch (error) {
          if (sqlstate(error) === '42501')
            throw new CheckFailure(schemaGrant(settings, schema, false), '42501');
          throw error;
        }
        return `created schema ${schema}`;
      },
      (v) => v,
    );

    await step('create table', async () => {
      try {
        await client!.query(`create table ${s}.${quotePg(probe)} (id bigint primary key, note text)`);
        probeCreated = true;
      } catch (error) {
        if (sqlstate(error) === '42501') throw new CheckFailure(schemaGrant(settings, schema, true), '42501');
        throw error;
      }
    });

    await step('temporary table', async () => {
      try {
        await client!.query(`create temporary table ${quotePg(`${probe}_stage`)} (id bigint, note text)`);
      } catch (error) {
        if (sqlstate(error) === '42501') {
          throw new CheckFailure(
            `user ${settings.user} may not create temporary tables; grant temporary on database ${quotePg(settings.database)} to ${quotePg(settings.user)}`,
            '42501',
          );
        }
        throw error;
      }
    });

    await step(
      'copy',
      async () => {
        const stage = quotePg(`${probe}_stage`);
        await pipeline(
          Readable.from(['1,probe\n', '2,"with ""quotes"", commas"\n', '3,\n']),
          client!.query(copyFrom(`copy ${stage} (id, note) from stdin with (format csv)`)),
        );
        await client!.query(`insert into ${s}.${quotePg(probe)} (id, note) select id, note from ${stage}`);
        const n = (await client!.query<{ n: string }>(`select count(*) as n from ${s}.${quotePg(probe)}`))
          .rows[0]?.n;
        if (n !== '3') throw new CheckFailure(`COPY loaded ${n} rows instead of 3 into ${literalPg(probe)}`);
        return n;
      },
      () => 'COPY into a temporary table and insert into the schema work',
    );

    await step('drop probe', async () => {
      await client!.query(`drop table ${s}.${quotePg(probe)}`);
      probeCreated = false;
      await client!.query(`drop table if exists ${quotePg(`${probe}_stage`)}`);
    });
  } finally {
    if (probeCreated) await client?.query(`drop table if exists ${s}.${quotePg(probe)}`).catch(() => {});
    // a failed check leaves nothing behind: not the probe, nor a schema it created (restrict: only when empty)
    if (failed && schemaCreated) await client?.query(`drop schema if exists ${s}`).catch(() => {});
    await client?.end().catch(() => {});
  }
  return { ok: !failed, target: clean(target), checks };
}

/**
 * A node-postgres configuration with `sslmode=prefer` / `allow` resolved the way libpq does: TLS
 * (unverified) when the server offers it, none otherwise. Other modes need no probe.
 */
export async function pgConnectionConfig(
  settings: ConnectionSettings,
  password: Secret | undefined,
  timeoutMs = 5_000,
): Promise<pg.ClientConfig> {
  const mode = sslMode(settings.options.sslmode);
  const probe = mode === 'prefer' || mode === 'allow';
  const offersTls = probe ? await probeTls(settings, timeoutMs).catch(() => false) : false;
  return pgClientConfig(settings, password, offersTls);
}
