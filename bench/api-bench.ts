import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ProgressTable } from '../control/progress.js';
import { recordRun } from '../control/runs.js';
import { WindowsTable } from '../control/windows.js';
import { silentLogger } from '../core/logger.js';
import { Secret } from '../core/secret.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { startApiServer } from '../server/api-server.js';
import { STAGING_FORMAT } from '../staging/manifest.js';
import { addManyConnectors } from '../test/helpers/many-connectors.js';
import { type BenchContext, percentile, round } from './bench-context.js';
import { createBenchDatabase } from './bench-postgres.js';

const CONNECTORS = 1000;
const WINDOWS = 1440;
const RUNS_PER_CONNECTOR = 24;
const REQUESTS = 60;
const GOAL_MS = 200;

/**
 * The API with 1,000 connectors in the control database (a day of 1-minute windows, 24 runs each, most
 * with progress): median and p95 of `GET /v1/connectors` and `GET /v1/status` over HTTP on 127.0.0.1.
 */
export async function apiBench(ctx: BenchContext): Promise<void> {
  process.env.WHARF_MASTER_KEY ??= randomBytes(32).toString('base64');
  const url = await createBenchDatabase(ctx.server, 'bench_api');
  const rt = new Runtime(
    resolveSettings({ sourceUrl: url, stagingUrl: `file://${join(ctx.workDir, 'api-staging')}` }),
    { logger: silentLogger() },
  );
  const token = randomBytes(24).toString('hex');
  try {
    ctx.log(`api: ${CONNECTORS} connectors, ${WINDOWS} windows, ${CONNECTORS * RUNS_PER_CONNECTOR} runs`);
    const ids = await addManyConnectors(rt, CONNECTORS, 1);
    const control = await rt.control();
    const windows = new WindowsTable('wharf');
    const start = Date.now() - WINDOWS * 60_000;
    for (let i = 0; i < WINDOWS; i++) {
      const s = new Date(start + i * 60_000);
      const e = new Date(start + (i + 1) * 60_000);
      await windows.record(control, STAGING_FORMAT, {
        id: `w${i}`,
        start: s,
        end: e,
        revision: 0,
        manifestKey: `m/${i}.json`,
        files: 8,
        rows: 100,
        bytes: 10_000,
      });
    }
    const progress = new ProgressTable('wharf');
    for (const [n, id] of ids.entries()) {
      if (n % 10 === 9) continue; // one in ten never loaded
      const behind = n % 7; // some a few windows behind
      await progress.advance(control, id, {
        seenSeq: WINDOWS - behind,
        catalogVersion: rt.catalog.version,
        lastWindowId: `w${WINDOWS - 1 - behind}`,
        lastWindowEnd: new Date(start + (WINDOWS - behind) * 60_000),
        windows: WINDOWS - behind,
        rows: 100 * (WINDOWS - behind),
      });
      for (let r = 0; r < RUNS_PER_CONNECTOR; r++) {
        const t = new Date(Date.now() - (RUNS_PER_CONNECTOR - r) * 3_600_000);
        const failed = n % 13 === 0 && r === RUNS_PER_CONNECTOR - 1;
        await recordRun(control, 'wharf', {
          connectorId: id,
          kind: 'load',
          startedAt: t,
          finishedAt: new Date(t.getTime() + 800),
          status: failed ? 'failed' : 'ok',
          windows: failed ? 0 : 60,
          rows: failed ? 0 : 6000,
          ...(failed ? { error: `warehouse check "reach" failed for warehouse-${n}.invalid:5432` } : {}),
        });
      }
    }
    await control.query('analyze');
    const server = await startApiServer({ rt, port: 0, adminToken: new Secret(token) });
    try {
      const cases: [string, string][] = [
        ['GET /v1/connectors (page of 50)', '/v1/connectors?limit=50'],
        ['GET /v1/connectors (all 1,000)', '/v1/connectors?limit=1000'],
        ['GET /v1/status (page of 50, by lag)', '/v1/status?limit=50&sort=lag'],
        ['GET /v1/status (all 1,000)', '/v1/status?limit=1000'],
        ['GET /v1/status (filtered)', '/v1/status?limit=50&q=reach'],
      ];
      const figures: Record<string, { p50: number; p95: number; bytes: number }> = {};
      for (const [name, path] of cases) {
        const ms: number[] = [];
        let bytes = 0;
        for (let i = 0; i < REQUESTS + 5; i++) {
          const t0 = performance.now();
          const r = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
          const body = await r.text();
          if (r.status !== 200) throw new Error(`${path}: ${r.status} ${body.slice(0, 200)}`);
          if (i >= 5) ms.push(performance.now() - t0); // the first few warm the pools and the JIT
          bytes = body.length;
        }
        const p50 = round(percentile(ms, 50), 1);
        const p95 = round(percentile(ms, 95), 1);
        figures[name] = { p50, p95, bytes };
        ctx.log(`api: ${name}: p50 ${p50} ms, p95 ${p95} ms (${bytes} bytes)`);
        ctx.rows.push({
          section: 'api',
          name: `${name}, ${CONNECTORS} connectors`,
          seconds: round(p50 / 1000, 4),
          goal: `median < ${GOAL_MS} ms`,
          met: p50 < GOAL_MS,
          note: `p50 ${p50} ms, p95 ${p95} ms over ${REQUESTS} requests; ${Math.round(bytes / 1024)} KiB`,
        });
      }
      ctx.extra.api = { connectors: CONNECTORS, windows: WINDOWS, requests: REQUESTS, figures };
    } finally {
      await server.close();
    }
  } finally {
    await rt.close();
  }
}
