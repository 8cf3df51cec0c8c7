/**
 * The load conformance suite: one body, run against every warehouse engine (see helpers/engines.ts).
 * Equality with the source, replay idempotency and the version guard, chosen streams, quoting, bad input.
 * SQL Server runs when WHARF_TEST_MSSQL_URL names a live server and is reported as skipped otherwise.
 */
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { insertLiveEvents } from '../source/source-writer.js';
import { openStagingStore } from '../staging/open-store.js';
import { createDatabase } from './helpers/databases.js';
import { type EngineHarness, type EngineSpec, engines } from './helpers/engines.js';
import { compareWithSource, load, type Target, warehouseState } from './helpers/load-harness.js';
import { manifests, openPlatform, type Platform, runExport, sleep, tempDir } from './helpers/wharf.js';

const sizes = { fineMs: 60_000, coarseMs: 86_400_000 };

function expectEqual(cmp: Record<string, { source: unknown; warehouse: unknown }>) {
  for (const [stream, v] of Object.entries(cmp)) {
    expect(v.warehouse, stream).toEqual(v.source);
  }
}

function conformance(spec: EngineSpec) {
  let p: Platform;
  let engine: EngineHarness;

  beforeAll(async () => {
    const url = await createDatabase(`wharf_conf_src`);
    p = await openPlatform(url);
    const c = await p.source.connect();
    await initSource(c, {});
    await seedSource(c, { accounts: 3, rows: 4000, seed: 7, days: 3 });
    c.release();
    await runExport(p, { sizes });
    engine = await spec.open();
  });

  afterAll(async () => {
    await engine?.close();
    await p?.close();
  });

  function target(schema: string, account: number, extra: Partial<Target> = {}): Target {
    return { engine, schema, account, connectorId: `c-${schema}`, ...extra };
  }

  const table = (schema: string, name: string) => `${engine.q(schema)}.${engine.q(name)}`;

  async function count(text: string): Promise<number> {
    const rows = await engine.rows<{ n: number | string }>(text);
    return Number(rows[0]!.n);
  }

  describe('load', () => {
    it("makes each warehouse equal its account's source rows, and only those", async () => {
      const a = target('acct_one', 1);
      const b = target('acct_two', 2);
      const sa = await load(p.source, p.store, a);
      await load(p.source, p.store, b);
      expect(sa.windows).toBeGreaterThan(3);
      const cmpA = await compareWithSource(p.source, a);
      expectEqual(cmpA);
      expectEqual(await compareWithSource(p.source, b));
      expect(cmpA.clicks!.source.rows).toBeGreaterThan(100);
      const foreign = await count(
        `select (select count(*) from ${table('acct_one', 'clicks')} where account_id <> 1) + (select count(*) from ${table('acct_two', 'clicks')} where account_id <> 2) + (select count(*) from ${table('acct_one', 'accounts')} where id <> 1) as n`,
      );
      expect(foreign).toBe(0);
      if (engine.warehouseUser) {
        // the tables were made by the warehouse login, not by the administrator
        const owners = await engine.rows<{ o: string }>(engine.sql.tableOwners('acct_one'));
        expect(owners.map((r) => r.o)).toEqual([engine.warehouseUser]);
      }
    });

    it('a second load changes nothing and adds no ledger rows', async () => {
      const a = target('acct_one', 1);
      const before = await warehouseState(a);
      const ledger = await engine.ledger('acct_one');
      const again = await load(p.source, p.store, a);
      expect(again.windows).toBe(0);
      expect(await warehouseState(a)).toEqual(before);
      expect(await engine.ledger('acct_one')).toEqual(ledger);
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
      const id = Number(link.rows[0]!.id);
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
      const row = await engine.rows<{ url: string; deleted_at: unknown }>(
        `select url, deleted_at from ${table('acct_one', 'links')} where id = ${id}`,
      );
      expect(row[0]!.url).toBe('https://new.example/⚡');
      expect(row[0]!.deleted_at).not.toBeNull();
    });

    it('loads only the chosen streams, and a stream added later gets its history from the files', async () => {
      const t = target('acct_three', 3, { streams: ['accounts', 'affiliates'] });
      await load(p.source, p.store, t);
      expectEqual(await compareWithSource(p.source, t));
      const tables = await engine.tables('acct_three');
      expect(tables.filter((n) => !n.startsWith('_wharf_'))).toEqual(['accounts', 'affiliates']);
      expect(tables).toEqual(expect.arrayContaining(['_wharf_loads', '_wharf_migrations']));
      const wider = target('acct_three', 3, {
        streams: ['accounts', 'affiliates', 'programmes', 'payouts'],
      });
      const s = await load(p.source, p.store, wider);
      expect(s.windows).toBeGreaterThan(0);
      expectEqual(await compareWithSource(p.source, wider));
    });

    it('works with a hostile schema name and harms nothing', async () => {
      await engine.exec(engine.sql.createProbe);
      const t = target(engine.hostileSchema, 2);
      await load(p.source, p.store, t);
      expectEqual(await compareWithSource(p.source, t));
      const x = await engine.rows<{ t: string | null }>(engine.sql.probeExists);
      expect(x[0]!.t).toBe('x');
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
      const ledger = await engine.ledger(t.schema);
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
      expect(await engine.ledger(t.schema)).toEqual(ledger);
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
      await expectUntouched(
        t,
        () => load(p.source, store, t),
        /sha256.*stream clicks|stream clicks.*sha256/i,
      );
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
      await engine.exec(engine.sql.dropColumn('bad_drift', 'clicks', 'referrer'));
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
      await engine.exec(
        engine.sql.addCheckBefore('bad_value', 'clicks', 'clicks_before_cutover', 'occurred_at', pendingFrom),
      );
      await expectUntouched(t, () => load(p.source, p.store, t), /clicks_before_cutover.*stream clicks/);
    });
  });
}

describe.each(engines)('$title', (spec) => {
  describe.skipIf(!spec.available)('the load conformance suite', () => conformance(spec));
});
