import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { insertLiveEvents } from '../source/source-writer.js';
import { openStagingStore } from '../staging/open-store.js';
import { createDatabase } from './helpers/databases.js';
import { compareWithSource, load, type Target, warehouseState } from './helpers/load-harness.js';
import { manifests, openPlatform, type Platform, runExport, sleep, tempDir } from './helpers/wharf.js';

let p: Platform;
let warehouseUrl: string;

const sizes = { fineMs: 60_000, coarseMs: 86_400_000 };

beforeAll(async () => {
  const url = await createDatabase('wharf_load_src');
  p = await openPlatform(url);
  const c = await p.source.connect();
  await initSource(c, {});
  await seedSource(c, { accounts: 3, rows: 4000, seed: 7, days: 3 });
  c.release();
  await runExport(p, { sizes });
  warehouseUrl = await createDatabase('wharf_load_wh');
});

afterAll(async () => {
  await p.close();
});

function target(schema: string, account: number, extra: Partial<Target> = {}): Target {
  return { warehouseUrl, schema, account, connectorId: `c-${schema}`, ...extra };
}

function expectEqual(cmp: Record<string, { source: unknown; warehouse: unknown }>) {
  for (const [stream, v] of Object.entries(cmp)) {
    expect(v.warehouse, stream).toEqual(v.source);
  }
}

describe('load into PostgreSQL', () => {
  it("makes each warehouse equal its account's source rows, and only those", async () => {
    const a = target('acct_one', 1);
    const b = target('acct_two', 2);
    const sa = await load(p.source, p.store, a);
    await load(p.source, p.store, b);
    expect(sa.windows).toBeGreaterThan(3);
    const cmpA = await compareWithSource(p.source, a);
    expectEqual(cmpA);
    expectEqual(await compareWithSource(p.source, b));
    expect((cmpA.clicks!.source as { rows: number }).rows).toBeGreaterThan(100);
    const wh = new pg.Pool({ connectionString: warehouseUrl });
    const foreign = await wh.query(
      `select (select count(*) from acct_one.clicks where account_id <> 1) + (select count(*) from acct_two.clicks where account_id <> 2) + (select count(*) from acct_one.accounts where id <> 1) as n`,
    );
    await wh.end();
    expect(Number(foreign.rows[0].n)).toBe(0);
  });

  it('a second load changes nothing and adds no ledger rows', async () => {
    const a = target('acct_one', 1);
    const before = await warehouseState(a);
    const again = await load(p.source, p.store, a);
    expect(again.windows).toBe(0);
    expect(await warehouseState(a)).toEqual(before);
    expect(before.ledgerRows).toBe(before.ledgerDistinct);
  });

  it('replaying every window five times in random orders leaves tables and ledger identical', async () => {
    const a = target('acct_one', 1);
    const before = await warehouseState(a);
    const windows = (await manifests(p)).map((m) => m.window);
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 5; round++) {
      const order = [...windows].sort(() => rand() - 0.5);
      for (const w of order.slice(0, 12)) {
        await load(p.source, p.store, a, { replay: { from: new Date(w.start), to: new Date(w.end) } });
      }
      await load(p.source, p.store, a, { replay: {} });
      expect(await warehouseState(a)).toEqual(before);
    }
  });

  it('replaying an old window after newer updates rolls nothing back, and soft deletes arrive', async () => {
    const a = target('acct_one', 1);
    const link = await p.source.query<{ id: string }>(
      'select id from links where account_id = 1 order by id limit 1',
    );
    const id = link.rows[0]!.id;
    const old = (await manifests(p))[0]!.window;
    await p.source.query(
      `update links set url = 'https://new.example/⚡', deleted_at = now() where id = $1`,
      [id],
    );
    await p.source.query(
      `update conversions set status = 'reversed' where account_id = 1 and status = 'pending'`,
    );
    await sleep(1100);
    await runExport(p, { sizes: { fineMs: 1000, coarseMs: 86_400_000 } });
    await load(p.source, p.store, a);
    expectEqual(await compareWithSource(p.source, a));
    await load(p.source, p.store, a, { replay: { from: new Date(old.start), to: new Date(old.end) } });
    await load(p.source, p.store, a, { replay: {} });
    expectEqual(await compareWithSource(p.source, a));
    const wh = new pg.Pool({ connectionString: warehouseUrl });
    const row = await wh.query('select url, deleted_at from acct_one.links where id = $1', [id]);
    await wh.end();
    expect(row.rows[0].url).toBe('https://new.example/⚡');
    expect(row.rows[0].deleted_at).not.toBeNull();
  });

  it('loads only the chosen streams, and a stream added later gets its history from the files', async () => {
    const t = target('acct_three', 3, { streams: ['accounts', 'affiliates'] });
    await load(p.source, p.store, t);
    expectEqual(await compareWithSource(p.source, t));
    const wh = new pg.Pool({ connectionString: warehouseUrl });
    const tables = await wh.query(
      `select table_name from information_schema.tables where table_schema = 'acct_three' order by 1`,
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual([
      '_wharf_loads',
      '_wharf_migrations',
      'accounts',
      'affiliates',
    ]);
    const wider = target('acct_three', 3, { streams: ['accounts', 'affiliates', 'programmes', 'payouts'] });
    const s = await load(p.source, p.store, wider);
    expect(s.windows).toBeGreaterThan(0);
    expectEqual(await compareWithSource(p.source, wider));
    await wh.end();
  });

  it('works with a hostile schema name and harms nothing', async () => {
    const wh = new pg.Pool({ connectionString: warehouseUrl });
    await wh.query('create table if not exists x (id int)');
    const t = target('a"b; drop table x --', 2);
    await load(p.source, p.store, t);
    expectEqual(await compareWithSource(p.source, t));
    const x = await wh.query(`select to_regclass('public.x') as t`);
    expect(x.rows[0].t).toBe('x');
    await wh.end();
  });
});

describe('bad input is one clear error and nothing partial', () => {
  const schemas = ['bad_sha', 'bad_missing', 'bad_catalog', 'bad_drift', 'bad_value'];
  let pendingFrom: Date;

  beforeAll(async () => {
    // every target is up to date, then new events arrive and are exported: there is something to load
    for (const schema of schemas) await load(p.source, p.store, target(schema, 2));
    pendingFrom = new Date((await manifests(p)).at(-1)!.window.end);
    const c = await p.source.connect();
    await insertLiveEvents(c, { accounts: [2], clicks: 40, seed: 5 });
    c.release();
    await sleep(1100);
    await runExport(p, { sizes: { fineMs: 1000, coarseMs: 86_400_000 } });
  });

  async function copyStore() {
    const dir = tempDir('wharf-bad-');
    await cp(p.stagingDir, dir, { recursive: true });
    return { dir, store: openStagingStore(`file://${dir}`) };
  }

  async function expectUntouched(t: Target, run: () => Promise<unknown>, message: RegExp) {
    const before = await warehouseState(t);
    const error = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    const line = (error as { oneLine?: () => string }).oneLine?.() ?? String(error);
    expect(line).toMatch(message);
    expect(line).toMatch(/connector c-/);
    expect(line).toMatch(/window \d{8}T\d{6}Z_/);
    expect(line).not.toMatch(/\n/);
    expect(await warehouseState(t)).toEqual(before);
  }

  async function pendingFile(stream: string) {
    const ms = (await manifests(p)).filter((m) => new Date(m.window.start) >= pendingFrom);
    for (const m of ms) {
      const f = m.files.find((x) => x.stream === stream && x.account === '2');
      if (f) return { m, f };
    }
    throw new Error(`no pending ${stream} file`);
  }

  it('a file whose sha256 does not match', async () => {
    const t = target('bad_sha', 2);
    const { dir, store } = await copyStore();
    const { f } = await pendingFile('clicks');
    const path = join(dir, f.key);
    const bytes = await readFile(path);
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 0xff;
    await rm(path);
    await writeFile(path, bytes);
    await expectUntouched(t, () => load(p.source, store, t), /sha256.*stream clicks|stream clicks.*sha256/i);
  });

  it('a missing file', async () => {
    const t = target('bad_missing', 2);
    const { dir, store } = await copyStore();
    const { f } = await pendingFile('clicks');
    await rm(join(dir, f.key));
    await expectUntouched(t, () => load(p.source, store, t), /missing|not found|no such|does not exist/i);
  });

  it('a manifest from an unknown catalog version', async () => {
    const t = target('bad_catalog', 2);
    const { dir, store } = await copyStore();
    const { m } = await pendingFile('clicks');
    const key = `csv/${m.window.id}/_manifest.json`;
    const edited = JSON.parse(await readFile(join(dir, key), 'utf8'));
    edited.catalog_version = 99;
    await rm(join(dir, key));
    await writeFile(join(dir, key), JSON.stringify(edited));
    await expectUntouched(t, () => load(p.source, store, t), /catalog tracking version 99/);
  });

  it('a warehouse table changed by hand (a column dropped)', async () => {
    const t = target('bad_drift', 2);
    const wh = new pg.Pool({ connectionString: warehouseUrl });
    await wh.query('alter table bad_drift.clicks drop column referrer');
    await wh.end();
    const before = await warehouseState(t).catch(() => undefined);
    const error = await load(p.source, p.store, t).then(
      () => undefined,
      (e: unknown) => e as { oneLine(): string },
    );
    expect(error?.oneLine()).toMatch(
      /warehouse table bad_drift\.clicks has no column referrer \(connector c-bad_drift, stream clicks\); the table was changed by hand/,
    );
    expect(await warehouseState(t).catch(() => undefined)).toEqual(before);
  });

  it('a value the warehouse rejects', async () => {
    const t = target('bad_value', 2);
    const wh = new pg.Pool({ connectionString: warehouseUrl });
    await wh.query(
      `alter table bad_value.clicks add constraint clicks_before_cutover check (occurred_at < '${pendingFrom.toISOString()}') not valid`,
    );
    await wh.end();
    await expectUntouched(t, () => load(p.source, p.store, t), /clicks_before_cutover.*stream clicks/);
  });
});
