import { type CheckReport, checkFailure, checkPostgresWarehouse } from '../connectors/checks-postgres.js';
import type { ConnectionSettings } from '../connectors/connection-url.js';
import type { Secret } from '../core/secret.js';

export type { CheckReport };

/** Runs the engine's ordered checks; throws the first failure as one clear error. */
export async function checkWarehouse(
  settings: ConnectionSettings,
  password: Secret | undefined,
  schema: string,
  connector?: string,
): Promise<CheckReport> {
  let report: CheckReport;
  if (settings.engine === 'postgres') {
    report = await checkPostgresWarehouse(settings, password, schema);
  } else {
    const { checkMssqlWarehouse } = await import('./mssql-runtime.js');
    report = await checkMssqlWarehouse(settings, password, schema);
  }
  const failure = checkFailure(report, connector);
  if (failure) throw failure;
  return report;
}
