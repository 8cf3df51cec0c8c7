import { randomBytes } from 'node:crypto';
import sql from 'mssql';
import pg from 'pg';
import type { Stream } from '../../catalog/types.js';
import { literalMssql, quoteMssql } from '../../db/mssql/quote.js';
import { literalPg, quotePg } from '../../db/postgres/quote.js';
import { LEDGER_TABLE } from '../../loaders/dialect.js';
import { type MssqlConnection, mssqlDriverConfig, parseMssqlUrl } from '../../loaders/mssql/mssql-url.js';
import { MssqlWarehouse } from '../../loaders/mssql/mssql-warehouse.js';
import { PostgresWarehouse } from '../../loaders/postgres/postgres-warehouse.js';
import type { Warehouse } from '../../loaders/warehouse.js';
import { type Checksum, canonicalRowsMssql, canonicalRowsPg, checksumOf } from './compare.js';
import { createDatabase, query, serverUrl } from './databases.js';

/** One row of `<schema>._wharf_loads`, `loadedAt` printed canonically (UTC ISO µs). */
export interface LedgerEntry {
  readonly windowId: string;
  readonly stream: string;
  readonly rows: number;
  readonly sha256: string;
  readonly loadedAt: string;
}

/** Statements that differ per engine, for the cases where a warehouse is changed by hand. */
export interface EngineSql {
  /** Rows with column `o`: the distinct owners of the schema's tables. */
  tableOwners(schema: string): string;
  /** Creates the table `x` beside the warehouse schemas (the target of the injection attempt). */
  readonly createProbe: string;
  /** One row, column `t`: non-null while the table `x` exists. */
  readonly probeExists: string;
  dropColumn(schema: string, table: string, column: string): string;
  /** Adds a constraint, not checked against existing rows, refusing `column >= before`. */
  addCheckBefore(schema: string, table: string, name: string, column: string, before: Date): string;
}

/** A warehouse engine under test, with what the tests need to look inside it. */
export interface EngineHarness {
  readonly name: string;
  /** The login the warehouse connects as, when it is not the administrator. */
  readonly warehouseUser?: string;
  /** A schema name that tries to break out of the engine's identifier quoting. */
  readonly hostileSchema: string;
  readonly sql: EngineSql;
  /** Quotes an identifier the engine's way. */
  q(name: string): string;
  openWarehouse(schema: string, connectorId: string): Warehouse;
  /** The checksum of a stream's table in canonical form (the same form `tableChecksum` gives for the source). */
  tableChecksum(schema: string, stream: Stream): Promise<Checksum>;
  /** The ledger rows, sorted by window then stream. */
  ledger(schema: string): Promise<LedgerEntry[]>;
  /** The schema's table names, sorted. */
  tables(schema: string): Promise<string[]>;
  rows<T = Record<string, unknown>>(text: string): Promise<T[]>;
  /** Runs statements as the administrator (changes "by hand"). */
  exec(text: string): Promise<void>;
  dropSchema(schema: string): Promise<void>;
  /** Closes connections (and drops a database the harness created). */
  close(): Promise<void>;
}

/** An engine of the conformance suite: how to open it, and whether it can run here. */
export interface EngineSpec {
  readonly name: string;
  readonly title: string;
  readonly available: boolean;
  open(): Promise<EngineHarness>;
}

const sortLedger = (rows: LedgerEntry[]) =>
  rows.sort((a, b) =>
    a.windowId === b.windowId ? a.stream.localeCompare(b.stream) : a.windowId < b.windowId ? -1 : 1,
  );

const pgSql: EngineSql = {
  tableOwners: (schema) =>
    `select distinct tableowner as o from pg_tables where schemaname = ${literalPg(schema)}`,
  createProbe: 'create table if not exists public.x (id int)',
  probeExists: `select to_regclass('public.x')::text as t`,
  dropColumn: (schema, table, column) =>
    `alter table ${quotePg(schema)}.${quotePg(table)} drop column ${quotePg(column)}`,
  addCheckBefore: (schema, table, name, column, before) =>
    `alter table ${quotePg(schema)}.${quotePg(table)} add constraint ${quotePg(name)} check (${quotePg(column)} < ${literalPg(before.toISOString())}) not valid`,
};

/**
 * A PostgreSQL warehouse in the database at `adminUrl`. The warehouse connects with `warehouseClient`
 * (default: the same URL); inspection and changes by hand use `adminUrl`.
 */
export function postgresHarness(
  adminUrl: string,
  options: { warehouseClient?: pg.ClientConfig } = {},
): EngineHarness {
  let pool: pg.Pool | undefined;
  const admin = () => {
    if (!pool) {
      pool = new pg.Pool({ connectionString: adminUrl, max: 2 });
      pool.on('error', () => {});
    }
    return pool;
  };
  return {
    name: 'postgres',
    ...(options.warehouseClient?.user ? { warehouseUser: options.warehouseClient.user } : {}),
    hostileSchema: 'a"b; drop table x --',
    sql: pgSql,
    q: quotePg,
    openWarehouse: (schema, connectorId) =>
      new PostgresWarehouse({
        client: options.warehouseClient ?? { connectionString: adminUrl },
        schema,
        connectorId,
      }),
    tableChecksum: async (schema, stream) => checksumOf(await canonicalRowsPg(admin(), schema, stream)),
    ledger: async (schema) => {
      const { rows } = await admin().query<{
        window_id: string;
        stream: string;
        rows: string;
        sha256: string;
        loaded_at: string;
      }>(
        `select window_id, stream, rows::text as rows, sha256, to_char(loaded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as loaded_at
           from ${quotePg(schema)}.${quotePg(LEDGER_TABLE)}`,
      );
      return sortLedger(
        rows.map((r) => ({
          windowId: r.window_id,
          stream: r.stream,
          rows: Number(r.rows),
          sha256: r.sha256,
          loadedAt: r.loaded_at,
        })),
      );
    },
    tables: async (schema) => {
      const { rows } = await admin().query<{ t: string }>(
        'select table_name as t from information_schema.tables where table_schema = $1 order by 1',
        [schema],
      );
      return rows.map((r) => r.t);
    },
    rows: async <T>(text: string) => (await admin().query(text)).rows as T[],
    exec: async (text) => {
      await admin().query(text);
    },
    dropSchema: async (schema) => {
      await admin().query(`drop schema if exists ${quotePg(schema)} cascade`);
    },
    close: async () => {
      await pool?.end();
      pool = undefined;
    },
  };
}

/** PostgreSQL: a fresh database on the test server, the warehouse connecting as its owner. */
export const postgresEngine: EngineSpec = {
  name: 'postgres',
  title: 'PostgreSQL',
  available: true,
  open: async () => postgresHarness(await createDatabase('wharf_conf_pg')),
};

/**
 * The grants docs/permissions.md lists for PostgreSQL ("let Wharf create its schema"), and nothing else:
 * PUBLIC's default rights on the database and on schema public are revoked first.
 */
export function documentedGrants(database: string, role: string): string[] {
  const db = quotePg(database);
  const r = quotePg(role);
  return [`grant connect, temporary on database ${db} to ${r}`, `grant create on database ${db} to ${r}`];
}

/** PostgreSQL, the warehouse connecting as a login role holding only the documented grants. */
export const leastPrivilegeEngine: EngineSpec = {
  name: 'postgres-least-privilege',
  title: 'PostgreSQL as a role holding only the grants of docs/permissions.md',
  available: true,
  open: async () => {
    const adminUrl = await createDatabase('wharf_conf_lp');
    const database = new URL(adminUrl).pathname.slice(1);
    const role = `wharf_loader_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(18).toString('base64url');
    await query(serverUrl(), `create role ${quotePg(role)} login password ${literalPg(password)}`);
    await query(serverUrl(), `revoke all on database ${quotePg(database)} from public`);
    await query(adminUrl, 'revoke all on schema public from public');
    for (const grant of documentedGrants(database, role)) await query(serverUrl(), grant);
    const url = new URL(adminUrl);
    return postgresHarness(adminUrl, {
      warehouseClient: {
        host: url.hostname,
        port: Number(url.port),
        database,
        user: role,
        password,
      },
    });
  },
};

const mssqlSqlText: EngineSql = {
  tableOwners: (schema) =>
    `SELECT DISTINCT USER_NAME(OBJECTPROPERTY([object_id], 'OwnerId')) AS [o] FROM sys.tables WHERE [schema_id] = SCHEMA_ID(${literalMssql(schema)})`,
  createProbe: `IF OBJECT_ID(N'dbo.x', N'U') IS NULL CREATE TABLE [dbo].[x] ([id] INT)`,
  probeExists: `SELECT OBJECT_NAME(OBJECT_ID(N'dbo.x', N'U')) AS [t]`,
  dropColumn: (schema, table, column) =>
    `ALTER TABLE ${quoteMssql(schema)}.${quoteMssql(table)} DROP COLUMN ${quoteMssql(column)}`,
  addCheckBefore: (schema, table, name, column, before) =>
    `ALTER TABLE ${quoteMssql(schema)}.${quoteMssql(table)} WITH NOCHECK ADD CONSTRAINT ${quoteMssql(name)} ` +
    `CHECK (${quoteMssql(column)} < CONVERT(DATETIME2(6), ${literalMssql(before.toISOString().replace('Z', ''))}, 126))`,
};

/** SQL Server: a fresh database on the server WHARF_TEST_MSSQL_URL names, dropped at `close`. */
export async function openMssqlHarness(url: string): Promise<EngineHarness> {
  const server = parseMssqlUrl(url);
  const database = `wharf_conf_${randomBytes(5).toString('hex')}`;
  const master = await new sql.ConnectionPool(mssqlDriverConfig(server)).connect();
  await master.request().query(`CREATE DATABASE ${quoteMssql(database)}`);
  const connection: MssqlConnection = { ...server, database };
  const pool = await new sql.ConnectionPool(mssqlDriverConfig(connection)).connect();
  pool.on('error', () => {});
  const q = quoteMssql;
  return {
    name: 'mssql',
    hostileSchema: 'a]b; drop table x --',
    sql: mssqlSqlText,
    q,
    openWarehouse: (schema, connectorId) => new MssqlWarehouse({ connection, schema, connectorId }),
    tableChecksum: async (schema, stream) => checksumOf(await canonicalRowsMssql(pool, schema, stream)),
    ledger: async (schema) => {
      const { recordset } = await pool.request().query<{
        window_id: string;
        stream: string;
        rows: string;
        sha256: string;
        loaded_at: string;
      }>(
        `SELECT [window_id], [stream], CONVERT(NVARCHAR(20), [rows]) AS [rows], [sha256], ` +
          `CONVERT(NVARCHAR(19), [loaded_at], 126) + N'.' + RIGHT(N'000000' + CONVERT(NVARCHAR(7), DATEPART(MICROSECOND, [loaded_at])), 6) + N'Z' AS [loaded_at] ` +
          `FROM ${q(schema)}.${q(LEDGER_TABLE)}`,
      );
      return sortLedger(
        recordset.map((r) => ({
          windowId: r.window_id,
          stream: r.stream,
          rows: Number(r.rows),
          sha256: r.sha256.trim(),
          loadedAt: r.loaded_at,
        })),
      );
    },
    tables: async (schema) => {
      const { recordset } = await pool
        .request()
        .input('schema', sql.NVarChar(128), schema)
        .query<{ t: string }>(
          'SELECT [name] AS [t] FROM sys.tables WHERE [schema_id] = SCHEMA_ID(@schema) ORDER BY [name]',
        );
      return recordset.map((r) => r.t).sort();
    },
    rows: async <T>(text: string) => (await pool.request().query(text)).recordset as T[],
    exec: async (text) => {
      await pool.request().query(text);
    },
    dropSchema: async (schema) => {
      const s = literalMssql(schema);
      await pool.request().query(
        `DECLARE @d NVARCHAR(MAX) = N'';
         SELECT @d += N'ALTER TABLE ' + QUOTENAME(${s}) + N'.' + QUOTENAME(OBJECT_NAME(f.parent_object_id)) + N' DROP CONSTRAINT ' + QUOTENAME(f.name) + N';'
           FROM sys.foreign_keys AS f WHERE f.schema_id = SCHEMA_ID(${s});
         SELECT @d += N'DROP TABLE ' + QUOTENAME(${s}) + N'.' + QUOTENAME(t.name) + N';'
           FROM sys.tables AS t WHERE t.schema_id = SCHEMA_ID(${s});
         EXEC (@d);
         IF SCHEMA_ID(${s}) IS NOT NULL EXEC (N'DROP SCHEMA ' + QUOTENAME(${s}));`,
      );
    },
    close: async () => {
      await pool.close();
      await master
        .request()
        .query(
          `ALTER DATABASE ${q(database)} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE ${q(database)}`,
        )
        .catch(() => {});
      await master.close();
    },
  };
}

const mssqlUrl = process.env.WHARF_TEST_MSSQL_URL;

/** SQL Server, when WHARF_TEST_MSSQL_URL names a live server; otherwise reported as skipped, with the reason. */
export const mssqlEngine: EngineSpec = {
  name: 'mssql',
  title: mssqlUrl
    ? 'SQL Server'
    : 'SQL Server (skipped: set WHARF_TEST_MSSQL_URL to run against a live server)',
  available: Boolean(mssqlUrl),
  open: () => openMssqlHarness(mssqlUrl!),
};

/** Every engine the load conformance suite runs against. */
export const engines: readonly EngineSpec[] = [postgresEngine, leastPrivilegeEngine, mssqlEngine];
