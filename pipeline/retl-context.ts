import type { ConnectionSettings } from '../connectors/connection-url.js';
import { masterKeysFromEnv } from '../connectors/master-key.js';
import { type RetlSource, RetlSourceStore } from '../control/retl-sources.js';
import { type RetlSync, RetlSyncStore } from '../control/retl-syncs.js';
import type { Secret } from '../core/secret.js';
import { pgConnectionConfig } from '../destinations/postgres/postgres-checks.js';
import { mssqlConnection, mssqlDriverConfig } from '../loaders/mssql/mssql-url.js';
import { HttpBatchSender } from '../reverse-etl/batch-sender.js';
import { PgSyncProgress } from '../reverse-etl/pg-sync-progress.js';
import {
  checkMssqlSource,
  checkPostgresSource,
  type SourceCheckReport,
} from '../reverse-etl/source-checks.js';
import type { WarehouseReader } from '../reverse-etl/warehouse-reader.js';
import { PgWarehouseReader } from '../reverse-etl/warehouse-reader.js';
import type { Runtime } from './runtime.js';
import { syncMetrics } from './sync-metrics.js';

/** Requests a sync keeps in flight to its receiver. */
export const DELIVERY_IN_FLIGHT = 3;

/** The reverse-ETL stores on the control database (its schema migrated first). */
export interface RetlStores {
  readonly sources: RetlSourceStore;
  readonly syncs: RetlSyncStore;
  readonly progress: PgSyncProgress;
}

/** Opens the reverse-ETL stores of the runtime's control database, migrating it once (like connectors). */
export async function retlStores(rt: Runtime): Promise<RetlStores> {
  // the connector store migrates the control schema on first use
  await rt.connectors();
  const control = await rt.control();
  const keys = masterKeysFromEnv();
  const schema = rt.settings.controlSchema;
  return {
    sources: new RetlSourceStore(control, keys, schema),
    syncs: new RetlSyncStore(control, keys, schema),
    progress: new PgSyncProgress(control, schema),
  };
}

/** The ordered checks of a source's warehouse (reach, TLS, authenticate, `select 1`, write warning). */
export function checkSource(
  settings: ConnectionSettings,
  password: Secret | undefined,
): Promise<SourceCheckReport> {
  return settings.engine === 'postgres'
    ? checkPostgresSource(settings, password)
    : checkMssqlSource(settings, mssqlDriverConfig(mssqlConnection(settings, password)), password);
}

/** A reader of the source's warehouse, with its decrypted password. */
export async function sourceReader(stores: RetlStores, source: RetlSource): Promise<WarehouseReader> {
  const { settings, password } = await stores.sources.credentials(source.id);
  if (settings.engine === 'mssql') {
    // the SQL Server driver loads only when a SQL Server source is read (it is slow to load)
    const { MssqlWarehouseReader } = await import('../reverse-etl/mssql-warehouse-reader.js');
    return new MssqlWarehouseReader(mssqlDriverConfig(mssqlConnection(settings, password)));
  }
  return new PgWarehouseReader(await pgConnectionConfig(settings, password), {
    label: `source ${source.id}`,
  });
}

/** The sender of a sync's batches to its endpoint, with its write key; retries are logged and counted. */
export async function syncSender(rt: Runtime, stores: RetlStores, sync: RetlSync): Promise<HttpBatchSender> {
  const writeKey = await stores.syncs.writeKey(sync.id);
  const metrics = syncMetrics(rt.metrics);
  return new HttpBatchSender(
    { url: sync.deliverTo, writeKey },
    {
      inFlight: DELIVERY_IN_FLIGHT,
      onRetry: (e) => {
        metrics.retries.inc({ sync: sync.id });
        rt.logger.warn(
          { sync: sync.id, batch: e.index, attempt: e.attempt, delayMs: e.delayMs },
          `sync ${sync.id}: batch ${e.index} got ${e.reason}; retrying in ${e.delayMs} ms`,
        );
      },
    },
  );
}
