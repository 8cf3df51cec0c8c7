import { Secret } from '../../core/secret.js';
import type { Runtime } from '../../pipeline/runtime.js';

/**
 * Adds `n` warehouse connectors (accounts `firstAccount`…) straight through the connector store, without the
 * destination checks: their warehouses need not exist (the API's list and status read the control database).
 */
export async function addManyConnectors(rt: Runtime, n: number, firstAccount: number): Promise<string[]> {
  const store = await rt.connectors();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = await store.add({
      account: firstAccount + i,
      settings: {
        engine: 'postgres',
        host: `warehouse-${firstAccount + i}.invalid`,
        port: 5432,
        database: 'analytics',
        user: 'loader',
        options: { sslmode: 'verify-full' },
      },
      password: new Secret(`unused-${i}`),
    });
    ids.push(String(c.id));
  }
  return ids;
}
