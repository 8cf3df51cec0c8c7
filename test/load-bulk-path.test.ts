import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { PostgresWarehouse } from '../loaders/postgres/postgres-warehouse.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase, query } from './helpers/databases.js';
import { runLoadChild } from './helpers/load-child-process.js';
import { compareWithSource, load, warehouseState } from './helpers/load-harness.js';
import { manifests, openPlatform, type Platform, runExport } from './helpers/wharf.js';

const CONSTRAINTS = `select conrelid::regclass::text as t, conname, contype, pg_get_constraintdef(oid) as def
                       from pg_constraint where connamespace = $1::regnamespace order by 1, 2`;
const INDEXES = `select tablename, indexname, indexdef from pg_indexes where schemaname = $1 order by 1, 2`;
/** Column defaults of the warehouse tables (the direct path sets some for its COPY and must drop them). */
const DEFAULTS = `select table_name, column_name, column_default from information_schema.columns
                   where table_schema = $1 and column_default is not null order by 1, 2`;
const DAY = 86_400_000;

/** The schema as migrations create it, before any row. */
async function schemaBefore(warehouseUrl: string, schema = 'tracking') {
  const w = new PostgresWarehouse({ client: { connectionString: warehouseUrl }, schema });
  await w.migrate(
    trackingCatalog,
    trackingCatalog.streams.map((s) => s.name),
  );
  await w.close();
  return schemaNow(warehouseUrl, schema);
}

async function schemaNow(warehouseUrl: string, schema: string) {
  return {
    c: await query(warehouseUrl, CONSTRAINTS, [schema]),
    i: await query(warehouseUrl, INDEXES, [schema]),
    d: await query(warehouseUrl, DEFAULTS, [schema]),
  };
}

async function expectSchemaUnchanged(
  warehouseUrl: string,
  before: Awaited<ReturnType<typeof schemaBefore>>,
  schema = 'tracking',
) {
  expect(await schemaNow(warehouseUrl, schema)).toEqual(before);
  const fk = before.c.filter((r) => r.contype === 'f');
  expect(fk.length).toBeGreaterThan(5);
  expect(fk.every((r) => String(r.def).includes('DEFERRABLE INITIALLY DEFERRED'))).toBe(true);
}

describe('the empty-table fast path, several windows in one transaction (insert, then keys and indexes)', () => {
  let p: Platform;
  let warehouseUrl: string;

  beforeAll(async () => {
    p = await openPlatform(await createDatabase('wharf_bulk_src'));
    const c = await p.source.connect();
    await initSource(c, {});
    await seedSource(c, { accounts: 1, rows: 60_000, seed: 9, days: 2 });
    c.release();
    await runExport(p, { sizes: { fineMs: 60_000, coarseMs: DAY } });
    warehouseUrl = await createDatabase('wharf_bulk_wh');
  });

  afterAll(async () => {
    await p.close();
  });

  it('loads a backfill equal to the source and restores every key, index and foreign key', async () => {
    const t = { warehouseUrl, schema: 'tracking', account: 1, connectorId: 'bulk' };
    const before = await schemaBefore(warehouseUrl);
    expect((await manifests(p)).length).toBeGreaterThan(1);

    const summary = await load(p.source, p.store, t, { rowBudget: 10_000_000 });
    expect(summary.transactions).toBe(1);
    expect(summary.rowsStaged).toBeGreaterThan(50_000);
    const cmp = await compareWithSource(p.source, t);
    for (const [stream, v] of Object.entries(cmp)) expect(v.warehouse, stream).toEqual(v.source);
    await expectSchemaUnchanged(warehouseUrl, before);
  });
});

describe('the empty-table fast path, one window (COPY straight into the target)', () => {
  let p: Platform;
  let warehouseUrl: string;

  beforeAll(async () => {
    p = await openPlatform(await createDatabase('wharf_direct_src'));
    const c = await p.source.connect();
    await initSource(c, {});
    // all history inside one closed 30-day window
    const boundary = Math.floor(Date.now() / (30 * DAY)) * 30 * DAY;
    await seedSource(c, { accounts: 2, rows: 120_000, seed: 11, days: 3, end: new Date(boundary - 60_000) });
    c.release();
    await runExport(p, { sizes: { fineMs: 60_000, coarseMs: 30 * DAY }, maxWindows: 1 });
    warehouseUrl = await createDatabase('wharf_direct_wh');
  });

  afterAll(async () => {
    await p.close();
  });

  it('equals the source, keeps the schema as it was, stamps the window, and a replay changes nothing', async () => {
    const [manifest, ...more] = await manifests(p);
    expect(more).toEqual([]);
    const clicks = manifest!.files.filter((f) => f.stream === 'clicks' && f.account === '1');
    expect(clicks.reduce((n, f) => n + f.rows, 0)).toBeGreaterThan(50_000);

    const t = { warehouseUrl, schema: 'tracking', account: 1, connectorId: 'direct' };
    const before = await schemaBefore(warehouseUrl);
    const summary = await load(p.source, p.store, t);
    expect(summary.transactions).toBe(1);
    const cmp = await compareWithSource(p.source, t);
    for (const [stream, v] of Object.entries(cmp)) expect(v.warehouse, stream).toEqual(v.source);
    await expectSchemaUnchanged(warehouseUrl, before);

    const stamped = await query(
      warehouseUrl,
      `select _wharf_window as w, count(*)::int as n, count(distinct _wharf_loaded_at)::int as times
         from tracking.clicks group by 1`,
    );
    expect(stamped).toEqual([{ w: manifest!.window.id, n: cmp.clicks!.source.rows, times: 1 }]);
    const status = await query(
      warehouseUrl,
      `select window_id from tracking._wharf_sync_status where stream = 'clicks'`,
    );
    expect(status).toEqual([{ window_id: manifest!.window.id }]);
    // another account's rows never arrive
    expect(
      await query(warehouseUrl, 'select count(*)::int as n from tracking.clicks where account_id <> 1'),
    ).toEqual([{ n: 0 }]);

    const state = await warehouseState(t);
    const replay = await load(p.source, p.store, t, { replay: {} });
    expect(replay.rowsStaged).toBeGreaterThan(50_000);
    expect(await warehouseState(t)).toEqual(state);
  });

  // killed while COPY writes into the target itself, and after it, before the keys are rebuilt
  it.each(['copy:clicks', 'merge:clicks'])(
    'killed with SIGKILL at %s leaves the table empty with its schema intact; a restart completes it',
    async (step) => {
      const schema = `direct_${step.replace(/\W/g, '_')}`;
      const t = { warehouseUrl, schema, account: 1, connectorId: 'crash' };
      const before = await schemaBefore(warehouseUrl, schema);
      const child = await runLoadChild({
        CONTROL_URL: p.sourceUrl,
        WAREHOUSE_URL: warehouseUrl,
        STAGING_DIR: p.stagingDir,
        SCHEMA: schema,
        ACCOUNT: '1',
        KILL_AT: step,
      });
      expect(child.signal, child.out).toBe('SIGKILL');
      expect(await query(warehouseUrl, `select count(*)::int as n from "${schema}".clicks`)).toEqual([
        { n: 0 },
      ]);
      await expectSchemaUnchanged(warehouseUrl, before, schema);

      await load(p.source, p.store, t);
      const cmp = await compareWithSource(p.source, t);
      for (const [stream, v] of Object.entries(cmp)) expect(v.warehouse, stream).toEqual(v.source);
      await expectSchemaUnchanged(warehouseUrl, before, schema);
      const state = await warehouseState(t);
      expect(state.ledgerRows).toBe(state.ledgerDistinct);
    },
  );
});
