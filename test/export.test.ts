import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlreadyExistsError } from '../core/errors.js';
import { exportWindows } from '../exporter/export.js';
import { initSource } from '../source/source-schema.js';
import { openStagingStore } from '../staging/open-store.js';
import { createDatabase } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import {
  manifests,
  openPlatform,
  type Platform,
  readAll,
  runExport,
  sleep,
  stagedRows,
  tempDir,
} from './helpers/wharf.js';

let url: string;
let p: Platform;

beforeAll(async () => {
  url = await createDatabase('wharf_export');
  p = await openPlatform(url);
  const c = await p.source.connect();
  await initSource(c, {});
  c.release();
  await insertAccount(p.source, 1);
  await insertAccount(p.source, 2);
});

afterAll(async () => {
  await p.close();
});

describe('export', () => {
  it('does not lose the rows of a transaction left open across several exports (a now-minus-lag cursor does)', async () => {
    await insertClicks(p.source, 1, 3, 'before');
    await sleep(1100);
    await runExport(p);

    // a transaction that writes a row now (updated_at = its start) and stays open
    const open = new pg.Client({ connectionString: url, application_name: 'platform-app' });
    await open.connect();
    await open.query('begin');
    await insertClicks(open, 1, 2, 'long-transaction');
    const { rows: started } = await open.query<{ t: Date }>('select now() as t');

    // the naive cursor: export [cursor, now() - lag) each time and move the cursor
    let naiveCursor = new Date(started[0]!.t.getTime() - 2000);
    const naiveSeen: string[] = [];

    for (let i = 0; i < 3; i++) {
      await insertClicks(p.source, 2, 1, `during-${i}`);
      await sleep(1100);
      await runExport(p);
      const now = (await p.source.query<{ now: Date }>('select now() as now')).rows[0]!.now;
      const until = new Date(now.getTime() - 500);
      const naive = await p.source.query<{ referrer: string }>(
        'select referrer from clicks where updated_at >= $1 and updated_at < $2',
        [naiveCursor, until],
      );
      naiveSeen.push(...naive.rows.map((r) => r.referrer));
      naiveCursor = until;
    }
    // while it is open, no exported window reaches past its start
    const during = await manifests(p);
    const lastEnd = new Date(during[during.length - 1]!.window.end);
    expect(lastEnd.getTime()).toBeLessThanOrEqual(started[0]!.t.getTime() + 1000);

    await open.query('commit');
    await open.end();
    await sleep(1100);
    await insertClicks(p.source, 2, 1, 'after');
    await sleep(1100);
    await runExport(p);

    const referrers = (await stagedRows(p, 'clicks')).map((r) => r.referrer);
    expect(referrers.filter((r) => r === 'long-transaction')).toHaveLength(2);
    expect(referrers).toContain('during-2');
    expect(referrers).toContain('after');

    // the naive cursor moved past the transaction's start before it committed: its rows are never read
    const now = (await p.source.query<{ now: Date }>('select now() as now')).rows[0]!.now;
    const late = await p.source.query<{ referrer: string }>(
      'select referrer from clicks where updated_at >= $1 and updated_at < $2',
      [naiveCursor, new Date(now.getTime() - 500)],
    );
    naiveSeen.push(...late.rows.map((r) => r.referrer));
    expect(naiveSeen).toContain('during-0');
    expect(naiveSeen).not.toContain('long-transaction');
  });

  it('closes windows past a transaction older than the limit, then exports a new revision when it ends', async () => {
    const open = new pg.Client({ connectionString: url, application_name: 'forgotten-session' });
    await open.connect();
    await open.query('begin');
    await insertClicks(open, 2, 1, 'forgotten');
    await sleep(1500);
    await insertClicks(p.source, 2, 1, 'meanwhile');
    await sleep(1100);
    const first = await runExport(p, { longTransactionMs: 1000 });
    expect(first.longTransactions.length).toBeGreaterThan(0);
    expect((await stagedRows(p, 'clicks')).map((r) => r.referrer)).toContain('meanwhile');
    await open.query('commit');
    await open.end();
    const second = await runExport(p, { longTransactionMs: 1000 });
    expect(second.revisions).toBeGreaterThan(0);
    const all = await manifests(p);
    expect(all.some((m) => m.window.revision > 0)).toBe(true);
    expect((await stagedRows(p, 'clicks')).map((r) => r.referrer)).toContain('forgotten');
  });

  it('writes nothing the second time, with deterministic keys and bytes', async () => {
    await sleep(1100);
    await runExport(p);
    const before = await manifests(p);
    // the same closed windows again (a settle that keeps the watermark behind them: no new window closes meanwhile)
    const again = await runExport(p, { settleMs: 60_000 });
    expect(again.windows).toBe(0);
    expect(again.files).toBe(0);
    expect(await manifests(p)).toEqual(before);

    // exporting the same windows into a fresh store gives the same keys and bytes
    const other = openStagingStore(`file://${tempDir()}`);
    const m = before[before.length - 1]!;
    await exportWindows(p.exportOptions({ store: other, controlSchema: 'wharf_again', maxWindows: 100000 }));
    for (const f of m.files) {
      expect((await readAll(other, f.key)).equals(await readAll(p.store, f.key))).toBe(true);
    }
  });

  it('refuses to overwrite a staged key', async () => {
    const m = (await manifests(p))[0]!;
    const f = m.files[0]!;
    const dir = tempDir();
    const local = `${dir}/x`;
    await import('node:fs/promises').then((fs) => fs.writeFile(local, 'other bytes'));
    await expect(p.store.putFile(f.key, local, { sha256: '0'.repeat(64) })).rejects.toBeInstanceOf(
      AlreadyExistsError,
    );
  });
});
