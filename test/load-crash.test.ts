import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase } from './helpers/databases.js';
import { runLoadChild } from './helpers/load-child-process.js';
import { compareWithSource, load, warehouseState } from './helpers/load-harness.js';
import { openPlatform, type Platform, runExport } from './helpers/wharf.js';

let p: Platform;
let warehouseUrl: string;

beforeAll(async () => {
  const url = await createDatabase('wharf_crash_src');
  p = await openPlatform(url);
  const c = await p.source.connect();
  await initSource(c, {});
  await seedSource(c, { accounts: 2, rows: 3000, seed: 11, days: 2 });
  c.release();
  await runExport(p, { sizes: { fineMs: 60_000, coarseMs: 86_400_000 } });
  warehouseUrl = await createDatabase('wharf_crash_wh');
});

afterAll(async () => {
  await p.close();
});

// where the loader is killed: reading files, during COPY, during the merge, around the ledger write and the commit
const points: [string, number][] = [
  ['migrated', 1],
  ['begun', 1],
  ['copy:accounts', 1],
  ['stage:clicks', 1],
  ['copy:clicks', 1],
  ['merge:clicks', 1],
  ['merge:conversions', 1],
  ['stage:payouts', 1],
  ['ledger', 1],
  ['commit', 1],
  ['committed', 1],
  ['commit', 2],
  ['copy:clicks', 3],
];

describe('the loader killed with SIGKILL', () => {
  it.each(points)(
    'at %s (occurrence %i) leaves nothing or everything; a restart completes exactly',
    async (step, count) => {
      const schema = `crash_${step.replace(/\W/g, '_')}_${count}`;
      const t = { warehouseUrl, schema, account: 1, connectorId: 'crash' };
      const child = await runLoadChild({
        CONTROL_URL: p.sourceUrl,
        WAREHOUSE_URL: warehouseUrl,
        STAGING_DIR: p.stagingDir,
        SCHEMA: schema,
        ACCOUNT: '1',
        KILL_AT: step,
        KILL_COUNT: String(count),
        ROW_BUDGET: '400',
      });
      expect(child.signal, child.out).toBe('SIGKILL');
      await load(p.source, p.store, t, { rowBudget: 400 });
      const cmp = await compareWithSource(p.source, t);
      for (const [stream, v] of Object.entries(cmp)) expect(v.warehouse, stream).toEqual(v.source);
      const state = await warehouseState(t);
      expect(state.ledgerRows).toBe(state.ledgerDistinct);
      const again = await load(p.source, p.store, t);
      expect(again.windows).toBe(0);
    },
  );
});
