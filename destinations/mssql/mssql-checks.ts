import sql from 'mssql';
import type { ConnectionSettings } from '../../connectors/connection-url.js';
import { errorMessage } from '../../core/errors.js';
import { redact, type Secret } from '../../core/secret.js';
import { quoteMssql } from '../../db/mssql/quote.js';
import { mssqlConnection, mssqlDriverConfig } from '../../loaders/mssql/mssql-url.js';
import { type CheckReport, type CheckResult, reach } from '../check-report.js';

const FIX: Record<string, string> = {
  reach:
    'check the host and port, and that the server accepts TCP connections (SQL Server Configuration Manager, firewall)',
  'connect (TLS and login)':
    'check the user and password; for a self-signed certificate add trustServerCertificate=true (this disables verification)',
  schema:
    'grant CREATE SCHEMA (or create the schema and grant ALTER on it) to the user; see docs/permissions.md',
  'create table': 'grant CREATE TABLE on the database and ALTER on the schema; see docs/permissions.md',
  'insert and drop the probe': 'grant INSERT, SELECT, DELETE on the schema; see docs/permissions.md',
};

/**
 * Ordered checks for a SQL Server warehouse: reach the host, TLS and login, the schema (created when
 * missing), create a table, write to it, drop the probe. The password appears in no message.
 */
export async function checkMssqlWarehouse(
  settings: ConnectionSettings,
  password: Secret | undefined,
  schema: string,
): Promise<CheckReport> {
  const checks: CheckResult[] = [];
  const target = `${settings.host}:${settings.port}/${settings.database} schema ${schema}`;
  let pool: sql.ConnectionPool | undefined;
  let schemaCreated = false;
  let probeCreated = false;
  const step = async (name: string, work: () => Promise<void>): Promise<boolean> => {
    const started = performance.now();
    try {
      await work();
      checks.push({ name, ok: true, durationMs: performance.now() - started });
      return true;
    } catch (error) {
      const code =
        (error as { code?: string; number?: number }).code ??
        String((error as { number?: number }).number ?? '');
      checks.push({
        name,
        ok: false,
        durationMs: performance.now() - started,
        message: [redact(errorMessage(error), [password]), FIX[name]].filter(Boolean).join('; '),
        ...(code ? { code } : {}),
      });
      return false;
    }
  };
  // in order; the first failure ends the run
  const checksInOrder: [string, () => Promise<void>][] = [
    [
      'reach',
      async () => {
        (await reach(settings, 5000)).destroy();
      },
    ],
    [
      'connect (TLS and login)',
      async () => {
        pool = new sql.ConnectionPool(mssqlDriverConfig(mssqlConnection(settings, password)) as sql.config);
        pool.on('error', () => {});
        await pool.connect();
      },
    ],
    [
      'schema',
      async () => {
        const r = pool!.request();
        r.input('schema', sql.NVarChar, schema);
        const made = await r.query<{ created: number }>(
          `IF SCHEMA_ID(@schema) IS NULL BEGIN EXEC(N'CREATE SCHEMA ' + QUOTENAME(@schema)); SELECT 1 AS created; END ELSE SELECT 0 AS created`,
        );
        schemaCreated = made.recordset?.[0]?.created === 1;
      },
    ],
    [
      'create table',
      async () => {
        await pool!
          .request()
          .query(`CREATE TABLE ${quoteMssql(schema)}.[_wharf_probe] (id INT NOT NULL PRIMARY KEY)`);
        probeCreated = true;
      },
    ],
    [
      'insert and drop the probe',
      async () => {
        await pool!.request().query(`INSERT INTO ${quoteMssql(schema)}.[_wharf_probe] (id) VALUES (1)`);
        await pool!.request().query(`DROP TABLE ${quoteMssql(schema)}.[_wharf_probe]`);
        probeCreated = false;
      },
    ],
  ];
  let failed = false;
  try {
    for (const [name, work] of checksInOrder) {
      if (!(await step(name, work))) {
        failed = true;
        break;
      }
    }
  } finally {
    // a failed check leaves the warehouse as it was: no probe, and no schema it created
    if (failed && probeCreated) {
      await pool
        ?.request()
        .query(`DROP TABLE IF EXISTS ${quoteMssql(schema)}.[_wharf_probe]`)
        .catch(() => {});
    }
    if (failed && schemaCreated) {
      await pool
        ?.request()
        .query(`DROP SCHEMA ${quoteMssql(schema)}`)
        .catch(() => {});
    }
    await pool?.close().catch(() => {});
  }
  return { ok: checks.every((c) => c.ok), target, checks };
}
