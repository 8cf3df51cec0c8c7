import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { type BenchContext, percentile, round } from './bench-context.js';
import { createBenchDatabase } from './bench-postgres.js';
import { runWharfChild } from './bench-shell.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Lag: steady inserts into the source while Wharf runs (export + load every tick), with time compressed
 * by `lagScale`: windows 60 s / scale, settle 30 s / scale (the default), tick 60 s / scale (the default).
 * For each inserted batch, lag = first seen in the warehouse − commit in the source.
 */
export async function lagBench(ctx: BenchContext): Promise<void> {
  const scale = ctx.options.lagScale;
  const windowMs = Math.round(60_000 / scale);
  const settleMs = Math.round(30_000 / scale);
  const tickMs = Math.round(60_000 / scale);
  const insertMs = ctx.options.lagMinutes * windowMs;
  const everyMs = Math.max(20, Math.round(1000 / scale) * 5);
  const pollMs = Math.max(10, Math.round(250 / scale));
  const sourceUrl = await createBenchDatabase(ctx.server, 'bench_live');
  const whUrl = await createBenchDatabase(ctx.server, 'bench_live_warehouse');
  const src = new pg.Client({ connectionString: sourceUrl });
  const wh = new pg.Client({ connectionString: whUrl });
  await src.connect();
  await wh.connect();
  const stopFile = join(ctx.workDir, 'lag.stop');
  try {
    await initSource(src);
    await seedSource(src, { accounts: 1, rows: 20_000, seed: 3, days: 1 });
    const link = (
      await src.query<{ id: string; affiliate_id: string }>(
        'select id::text, affiliate_id::text from links where account_id = 1 order by id limit 1',
      )
    ).rows[0]!;
    ctx.log(
      `lag: windows ${windowMs} ms, settle ${settleMs} ms, tick ${tickMs} ms (×${scale} compressed), inserting for ${insertMs / 1000} s`,
    );
    const child = runWharfChild({
      kind: 'lag',
      sourceUrl,
      controlSchema: 'wharf',
      stagingDir: join(ctx.workDir, 'lag-staging'),
      streams: [
        'accounts',
        'programmes',
        'affiliates',
        'traffic_sources',
        'links',
        'clicks',
        'conversions',
        'payouts',
      ],
      sizes: { fineMs: windowMs, coarseMs: 86_400_000 },
      settleMs,
      warehouseUrl: whUrl,
      schema: 'tracking',
      account: 1,
      tickMs,
      durationMs: 60 * 60_000,
      stopFile,
    });
    // wait for the history to arrive
    for (;;) {
      const r = await wh.query<{ t: string | null }>("select to_regclass('tracking.clicks')::text as t");
      if (r.rows[0]!.t && (await wh.query('select 1 from tracking.clicks limit 1')).rowCount) break;
      await sleep(200);
    }
    const committed = new Map<number, number>();
    const seen = new Map<number, number>();
    let batches = 0;
    const observe = (async () => {
      while (!existsSync(stopFile)) {
        const r = await wh.query<{ r: string }>(
          "select distinct referrer as r from tracking.clicks where referrer like 'lag:%'",
        );
        const now = Date.now();
        for (const row of r.rows) {
          const n = Number(row.r.slice(4));
          if (!seen.has(n)) seen.set(n, now);
        }
        await sleep(pollMs);
      }
    })();
    const end = Date.now() + insertMs;
    while (Date.now() < end) {
      const n = batches++;
      await src.query(
        `insert into clicks (account_id, link_id, affiliate_id, occurred_at, ip, user_agent, referrer, country, device, is_unique)
         select 1, $1, $2, now(), '127.0.0.1', 'bench', $3, 'FR', 'desktop', true from generate_series(1, 5)`,
        [link.id, link.affiliate_id, `lag:${n}`],
      );
      committed.set(n, Date.now());
      await sleep(everyMs);
    }
    const deadline = Date.now() + 5 * windowMs + 2 * tickMs + settleMs + 30_000;
    while (seen.size < batches && Date.now() < deadline) await sleep(pollMs);
    writeFileSync(stopFile, 'stop');
    await observe;
    const report = await child;
    const lags = [...committed].filter(([n]) => seen.has(n)).map(([n, t]) => (seen.get(n)! - t) / 1000);
    const p50 = percentile(lags, 50);
    const p95 = percentile(lags, 95);
    const max = Math.max(...lags);
    ctx.extra.lag = {
      scale,
      windowMs,
      settleMs,
      tickMs,
      batches,
      rowsPerBatch: 5,
      visible: lags.length,
      p50Seconds: round(p50, 3),
      p95Seconds: round(p95, 3),
      maxSeconds: round(max, 3),
      ticks: report.ticks,
      maxRssMB: round(report.maxRssMB, 0),
    };
    const label = scale === 1 ? '' : ` (×${scale}: ${round(p95 * scale, 1)} s at 1-minute windows)`;
    ctx.rows.push(
      {
        section: 'lag',
        name: `commit → warehouse lag p50${scale === 1 ? '' : ' (compressed)'}`,
        seconds: round(p50, 3),
        rssMB: round(report.maxRssMB, 0),
        note: scale === 1 ? '1-minute windows' : `×${scale}: ${round(p50 * scale, 1)} s at 1-minute windows`,
      },
      {
        section: 'lag',
        name: `commit → warehouse lag p95${scale === 1 ? '' : ' (compressed)'}`,
        seconds: round(p95, 3),
        ratio: round(p95 * scale, 1),
        goal: 'p95 ≤ 120 s at 1-minute windows',
        met: p95 * scale <= 120 && lags.length === batches,
        note: `${lags.length}/${batches} batches seen; max ${round(max, 3)} s${label}; ${report.ticks} ticks`,
      },
    );
  } finally {
    await src.end();
    await wh.end();
  }
}
