import type { Connector } from '../connectors/connector-store.js';
import type { DestinationTarget } from '../destinations/destination-kind.js';
import type { Runtime } from './runtime.js';

/**
 * The target a connector's kind checks and opens: its settings, decrypted secret fields, schema, and the limits
 * of its sessions (lock and statement timeouts; `signal` stops them when the process is stopping).
 */
export async function destinationTarget(
  rt: Runtime,
  connector: Connector,
  signal?: AbortSignal,
): Promise<DestinationTarget> {
  const creds = await (await rt.connectors()).credentials(connector.id);
  return {
    connectorId: String(connector.id),
    settings: creds.settings,
    secret: creds.secret,
    schema: connector.schema,
    session: rt.sessionLimits(signal),
  };
}
