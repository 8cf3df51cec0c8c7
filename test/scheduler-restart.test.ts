import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectionUrl } from '../connectors/connection-url.js';
import { type EmbeddedServer, startEmbeddedPostgres } from '../core/embedded-postgres.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { compareWithSource } from './helpers/load-harness.js';
import { sleep, tempDir } from './helpers/wharf.js';

let source: pg.Pool;
let warehouse: EmbeddedServer;
let dataDir: string;
let ctx: Runtime;
let scheduler: Scheduler;
let connectorId: string;
let warehouseUrl: string;

async function closeWindows(): Promise<void> {
  const t = (await source.query<{ t: Date }>('select now() as t')).rows[0]!.t.getTime();
  while ((await source.query<{ t: Date }>('select clock_timestamp() as t')).rows[0]!.t.getTime() < t + 1100) {
    await sleep(100);
  }
}

beforeAll(async () => {
  process.env.WHARF_MASTER_KEY ??= randomBytes(32).toString('base64');
  process.env.WHARF_LOG_LEVEL = 'silent';
  const sourceUrl = await createDatabase('wharf_restart_src');
  source = new pg.Pool({ connectionString: sourceUrl, max: 4 });
  const c = await source.connect();
  await initSource(c, {});
  c.release();
  await insertAccount(source, 1);
  await insertClicks(source, 1, 10);
  // the warehouse is a server of its own, so that it can be stopped and started again
  dataDir = join(tempDir('wharf-restart-'), 'data');
  warehouse = await startEmbeddedPostgres({ dataDir, port: 0, persistent: true });
  warehouseUrl = `${warehouse.url}?sslmode=disable`;
  const staging = tempDir('wharf-restart-staging-');
  ctx = new Runtime(
    resolveSettings(
      {
        sourceUrl,
        stagingUrl: `file://${staging}`,
        window: '1s',
        settle: '0s',
        spoolDir: join(staging, '..', 'spool'),
      },
      {},
    ),
  );
  const store = await ctx.connectors();
  const parsed = parseConnectionUrl(warehouseUrl);
  const connector = await store.add({
    account: 1,
    settings: parsed.settings,
    ...(parsed.password ? { password: parsed.password } : {}),
    schema: 'tracking',
  });
  connectorId = String(connector.id);
  scheduler = new Scheduler(ctx, {
    everyMs: 1000,
    concurrency: 1,
    retry: { attempts: 2, baseMs: 10, maxMs: 50 },
  });
});

afterAll(async () => {
  await ctx.close();
  await source.end();
  await warehouse.stop().catch(() => {});
});

describe('a warehouse server that restarts', () => {
  it('is a transient failure: the connector stays active and catches up by itself once the server is back', async () => {
    await closeWindows();
    const first = await scheduler.tick();
    expect(first.connectors.find((c) => c.connector === connectorId)?.status).toBe('ok');

    await warehouse.stop();
    await insertClicks(source, 1, 7, 'while-down');
    await closeWindows();
    const down = await scheduler.tick();
    const outcome = down.connectors.find((c) => c.connector === connectorId);
    expect(outcome?.status).toBe('failed');
    const store = await ctx.connectors();
    expect((await store.get(connectorId)).state).toBe('active');

    // the same data directory and port: the server comes back
    warehouse = await startEmbeddedPostgres({ dataDir, port: warehouse.port, persistent: true });
    await insertClicks(source, 1, 3, 'after');
    await closeWindows();
    const back = await scheduler.tick();
    expect(back.connectors.find((c) => c.connector === connectorId)?.status).toBe('ok');
    const cmp = await compareWithSource(source, {
      warehouseUrl,
      schema: 'tracking',
      account: 1,
      connectorId,
    });
    for (const [stream, v] of Object.entries(cmp)) expect(v.warehouse, stream).toEqual(v.source);
  });
});
