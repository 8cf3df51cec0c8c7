import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WharfError } from '../core/errors.js';
import { LOAD_STOPPED } from '../loaders/load.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase } from './helpers/databases.js';
import { compareWithSource, load, warehouseState } from './helpers/load-harness.js';
import { openPlatform, type Platform, runExport } from './helpers/wharf.js';

/**
 * The process stops (its signal aborts) after a load committed its first transaction and before the next: the
 * load must end as stopped, never as a success, so that its connector's progress is not advanced past windows
 * it did not load (a later `wharf load` would then skip them).
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
  it('ends the load as stopped (windows left), keeps what it committed, and the next load completes', async () => {
    const target = { warehouseUrl, schema: 'between', account: 1, connectorId: 'between' };
    const stop = new AbortController();
    const error = await load(p.source, p.store, target, {
      maxWindowsPerTransaction: 1,
      signal: stop.signal,
      onStep: (step) => {
        if (step === 'committed') stop.abort();
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).code).toBe(LOAD_STOPPED);
    expect((error as WharfError).oneLine()).toMatch(
      /^load stopped before commit of its next transaction because the process is stopping; \d+ window\(s\) not started \(connector between\)/,
    );
    // the first transaction stays committed: one window's ledger rows
    const after = await warehouseState(target);
    expect(after.ledgerRows).toBeGreaterThan(0);

    const done = await load(p.source, p.store, target);
    expect(done.windows).toBeGreaterThan(0);
    for (const [stream, v] of Object.entries(await compareWithSource(p.source, target))) {
      expect(v.warehouse, stream).toEqual(v.source);
    }
  });
});
