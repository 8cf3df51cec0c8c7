import type pg from 'pg';
import { trackingCatalog } from '../../catalog/tracking.js';
import { type LoadOptions, loadConnector } from '../../loaders/load.js';
import type { StagingStore } from '../../staging/staging-store.js';
import { type Checksum, tableChecksum } from './compare.js';
import { type EngineHarness, postgresHarness } from './engines.js';

export const ALL_STREAMS = trackingCatalog.streams.map((s) => s.name);

/** One connector's warehouse: an engine harness, or (the default) the PostgreSQL database at `warehouseUrl`. */
export interface Target {
  readonly warehouseUrl?: string;
  readonly engine?: EngineHarness;
  readonly schema: string;
  readonly account: number;
  readonly connectorId: string;
  readonly streams?: readonly string[];
}

/** Runs `use` with the target's engine; a harness made here for `warehouseUrl` is closed afterwards. */
async function withEngine<T>(target: Target, use: (engine: EngineHarness) => Promise<T>): Promise<T> {
  if (target.engine) return use(target.engine);
  if (!target.warehouseUrl) throw new Error('a target needs an engine or a warehouseUrl');
  const engine = postgresHarness(target.warehouseUrl);
  try {
    return await use(engine);
  } finally {
    await engine.close();
  }
}

/** Loads a connector's pending windows (or replays) into the target's warehouse. */
export async function load(
  control: pg.Pool,
  store: StagingStore,
  target: Target,
  extra: Partial<LoadOptions> = {},
) {
  return withEngine(target, async (engine) => {
    const warehouse = engine.openWarehouse(target.schema, target.connectorId);
    try {
      return await loadConnector({
        control,
        controlSchema: 'wharf',
        store,
        catalog: trackingCatalog,
        target: {
          connectorId: target.connectorId,
          account: String(target.account),
          streams: target.streams ?? ALL_STREAMS,
        },
        warehouse,
        ...extra,
      });
    } finally {
      await warehouse.close();
    }
  });
}

/** Per stream: checksum of the account's source rows (always PostgreSQL) and of the warehouse table. */
export async function compareWithSource(
  source: pg.Pool,
  target: Target,
  streams = target.streams ?? ALL_STREAMS,
): Promise<Record<string, { source: Checksum; warehouse: Checksum }>> {
  return withEngine(target, async (engine) => {
    const out: Record<string, { source: Checksum; warehouse: Checksum }> = {};
    for (const s of trackingCatalog.streams.filter((x) => streams.includes(x.name))) {
      out[s.name] = {
        source: await tableChecksum(source, 'public', s, target.account),
        warehouse: await engine.tableChecksum(target.schema, s),
      };
    }
    return out;
  });
}

/** The target's tables (canonical checksums) and ledger size. */
export async function warehouseState(target: Target) {
  return withEngine(target, async (engine) => {
    const tables: Record<string, Checksum> = {};
    for (const s of trackingCatalog.streams.filter((x) => (target.streams ?? ALL_STREAMS).includes(x.name))) {
      tables[s.name] = await engine.tableChecksum(target.schema, s);
    }
    const ledger = await engine.ledger(target.schema);
    const distinct = new Set(ledger.map((r) => JSON.stringify([r.windowId, r.stream])));
    return { tables, ledgerRows: ledger.length, ledgerDistinct: distinct.size };
  });
}
