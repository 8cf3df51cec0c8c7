import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deliveredWindows,
  knownDeliveries,
  listDeliveries,
  pendingDeliveries,
  plannedThrough,
  recordDelivered,
  recordPlanned,
} from '../control/deliveries.js';
import { WharfError } from '../core/errors.js';
import { deliveryId, type PlannedDelivery } from '../delivery/delivery-plan.js';
import { createDatabase } from './helpers/databases.js';
import { addBucketConnectorRow, migrateDeliveryControl } from './helpers/delivery.js';

// a schema name that would break SQL built by pasting it
const SCHEMA = 'wharf "control"; drop table x; --';
let pool: pg.Pool;
let connector: string;

const T0 = Date.UTC(2026, 10, 23, 9, 20);
const MIN = 60_000;

function planned(startMin: number, endMin: number, revision = 0): PlannedDelivery {
  const start = new Date(T0 + startMin * MIN);
  const end = new Date(T0 + endMin * MIN);
  const windows = Array.from({ length: endMin - startMin }, (_, i) =>
    deliveryId(new Date(start.getTime() + i * MIN), new Date(start.getTime() + (i + 1) * MIN)),
  );
  return {
    id: deliveryId(start, end, revision),
    baseId: deliveryId(start, end),
    revision,
    start,
    end,
    windows,
  };
}

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: await createDatabase('wharf_delivery_state') });
  await migrateDeliveryControl(pool, SCHEMA);
  connector = await addBucketConnectorRow(pool, SCHEMA, 7, 'parquet', 's3://acme/wharf');
});

afterAll(async () => {
  await pool?.end();
});

describe('delivery state', () => {
  it('records deliveries pending with their windows in order, once, then done after the manifest', async () => {
    const a = planned(0, 10);
    const b = planned(10, 20);
    await recordPlanned(pool, SCHEMA, connector, [a, b]);
    await recordPlanned(pool, SCHEMA, connector, [a]); // planning again changes nothing
    const pending = await pendingDeliveries(pool, SCHEMA, connector);
    expect(pending.map((d) => [d.id, d.status, d.windows])).toEqual([
      [a.id, 'pending', a.windows],
      [b.id, 'pending', b.windows],
    ]);
    expect(await plannedThrough(pool, SCHEMA, connector)).toEqual(b.end);

    await recordDelivered(pool, SCHEMA, connector, a.id, {
      manifestKey: `wharf/_manifests/${a.id}.json`,
      files: 3,
      rows: 1200,
      bytes: 45678,
    });
    await recordDelivered(pool, SCHEMA, connector, b.id, {
      manifestKey: undefined,
      files: 0,
      rows: 0,
      bytes: 0,
    });
    expect(await pendingDeliveries(pool, SCHEMA, connector)).toEqual([]);
    const all = await listDeliveries(pool, SCHEMA, connector);
    expect(all.map((d) => [d.id, d.status, d.outcome])).toEqual([
      [b.id, 'done', { manifestKey: undefined, files: 0, rows: 0, bytes: 0 }],
      [a.id, 'done', { manifestKey: `wharf/_manifests/${a.id}.json`, files: 3, rows: 1200, bytes: 45678 }],
    ]);
    // done is decided once
    const again = await recordDelivered(pool, SCHEMA, connector, a.id, {
      manifestKey: undefined,
      files: 0,
      rows: 0,
      bytes: 0,
    }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(WharfError);
    expect((again as WharfError).oneLine()).toMatch(/is not pending/);
  });

  it('knows which windows are held, and the deliveries a replay builds on', async () => {
    const held = await deliveredWindows(pool, SCHEMA, connector, [planned(0, 10).windows[3]!, 'nope']);
    expect([...held]).toEqual([planned(0, 10).windows[3]]);
    const replay = planned(0, 10, 1);
    await recordPlanned(pool, SCHEMA, connector, [replay]);
    expect(await plannedThrough(pool, SCHEMA, connector)).toEqual(new Date(T0 + 20 * MIN));
    const known = await knownDeliveries(pool, SCHEMA, connector, {
      from: new Date(T0 + 5 * MIN),
      to: new Date(T0 + 9 * MIN),
    });
    expect(known.map((d) => [d.baseId, d.revision])).toEqual([
      [planned(0, 10).id, 0],
      [planned(0, 10).id, 1],
    ]);
    expect((await knownDeliveries(pool, SCHEMA, connector)).length).toBe(3);
    // the schema name was quoted everywhere: the tables are there, nothing else happened
    const tables = await pool.query<{ table_name: string }>(
      'select table_name from information_schema.tables where table_schema = $1 order by 1',
      [SCHEMA],
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(['connectors', 'deliveries', 'delivery_windows', 'windows']),
    );
  });
});
