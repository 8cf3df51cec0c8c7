import type { Connector } from '../connectors/connector-store.js';
import type { DestinationTarget } from '../destinations/destination-kind.js';
import type { Runtime } from './runtime.js';

/** The target a connector's kind checks and opens: its settings, decrypted secret fields, schema. */
export async function destinationTarget(rt: Runtime, connector: Connector): Promise<DestinationTarget> {
  const creds = await (await rt.connectors()).credentials(connector.id);
  return {
    connectorId: String(connector.id),
    settings: creds.settings,
    secret: creds.secret,
    schema: connector.schema,
  };
}
