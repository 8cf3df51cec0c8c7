import { describeConnection } from '../../connectors/connection-url.js';
import type { StoredSettings } from '../../connectors/connector-store.js';
import { mssqlDialect } from '../../loaders/mssql/mssql-dialect.js';
import { mssqlConnection } from '../../loaders/mssql/mssql-url.js';
import type { Warehouse } from '../../loaders/warehouse.js';
import type { DestinationKind } from '../destination-kind.js';
import { connection, parseWarehouseRequest } from '../warehouse-request.js';

/**
 * A SQL Server warehouse: `mssql://user@host:1433/db` or `sqlserver://host:1433;database=db;user=u`. The driver
 * (mssql, tedious) is loaded only when a SQL Server connector is checked or opened: it takes longer to load than
 * the rest of the CLI.
 */
export const mssqlKind: DestinationKind<StoredSettings, Warehouse> = {
  name: 'mssql',
  family: 'warehouse',
  parse: (request) => parseWarehouseRequest(request, 'mssql', mssqlDialect.capabilities.maxIdentifierLength),
  describe: (settings) => describeConnection(connection(settings)),
  check: async (t) => {
    const { checkMssqlWarehouse } = await import('./mssql-checks.js');
    return checkMssqlWarehouse(connection(t.settings), t.secret.password, t.schema);
  },
  open: async (t) => {
    const { MssqlWarehouse } = await import('../../loaders/mssql/mssql-warehouse.js');
    return new MssqlWarehouse({
      connection: mssqlConnection(connection(t.settings), t.secret.password),
      schema: t.schema,
      connectorId: t.connectorId,
      ...(t.session ? { session: t.session } : {}),
    });
  },
};
