import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase, query } from './helpers/databases.js';
import { compareWithSource, load } from './helpers/load-harness.js';
import { openPlatform, type Platform, runExport } from './helpers/wharf.js';

let p: Platform;
let warehouseUrl: string;

beforeAll(async () => {
  p = await openPlatform(await createDatabase('wharf_bulk_src'));
  const c = await p.source.connect();
  await initSource(c, {});
  await seedSource(c, { accounts: 1, rows: 60_000, seed: 9, days: 2 });
  c.release();
  await runExport(p, { sizes: { fineMs: 60_000, coarseMs: 86_400_000 } });
  warehouseUrl = await createDatabase('wharf_bulk_wh');
});

afterAll(async () => {
  await p.close();
});

describe('the empty-table fast path (indexes built after the insert)', () => {
  it('loads a backfill equal to the source and restores every key, index and foreign key', async () => {
    const t = { warehouseUrl, schema: 'tracking', account: 1, connectorId: 'bulk' };
    const constraints = `select conrelid::regclass::text as t, conname, contype, pg_get_constraintdef(oid) as def
                           from pg_constraint where connamespace = 'tracking'::regnamespace order by 1, 2`;
    const indexes = `select tablename, indexname, indexdef from pg_indexes where schemaname = 'tracking' order by 1, 2`;
    // the schema as migrations create it, before any row
    const { PostgresWarehouse } = await import('../loaders/postgres/postgres-warehouse.js');
    const { trackingCatalog } = await import('../catalog/tracking.js');
    const w = new PostgresWarehouse({ client: { connectionString: warehouseUrl }, schema: 'tracking' });
    await w.migrate(
      trackingCatalog,
      trackingCatalog.streams.map((s) => s.name),
    );
    await w.close();
    const before = { c: await query(warehouseUrl, constraints), i: await query(warehouseUrl, indexes) };

    const summary = await load(p.source, p.store, t, { rowBudget: 10_000_000 });
    expect(summary.transactions).toBe(1);
    expect(summary.rowsStaged).toBeGreaterThan(50_000);
    const cmp = await compareWithSource(p.source, t);
    for (const [stream, v] of Object.entries(cmp)) expect(v.warehouse, stream).toEqual(v.source);
    expect(await query(warehouseUrl, constraints)).toEqual(before.c);
    expect(await query(warehouseUrl, indexes)).toEqual(before.i);
    const fk = before.c.filter((r) => r.contype === 'f');
    expect(fk.length).toBeGreaterThan(5);
    expect(fk.every((r) => String(r.def).includes('DEFERRABLE INITIALLY DEFERRED'))).toBe(true);
  });
});
