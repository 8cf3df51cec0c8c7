import { join } from 'node:path';
import pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { insertLiveEvents } from '../source/source-writer.js';
import { type BenchContext, percentile, round } from './bench-context.js';
import { createBenchDatabase } from './bench-postgres.js';
import { runWharfChild } from './bench-shell.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WINDOW_MS = 60_000;

/** Per-connector cost: 100 connectors (one account each, all streams), each loading one small 1-minute window. */
export async function connectorsBench(ctx: BenchContext): Promise<void> {
  const accounts = ctx.options.connectors;
  const sourceUrl = await createBenchDatabase(ctx.server, 'bench_connectors');
  const whUrl = await createBenchDatabase(ctx.server, 'bench_connectors_warehouse');
  const src = new pg.Client({ connectionString: sourceUrl });
  await src.connect();
  const places = {
    sourceUrl,
    controlSchema: 'wharf',
    stagingDir: join(ctx.workDir, 'connectors-staging'),
    streams: trackingCatalog.streams.map((s) => s.name),
    sizes: { fineMs: WINDOW_MS, coarseMs: 86_400_000 },
    settleMs: 0,
  };
  try {
    await initSource(src);
    await seedSource(src, { accounts, rows: ctx.options.connectorClicks, seed: 5, days: 1 });
    ctx.log(`connectors: history export and first load of ${accounts} connectors`);
    await runWharfChild({ ...places, kind: 'export', format: 'csv' });
    const live = await insertLiveEvents(src, {
      accounts: Array.from({ length: accounts }, (_, i) => i + 1),
      clicks: 10,
      seed: 9,
    });
    const liveAt = (await src.query<{ t: Date }>('select now() as t')).rows[0]!.t.getTime();
    const first = await runWharfChild({ ...places, kind: 'connectors', warehouseUrl: whUrl, accounts });
    // the window holding the live rows closes at the next minute boundary
    const closes = Math.floor(liveAt / WINDOW_MS) * WINDOW_MS + WINDOW_MS;
    const dbNow = (await src.query<{ t: Date }>('select now() as t')).rows[0]!.t.getTime();
    if (closes > dbNow) {
      ctx.log(`connectors: waiting ${Math.ceil((closes - dbNow) / 1000)} s for the live window to close`);
      await sleep(closes - dbNow + 500);
    }
    const exported = await runWharfChild({ ...places, kind: 'export', format: 'csv' });
    ctx.log(`connectors: ${accounts} connectors load the new window(s)`);
    const small = await runWharfChild({ ...places, kind: 'connectors', warehouseUrl: whUrl, accounts });
    const ms = small.perConnectorMs!;
    const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
    const firstMean = first.perConnectorMs!.reduce((a, b) => a + b, 0) / accounts;
    ctx.extra.connectors = {
      connectors: accounts,
      liveRows: live,
      windowsExported: exported.export!.windows,
      firstLoadMeanMs: round(firstMean, 1),
      smallWindowMs: {
        mean: round(mean, 1),
        p50: round(percentile(ms, 50), 1),
        p95: round(percentile(ms, 95), 1),
      },
      totalSeconds: round(small.seconds),
      maxRssMB: round(small.maxRssMB, 0),
    };
    ctx.rows.push(
      {
        section: 'connectors',
        name: `first load (history + migrate), per connector`,
        seconds: round(firstMean / 1000, 3),
        rssMB: round(first.maxRssMB, 0),
        note: `${accounts} connectors, ${ctx.options.connectorClicks} clicks over all accounts`,
      },
      {
        section: 'connectors',
        name: 'one small window, per connector',
        seconds: round(mean / 1000, 3),
        rssMB: round(small.maxRssMB, 0),
        note: `p50 ${round(percentile(ms, 50), 1)} ms, p95 ${round(percentile(ms, 95), 1)} ms; ${accounts} in ${round(small.seconds, 1)} s sequentially; ${exported.export!.windows} window(s), 8 streams`,
      },
    );
  } finally {
    await src.end();
  }
}
