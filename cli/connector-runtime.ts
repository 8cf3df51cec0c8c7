import { pgConnectionConfig } from '../connectors/checks-postgres.js';
import { parseConnectionUrl } from '../connectors/connection-url.js';
import { type Connector, ConnectorStore } from '../connectors/connector-store.js';
import { masterKeysFromEnv } from '../connectors/master-key.js';
import { migrateControl } from '../control/control-schema.js';
import { UsageError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { PostgresWarehouse } from '../loaders/postgres/postgres-warehouse.js';
import type { Warehouse } from '../loaders/warehouse.js';
import type { CommandContext } from './context.js';
import { type CheckReport, checkWarehouse } from './warehouse-checks.js';

const migrated = new WeakSet<object>();

/** The connector store on the control database (migrated on first use). */
export async function connectorStore(ctx: CommandContext): Promise<ConnectorStore> {
  const control = await ctx.control();
  if (!migrated.has(control)) {
    const client = await control.connect();
    try {
      await migrateControl(client, ctx.settings.controlSchema);
    } finally {
      client.release();
    }
    migrated.add(control);
  }
  return new ConnectorStore(control, masterKeysFromEnv(), ctx.settings.controlSchema);
}

export async function activeConnectors(ctx: CommandContext): Promise<Connector[]> {
  return (await (await connectorStore(ctx)).list()).filter((c) => c.state === 'active');
}

/** Opens a connector's warehouse with its decrypted credentials. */
export async function openWarehouse(ctx: CommandContext, connector: Connector): Promise<Warehouse> {
  const creds = await (await connectorStore(ctx)).credentials(connector.id);
  return warehouseFor(connector.engine, creds.settings, creds.password, connector.schema, connector.id);
}

export async function warehouseFor(
  engine: Connector['engine'],
  settings: Connector['settings'],
  password: Secret | undefined,
  schema: string,
  connectorId: string,
): Promise<Warehouse> {
  if (engine === 'postgres') {
    return new PostgresWarehouse({
      client: await pgConnectionConfig(settings, password),
      schema,
      connectorId,
    });
  }
  const { openMssqlWarehouse } = await import('./mssql-runtime.js');
  return openMssqlWarehouse(settings, password, schema, connectorId);
}

export interface AddConnectorRequest {
  readonly account: number | string;
  readonly engine: 'postgres' | 'mssql' | 'bucket';
  readonly url: string;
  readonly password?: Secret;
  readonly schema: string;
  readonly streams: readonly string[];
  readonly format: 'csv' | 'parquet' | 'json';
}

/**
 * `connectors add`: refuses a second active connector for the account, checks the destination in
 * order (reach, TLS, authenticate, create schema/table/temp table, bulk load), runs the warehouse
 * migrations, and only then stores the connector.
 */
export async function addConnectorFlow(
  ctx: CommandContext,
  request: AddConnectorRequest,
): Promise<{ id: string; checks: CheckReport }> {
  const store = await connectorStore(ctx);
  const existing = (await store.list()).find(
    (c) => String(c.account) === String(request.account) && c.state !== 'disabled',
  );
  if (existing) {
    throw new UsageError(
      `account ${request.account} already has active connector ${existing.id}`,
      `disable it first: wharf connectors disable ${existing.id}`,
    );
  }
  if (request.engine === 'bucket') {
    throw new UsageError(
      'bucket delivery connectors are not available in this version',
      'use --engine postgres or mssql',
    );
  }
  const parsed = parseConnectionUrl(request.url, request.password);
  if (parsed.settings.engine !== request.engine) {
    throw new UsageError(
      `--engine ${request.engine} does not match the URL scheme (a ${parsed.settings.engine} URL)`,
      'use postgres:// for postgres and mssql:// or sqlserver:// for mssql',
    );
  }
  const checks = await checkWarehouse(parsed.settings, parsed.password, request.schema);
  const warehouse = await warehouseFor(
    request.engine,
    parsed.settings,
    parsed.password,
    request.schema,
    'new',
  );
  try {
    await warehouse.migrate(ctx.catalog, request.streams);
  } finally {
    await warehouse.close();
  }
  const connector = await store.add({
    account: request.account,
    settings: parsed.settings,
    ...(parsed.password ? { password: parsed.password } : {}),
    schema: request.schema,
    streams: request.streams,
    format: request.format,
  });
  return { id: String(connector.id), checks };
}
