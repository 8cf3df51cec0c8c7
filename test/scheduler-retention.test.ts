import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectionUrl } from '../connectors/connection-url.js';
import type { Connector, ConnectorStore } from '../connectors/connector-store.js';
import { openWarehouse } from '../pipeline/connector-job.js';
import { runConnectors } from '../pipeline/connectors-run.js';
import { runExportJob } from '../pipeline/export-job.js';
import { pruneStaging, type RetentionDeps } from '../pipeline/retention.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { initSource } from '../source/source-schema.js';
import { readManifest } from '../staging/manifest.js';
import { createDatabase } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { compareWithSource, type Target } from './helpers/load-harness.js';
import { sleep, tempDir } from './helpers/wharf.js';

let sourceUrl: string;
let stagingDir: string;
let source: pg.Pool;
let ctx: Runtime;
let store: ConnectorStore;
let a: Connector;
let b: Connector;
const warehouses = new Map<string, string>();

interface WindowRow {
  window_id: string;
  manifest_key: string;
}

async function windows(): Promise<WindowRow[]> {
  return (
    await source.query<WindowRow>(
      "select window_id, manifest_key from wharf.windows where format = 'csv' order by start_at",
    )
  ).rows;
}

/** Every key a window has in staging (its manifest and files). */
async function windowKeys(w: WindowRow): Promise<string[]> {
  const m = await readManifest(ctx.store(), w.manifest_key);
  return [w.manifest_key, ...m.files.map((f) => f.key)];
}

async function trafficThenExport(n: number): Promise<void> {
  for (const account of [1, 2]) await insertClicks(source, account, n);
  const t = (await source.query<{ t: Date }>('select now() as t')).rows[0]!.t.getTime();
  while ((await source.query<{ t: Date }>('select clock_timestamp() as t')).rows[0]!.t.getTime() < t + 1100)
    await sleep(100);
  await runExportJob(ctx);
}

function deps(): RetentionDeps {
  return {
    control: source,
    controlSchema: 'wharf',
    store: ctx.store(),
    connectors: () => store.list(),
    openWarehouse: (c) => openWarehouse(ctx, c),
  };
}

function target(c: Connector): Target {
  return {
    warehouseUrl: warehouses.get(c.id)!,
    schema: 'tracking',
    account: Number(c.account),
    connectorId: c.id,
  };
}

async function add(account: number): Promise<Connector> {
  const url = await createDatabase('wharf_ret_wh');
  const parsed = parseConnectionUrl(url);
  const c = await store.add({
    account,
    settings: parsed.settings,
    ...(parsed.password ? { password: parsed.password } : {}),
  });
  warehouses.set(c.id, url);
  return c;
}

beforeAll(async () => {
  process.env.WHARF_MASTER_KEY ??= randomBytes(32).toString('base64');
  process.env.WHARF_LOG_LEVEL = 'silent';
  sourceUrl = await createDatabase('wharf_ret_src');
  stagingDir = tempDir('wharf-ret-staging-');
  source = new pg.Pool({ connectionString: sourceUrl, max: 4 });
  const client = await source.connect();
  await initSource(client, {});
  client.release();
  for (const account of [1, 2, 3]) await insertAccount(source, account);
  ctx = new Runtime(
    resolveSettings(
      {
        sourceUrl,
        stagingUrl: `file://${stagingDir}`,
        window: '1s',
        settle: '0s',
        spoolDir: join(stagingDir, '..', 'spool-ret'),
      },
      {},
    ),
  );
  store = await ctx.connectors();
  a = await add(1);
  b = await add(2);
  // a disabled connector that never loaded anything does not hold windows back
  await store.disable((await add(3)).id);
});

afterAll(async () => {
  await ctx?.close();
  await source?.end();
});

describe('pruneStaging', () => {
  it('keeps everything while some connector has not loaded it', async () => {
    await trafficThenExport(10);
    await trafficThenExport(5);
    await runConnectors(ctx, { connector: a.id });
    const before = await windows();
    expect(before.length).toBeGreaterThan(1);
    const summary = await pruneStaging(deps(), { olderThanMs: 0 });
    expect(summary).toMatchObject({ windows: 0, files: 0, skipped: false });
    expect(summary.kept).toBe(before.length - 1);
    expect(await windows()).toEqual(before);
  });

  it('keeps windows younger than the age', async () => {
    await runConnectors(ctx, { connector: b.id });
    const before = await windows();
    expect(await pruneStaging(deps(), { olderThanMs: 3_600_000 })).toMatchObject({ windows: 0, kept: 0 });
    expect(await windows()).toEqual(before);
  });

  it('deletes the files, then the row, of old windows every connector loaded, and never one a connector lacks', async () => {
    const loadedByBoth = await windows();
    // more windows, loaded by connector a only
    await trafficThenExport(7);
    await runConnectors(ctx, { connector: a.id });
    const all = await windows();
    const onlyA = all.filter((w) => !loadedByBoth.some((x) => x.window_id === w.window_id));
    expect(onlyA.length).toBeGreaterThan(0);
    const keysOf = new Map<string, string[]>();
    for (const w of all) keysOf.set(w.window_id, await windowKeys(w));

    const summary = await pruneStaging(deps(), { olderThanMs: 0 });
    expect(summary.windows).toBe(loadedByBoth.length);
    expect(summary.kept).toBe(onlyA.length - 1);
    const left = await windows();
    expect(left.map((w) => w.window_id)).toEqual(onlyA.map((w) => w.window_id));
    for (const w of loadedByBoth) {
      for (const key of keysOf.get(w.window_id)!) expect(existsSync(join(stagingDir, key)), key).toBe(false);
    }
    for (const w of onlyA) {
      for (const key of keysOf.get(w.window_id)!) expect(existsSync(join(stagingDir, key)), key).toBe(true);
    }
    // connector b still finds every window it lacks, and ends equal to its source
    const loaded = await runConnectors(ctx, { connector: b.id });
    expect(loaded.connectors[0]!.windows).toBe(onlyA.length);
    for (const c of [a, b]) {
      const cmp = await compareWithSource(source, target(c));
      for (const [stream, v] of Object.entries(cmp))
        expect(v.warehouse, `${c.id} ${stream}`).toEqual(v.source);
    }
  });

  it('never prunes the newest window (the exporter continues from it)', async () => {
    await trafficThenExport(2);
    await runConnectors(ctx, { connector: a.id });
    await runConnectors(ctx, { connector: b.id });
    const before = await windows();
    expect(before.length).toBeGreaterThan(1);
    const summary = await pruneStaging(deps(), { olderThanMs: 0 });
    expect(summary.windows).toBe(before.length - 1);
    const left = await windows();
    expect(left).toEqual([before.at(-1)]);
    // the exporter goes on from the newest window: it does not export the pruned history again
    await runExportJob(ctx);
    expect((await windows())[0]).toEqual(before.at(-1));
  });

  it("prunes nothing when a connector's ledger cannot be read", async () => {
    await trafficThenExport(3);
    await runConnectors(ctx, { connector: a.id });
    await runConnectors(ctx, { connector: b.id });
    const before = await windows();
    const broken: RetentionDeps = {
      ...deps(),
      openWarehouse: async (c) => {
        if (c.id === b.id) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
        return openWarehouse(ctx, c);
      },
    };
    const summary = await pruneStaging(broken, { olderThanMs: 0 });
    expect(summary.windows).toBe(0);
    expect(await windows()).toEqual(before);
  });
});
