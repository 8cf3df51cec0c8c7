import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openWarehouse } from '../pipeline/connector-job.js';
import { pruneStaging } from '../pipeline/retention.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { wharf } from './helpers/cli.js';
import { createDatabase, query } from './helpers/databases.js';
import { compareWithSource } from './helpers/load-harness.js';
import { tempDir } from './helpers/wharf.js';

/** A window whose staged file is gone: the load says how to export it again; that export is a new revision. */
let sourceUrl: string;
let warehouseUrl: string;
let stagingDir: string;
let source: pg.Pool;
let env: Record<string, string>;

interface WindowRow {
  window_id: string;
  revision: number;
  manifest_key: string;
  start_at: Date;
  end_at: Date;
}

const windows = () =>
  query<WindowRow>(
    sourceUrl,
    "select window_id, revision, manifest_key, start_at, end_at from wharf.windows where format = 'csv' order by seq",
  );

async function equalToSource(): Promise<void> {
  const cmp = await compareWithSource(source, {
    warehouseUrl,
    schema: 'tracking',
    account: 1,
    connectorId: 'x',
  });
  for (const [stream, v] of Object.entries(cmp)) expect(v.warehouse, stream).toEqual(v.source);
}

const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_reexport_src');
  warehouseUrl = await createDatabase('wharf_reexport_wh');
  stagingDir = tempDir('wharf-reexport-staging-');
  source = new pg.Pool({ connectionString: sourceUrl, max: 2 });
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${stagingDir}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1m',
    WHARF_SETTLE: '0s',
    WHARF_LOG_LEVEL: 'warn',
  };
  expect((await wharf(['seed', '--accounts', '1', '--rows', '400', '--seed', '5'], env)).code).toBe(0);
  const add = await wharf(
    [
      'connectors',
      'add',
      '--account',
      '1',
      '--engine',
      'postgres',
      '--url',
      `${warehouseUrl}?sslmode=disable`,
    ],
    env,
  );
  expect(add.code, add.stderr).toBe(0);
  const exported = await wharf(['export'], env);
  expect(exported.code, exported.stderr).toBe(0);
});

afterAll(async () => {
  await source.end();
});

describe('a window whose staged file was deleted', () => {
  let lost: WindowRow;

  it('fails the load in one line that names `wharf export --window ID`', async () => {
    const all = await windows();
    // a window with clicks of account 1
    for (const w of all) {
      const manifest = JSON.parse(await readFile(join(stagingDir, w.manifest_key), 'utf8')) as {
        files: { key: string; stream: string; account: string }[];
      };
      const file = manifest.files.find((f) => f.stream === 'clicks' && f.account === '1');
      if (file) {
        lost = w;
        await rm(join(stagingDir, file.key));
        break;
      }
    }
    expect(lost).toBeDefined();
    const load = await wharf(['load'], env);
    expect(load.code).toBe(1);
    const lines = load.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`window ${lost.window_id}`);
    expect(lines[0]).toContain(
      `export the window again as a new revision: wharf export --window ${lost.window_id}`,
    );
    expect(load.stdout).toMatch(/connector \d+: FAILED/);
  });

  it('`wharf export --window ID` exports it again as revision 1, beside the files of revision 0; the load then completes', async () => {
    const oldManifest = join(stagingDir, lost.manifest_key);
    const before = await sha(oldManifest);
    const again = await wharf(['export', '--window', lost.window_id], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('1 window(s) exported as a new revision');
    const after = await windows();
    const r1 = after.find((w) => w.window_id === `${lost.window_id}_r1`);
    expect(r1).toMatchObject({ revision: 1, manifest_key: `csv/${lost.window_id}_r1/_manifest.json` });
    // never over the earlier revision: its manifest is as it was, and it is still a committed window
    expect(await sha(oldManifest)).toBe(before);
    expect(after.some((w) => w.window_id === lost.window_id)).toBe(true);

    const load = await wharf(['load'], env);
    expect(load.code, load.stderr).toBe(0);
    await equalToSource();
    const ledger = await query<{ window_id: string }>(
      warehouseUrl,
      'select distinct window_id from tracking._wharf_loads where window_id like $1',
      [`${lost.window_id}%`],
    );
    expect(ledger.map((r) => r.window_id)).toEqual([`${lost.window_id}_r1`]);
  });

  it('`wharf export --from --to` exports every committed window of the range again, each as its next revision', async () => {
    const all = (await windows()).filter((w) => w.revision === 0).sort((a, b) => +a.start_at - +b.start_at);
    const from = all.at(-4)!.end_at;
    const to = all.at(-1)!.end_at;
    const inRange = all.filter((w) => w.end_at > from && w.start_at < to);
    expect(inRange.length).toBe(3);
    const again = await wharf(
      ['export', '--from', from.toISOString(), '--to', to.toISOString(), '--json'],
      env,
    );
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ windows: inRange.length, revisions: inRange.length });
    const after = await windows();
    for (const w of inRange) expect(after.map((x) => x.window_id)).toContain(`${w.window_id}_r1`);
    const load = await wharf(['load'], env);
    expect(load.code, load.stderr).toBe(0);
    await equalToSource();
  });

  it('a window that was never exported is a usage error', async () => {
    const r = await wharf(['export', '--window', '20990101T000000Z_20990101T000100Z'], env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/window 20990101T000000Z_20990101T000100Z was never exported/);
  });

  it('retention prunes a revision that a newer one replaced, once every connector loaded the newer one', async () => {
    process.env.WHARF_MASTER_KEY = env.WHARF_MASTER_KEY;
    const rt = new Runtime(resolveSettings({ sourceUrl, stagingUrl: `file://${stagingDir}` }, {}));
    try {
      const store = await rt.connectors();
      const summary = await pruneStaging(
        {
          control: await rt.control(),
          controlSchema: 'wharf',
          store: rt.store(),
          connectors: () => store.list(),
          openWarehouse: (c) => openWarehouse(rt, c),
        },
        { olderThanMs: 0 },
      );
      expect(summary.windows).toBeGreaterThan(0);
      const left = await windows();
      // revision 0 was never loaded (its file was gone), revision 1 was: revision 0 is gone with its files
      expect(left.some((w) => w.window_id === lost.window_id)).toBe(false);
      expect(existsSync(join(stagingDir, lost.manifest_key))).toBe(false);
    } finally {
      await rt.close();
    }
  });
});
