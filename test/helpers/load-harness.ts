import pg from 'pg';
import { trackingCatalog } from '../../catalog/tracking.js';
import { type LoadOptions, loadConnector } from '../../loaders/load.js';
import { PostgresWarehouse } from '../../loaders/postgres/postgres-warehouse.js';
import type { StagingStore } from '../../staging/staging-store.js';
import { tableChecksum } from './compare.js';

export const ALL_STREAMS = trackingCatalog.streams.map((s) => s.name);

export interface Target {
  readonly warehouseUrl: string;
  readonly schema: string;
  readonly account: number;
  readonly connectorId: string;
  readonly streams?: readonly string[];
}

/** Loads a connector's pending windows (or replays) into a PostgreSQL warehouse. */
export async function load(
  control: pg.Pool,
  store: StagingStore,
  target: Target,
  extra: Partial<LoadOptions> = {},
) {
  const warehouse = new PostgresWarehouse({
    client: { connectionString: target.warehouseUrl },
    schema: target.schema,
    connectorId: target.connectorId,
  });
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
}

/** Per stream: source checksum of the account's rows and warehouse checksum. */
export async function compareWithSource(
  source: pg.Pool,
  target: Target,
  streams = target.streams ?? ALL_STREAMS,
) {
  const wh = new pg.Pool({ connectionString: target.warehouseUrl, max: 2 });
  try {
    const out: Record<string, { source: unknown; warehouse: unknown }> = {};
    for (const s of trackingCatalog.streams.filter((x) => streams.includes(x.name))) {
      out[s.name] = {
        source: await tableChecksum(source, 'public', s, target.account),
        warehouse: await tableChecksum(wh, target.schema, s),
      };
    }
    return out;
  } finally {
    await wh.end();
  }
}

export async function warehouseState(target: Target) {
  const wh = new pg.Pool({ connectionString: target.warehouseUrl, max: 2 });
  try {
    const tables: Record<string, unknown> = {};
    for (const s of trackingCatalog.streams.filter((x) => (target.streams ?? ALL_STREAMS).includes(x.name))) {
      tables[s.name] = await tableChecksum(wh, target.schema, s);
    }
    const ledger = await wh.query<{ n: string; d: string }>(
      `select count(*) as n, count(distinct (window_id, stream)) as d from "${target.schema.replace(/"/g, '""')}"._wharf_loads`,
    );
    return { tables, ledgerRows: Number(ledger.rows[0]!.n), ledgerDistinct: Number(ledger.rows[0]!.d) };
  } finally {
    await wh.end();
  }
}
