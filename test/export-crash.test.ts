import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase } from './helpers/databases.js';
import { manifests, openPlatform, type Platform, runExport, stagedRows, tempDir } from './helpers/wharf.js';

let p: Platform;

beforeAll(async () => {
  p = await openPlatform(await createDatabase('wharf_export_crash'));
  const c = await p.source.connect();
  await initSource(c, {});
  await seedSource(c, { accounts: 3, rows: 3000, seed: 5, days: 2 });
  c.release();
});

afterAll(async () => {
  await p.close();
});

function killedExport(killAt: string, count: number) {
  return new Promise<string | null>((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/run-ts.js', 'test/helpers/export-child.ts'], {
      env: {
        ...process.env,
        SOURCE_URL: p.sourceUrl,
        STAGING_DIR: p.stagingDir,
        SPOOL_DIR: tempDir('wharf-spool-'),
        KILL_AT: killAt,
        KILL_COUNT: String(count),
      },
      stdio: 'inherit',
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve(signal));
  });
}

async function allKeys(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const key = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await allKeys(dir, key)));
    else out.push(key);
  }
  return out;
}

describe('an export killed with SIGKILL', () => {
  it('leaves no manifest for the torn window, and the next run completes it', async () => {
    // killed in the middle of a window's objects (the 10th published: a day window has one per stream), then just
    // before a manifest
    expect(await killedExport('file', 10)).toBe('SIGKILL');
    const torn = await allKeys(p.stagingDir);
    const windowsWithFiles = new Set(torn.map((k) => k.split('/')[1]));
    const committed = new Set((await manifests(p)).map((m) => m.window.id));
    const tornWindows = [...windowsWithFiles].filter((w) => !committed.has(w!));
    expect(tornWindows.length).toBe(1);
    expect(torn.some((k) => k === `csv/${tornWindows[0]}/_manifest.json`)).toBe(false);

    expect(await killedExport('manifest', 2)).toBe('SIGKILL');

    const done = await runExport(p, { sizes: { fineMs: 60_000, coarseMs: 86_400_000 } });
    expect(done.filesAlreadyStaged).toBeGreaterThan(0);
    const all = await manifests(p);
    expect(all.map((m) => m.window.id)).toContain(tornWindows[0]);
    expect(all.every((m) => m.window.revision === 0)).toBe(true);

    // every source row is staged exactly once per (primary key, updated_at)
    for (const stream of trackingCatalog.streams) {
      const pk = stream.primaryKey[0]!;
      const staged = (await stagedRows(p, stream.name)).map((r) => r[pk]).sort();
      const source = await p.source.query(`select ${pk}::text as k from ${stream.name} order by 1`);
      expect(staged, stream.name).toEqual(source.rows.map((r) => r.k).sort());
    }
    const again = await runExport(p, { sizes: { fineMs: 60_000, coarseMs: 86_400_000 } });
    expect(again.files).toBe(0);
  });
});
