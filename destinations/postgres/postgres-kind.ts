import { describeConnection } from '../../connectors/connection-url.js';
import type { StoredSettings } from '../../connectors/connector-store.js';
import { postgresDialect } from '../../loaders/postgres/postgres-dialect.js';
import { PostgresWarehouse } from '../../loaders/postgres/postgres-warehouse.js';
import type { Warehouse } from '../../loaders/warehouse.js';
import type { DestinationKind } from '../destination-kind.js';
import { connection, parseWarehouseRequest } from '../warehouse-request.js';
import { checkPostgresWarehouse, pgConnectionConfig } from './postgres-checks.js';

/** A PostgreSQL warehouse: `postgres://user@host:5432/db?sslmode=…`, the password as the secret field `password`. */
export const postgresKind: DestinationKind<StoredSettings, Warehouse> = {
  name: 'postgres',
  family: 'warehouse',
  parse: (request) =>
    parseWarehouseRequest(request, 'postgres', postgresDialect.capabilities.maxIdentifierLength),
  describe: (settings) => describeConnection(connection(settings)),
  check: (t) =>
    checkPostgresWarehouse(
      connection(t.settings),
      t.secret.password,
      t.schema,
      t.session ? { lockTimeoutMs: t.session.lockTimeoutMs } : {},
    ),
  open: async (t) =>
    new PostgresWarehouse({
      client: await pgConnectionConfig(connection(t.settings), t.secret.password),
      schema: t.schema,
      connectorId: t.connectorId,
      ...(t.session ? { session: t.session } : {}),
    }),
};
