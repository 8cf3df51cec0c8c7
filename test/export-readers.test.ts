// Streams of a window read side by side: readers on their own connections, all in one exported snapshot.
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { beginSnapshot, endReaders, joinSnapshot, spareConnections } from '../exporter/snapshot-readers.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { readManifest } from '../staging/manifest.js';
import { openStagingStore } from '../staging/open-store.js';
import { createDatabase } from './helpers/databases.js';
import { manifests, openPlatform, type Platform, runExport, stagedRows, tempDir } from './helpers/wharf.js';

const sizes = { fineMs: 3_600_000, coarseMs: 86_400_000 };

describe('snapshot readers', () => {
  let url: string;
  let pool: pg.Pool;

  beforeAll(async () => {
    url = await createDatabase('wharf_readers');
    pool = new pg.Pool({ connectionString: url, max: 3 });
    await pool.query('create table t (x int)');
    await pool.query('insert into t values (1)');
  });

  afterAll(async () => {
    await pool?.end();
  });

  it("see the rows of the primary's snapshot, not those committed after it began", async () => {
    const primary = await pool.connect();
    try {
      await beginSnapshot(primary);
      expect((await primary.query('select count(*)::int as n from t')).rows[0].n).toBe(1);
      await pool.query('insert into t values (2)');
      const readers = await joinSnapshot(pool, primary, 1);
      expect(readers).toHaveLength(1);
      const seen = await readers[0]!.query<{ n: number; tz: string }>(
        'select count(*)::int as n, current_setting($1) as tz from t',
        ['TimeZone'],
      );
      expect(seen.rows[0]).toEqual({ n: 1, tz: 'UTC' });
      await endReaders(readers, false);
      await primary.query('commit');
      expect((await pool.query('select count(*)::int as n from t')).rows[0].n).toBe(2);
    } finally {
      primary.release();
    }
  });

  it('take only spare connections of the pool, so a full pool gives none and never waits', async () => {
    const small = new pg.Pool({ connectionString: url, max: 2 });
    try {
      const control = await small.connect();
      const primary = await small.connect();
      expect(spareConnections(small)).toBe(0);
      await beginSnapshot(primary);
      expect(await joinSnapshot(small, primary, 1)).toEqual([]);
      await primary.query('commit');
      primary.release();
      control.release();
      expect(spareConnections(small)).toBe(2);
    } finally {
      await small.end();
    }
  });
});

describe('an export reading streams side by side', () => {
  let p: Platform;

  beforeAll(async () => {
    p = await openPlatform(await createDatabase('wharf_export_readers'));
    const c = await p.source.connect();
    await initSource(c, {});
    // all rows well before the last closed hour
    const end = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 7_200_000);
    await seedSource(c, { accounts: 20, rows: 4000, seed: 9, days: 1, end });
    c.release();
  });

  afterAll(async () => {
    await p?.close();
  });

  it('writes the same objects and manifests as one reader, and every row once', async () => {
    const lines: { msg?: string; readers?: number }[] = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          lines.push(JSON.parse(chunk.toString('utf8')));
          callback();
        },
      }),
    );
    await runExport(p, { sizes, readConcurrency: 2, logger });
    expect(lines.filter((l) => l.msg === 'manifest written').map((l) => l.readers)).toContain(2);
    const two = await manifests(p);

    const store = openStagingStore(`file://${tempDir()}`);
    await runExport(p, {
      sizes,
      readConcurrency: 1,
      store,
      controlSchema: 'wharf_one',
      maxWindows: two.length,
    });
    const { rows } = await p.source.query<{ manifest_key: string }>(
      "select manifest_key from wharf_one.windows where format = 'csv' order by start_at, revision",
    );
    expect(rows.map((r) => r.manifest_key)).toEqual(two.map((m) => `csv/${m.window.id}/_manifest.json`));
    for (const [i, m] of two.entries()) {
      expect(await readManifest(store, rows[i]!.manifest_key)).toEqual(m);
    }

    for (const stream of ['clicks', 'conversions', 'links']) {
      const staged = (await stagedRows(p, stream)).length;
      const { rows: source } = await p.source.query<{ n: number }>(
        `select count(*)::int as n from ${stream}`,
      );
      expect(staged, stream).toBe(source[0]!.n);
    }
  });
});
