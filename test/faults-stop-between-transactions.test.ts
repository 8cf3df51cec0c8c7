import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase, query } from './helpers/databases.js';
import { compareWithSource, load } from './helpers/load-harness.js';
import { openPlatform, type Platform, runExport } from './helpers/wharf.js';

/**
 * The process stops (its signal aborts) after a load committed its first transaction and before the next: what
 * it committed stays, and the `seenSeq` it reports (what the connector's progress is advanced to) stops before
 * the windows it did not start, so that the next load does not skip them.
 */
let p: Platform;
let warehouseUrl: string;

beforeAll(async () => {
  p = await openPlatform(await createDatabase('wharf_stop_between_src'));
  const c = await p.source.connect();
  await initSource(c, {});
  await seedSource(c, { accounts: 1, rows: 600, seed: 21, days: 1 });
  c.release();
  await runExport(p, { sizes: { fineMs: 60_000, coarseMs: 3_600_000 } });
  warehouseUrl = await createDatabase('wharf_stop_between_wh');
});

afterAll(async () => {
  await p.close();
});

describe('a stop between two transactions of a load', () => {
  it('keeps what it committed, reports a seenSeq short of the windows left, and the next load completes', async () => {
    const target = { warehouseUrl, schema: 'between', account: 1, connectorId: 'between' };
    const stop = new AbortController();
    const partial = await load(p.source, p.store, target, {
      maxWindowsPerTransaction: 1,
      signal: stop.signal,
      onStep: (step) => {
        if (step === 'committed') stop.abort();
      },
    });
    expect(partial.transactions).toBe(1);
    const windows = await query<{ window_id: string; seq: string }>(
      p.sourceUrl,
      "select window_id, seq from wharf.windows where format = 'csv' order by seq",
    );
    const ledger = new Set(
      (
        await query<{ window_id: string }>(
          warehouseUrl,
          'select distinct window_id from between._wharf_loads',
        )
      ).map((r) => r.window_id),
    );
    const notLoaded = windows.filter((w) => !ledger.has(w.window_id));
    expect(notLoaded.length).toBeGreaterThan(0);
    // every window not in the ledger lies after seenSeq: progress advanced to it skips none of them
    for (const w of notLoaded) expect(Number(w.seq)).toBeGreaterThan(partial.seenSeq);

    const rest = await load(p.source, p.store, target, { afterSeq: partial.seenSeq });
    expect(rest.windows).toBeGreaterThan(0);
    for (const [stream, v] of Object.entries(await compareWithSource(p.source, target))) {
      expect(v.warehouse, stream).toEqual(v.source);
    }
  });
});
