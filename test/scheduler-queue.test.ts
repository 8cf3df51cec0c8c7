import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addSource, addSync } from '../pipeline/retl-flows.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { syncLockKey } from '../pipeline/sync-job.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { initSource } from '../source/source-schema.js';
import { wharf } from './helpers/cli.js';
import { errorLines, session, startWharf, type WharfProcess, waitFor } from './helpers/daemon.js';
import { createDatabase, query } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { compareWithSource } from './helpers/load-harness.js';
import { type Receiver, startReceiver } from './helpers/retl-receiver.js';
import { sleep, tempDir } from './helpers/wharf.js';

/**
 * The scheduler's job queue (graphile-worker in the control database): due syncs run as jobs beside the
 * connectors, and a job whose process was SIGKILLed is taken over by another `wharf run`.
 */
let sourceUrl: string;
let warehouseUrl: string;
let source: pg.Pool;
let env: Record<string, string>;
const daemons: WharfProcess[] = [];

beforeAll(async () => {
  process.env.WHARF_MASTER_KEY ??= randomBytes(32).toString('base64');
  process.env.WHARF_LOG_LEVEL = 'silent';
  sourceUrl = await createDatabase('wharf_queue_src');
  warehouseUrl = await createDatabase('wharf_queue_wh');
  source = new pg.Pool({ connectionString: sourceUrl, max: 3 });
  source.on('error', () => {});
  const c = await source.connect();
  await initSource(c, {});
  c.release();
  await insertAccount(source, 1);
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-queue-staging-')}`,
    WHARF_MASTER_KEY: process.env.WHARF_MASTER_KEY,
    WHARF_WINDOW: '1s',
    WHARF_SETTLE: '0s',
    WHARF_HOME: tempDir('wharf-queue-home-'),
  };
});

afterAll(async () => {
  for (const d of daemons) if (d.running()) d.child.kill('SIGKILL');
  await source.end();
});

function run(): WharfProcess {
  const d = startWharf(['run', '--every', '1s'], env);
  daemons.push(d);
  return d;
}

describe('due syncs under the scheduler', () => {
  let rt: Runtime;
  let receiver: Receiver;
  let syncId: string;
  let scheduler: Scheduler;

  beforeAll(async () => {
    const dataUrl = await createDatabase('wharf_queue_retl_wh');
    await query(
      dataUrl,
      `create table users (id bigint, last_updated bigint);
       insert into users select i, i from generate_series(1, 20) i`,
    );
    receiver = await startReceiver();
    // the staging of the `wharf run` processes below: what this scheduler exports, they load
    rt = new Runtime(
      resolveSettings(
        {
          sourceUrl,
          stagingUrl: env.WHARF_STAGING_URL!,
          window: '1s',
          settle: '0s',
          spoolDir: join(env.WHARF_HOME!, 'spool'),
        },
        {},
      ),
    );
    const url = new URL(dataUrl);
    url.searchParams.set('sslmode', 'disable');
    const src = await addSource(rt, { account: 1, engine: 'postgres', url: url.href });
    const deliverTo = new URL(receiver.url);
    deliverTo.username = 'wk_queue';
    syncId = (
      await addSync(rt, {
        source: src.id,
        name: 'users',
        type: 'identify',
        query: 'select id as userId from users where last_updated >= {{last_sync_time}}',
        deliverTo: deliverTo.href,
      })
    ).id;
    scheduler = new Scheduler(rt, { everyMs: 1000, retry: { attempts: 2, baseMs: 10, maxMs: 50 } });
  });

  afterAll(async () => {
    await rt?.close();
    await receiver?.close();
  });

  async function syncRuns(): Promise<string[]> {
    const rows = await query<{ status: string }>(
      sourceUrl,
      "select status from wharf.runs where kind = 'sync' and sync_id = $1 order by id",
      [syncId],
    );
    return rows.map((r) => r.status);
  }

  it('runs a due sync as a job, recorded in the run history and the metrics, and not again before it is due', async () => {
    const report = await scheduler.tick();
    expect(report.syncs).toEqual([{ connector: syncId, status: 'ok', windows: 0, rows: 20 }]);
    expect(receiver.delivered()).toHaveLength(20);
    expect(await syncRuns()).toEqual(['ok']);
    expect(await scheduler.metrics.text()).toMatch(
      new RegExp(`wharf_retl_runs_total\\{sync="${syncId}",status="ok"\\} 1`),
    );
    const next = await scheduler.tick();
    expect(next.syncs).toEqual([]);
    expect(await syncRuns()).toEqual(['ok']);
  });

  it('skips a due sync whose previous run still holds its lock, and records the skip', async () => {
    // its last run a frequency ago: due again
    await query(
      sourceUrl,
      `update wharf.runs set started_at = started_at - interval '2 minutes' where kind = 'sync' and sync_id = $1`,
      [syncId],
    );
    const held = await session(sourceUrl);
    try {
      await held.query('select pg_advisory_lock(hashtext($1))', [syncLockKey('wharf', syncId)]);
      const report = await scheduler.tick();
      expect(report.syncs).toEqual([{ connector: syncId, status: 'skipped', windows: 0, rows: 0 }]);
      expect(await syncRuns()).toEqual(['ok', 'skipped']);
    } finally {
      await held.end();
    }
  });
});

describe('a `wharf run` killed with a load under way', () => {
  it('has its job taken over by another `wharf run`, which loads the connector and stops with exit 0', {
    timeout: 180_000,
  }, async () => {
    await insertClicks(source, 1, 25);
    const added = await wharf(
      [
        'connectors',
        'add',
        '--account',
        '1',
        '--engine',
        'postgres',
        '--url',
        `${warehouseUrl}?sslmode=disable`,
        '--schema',
        'takeover',
        '--json',
      ],
      env,
    );
    expect(added.code, added.stderr).toBe(0);
    const id = (JSON.parse(added.stdout) as { id: string }).id;
    // the first load hangs in the warehouse (a trigger that sleeps), inside the job of the first process
    await query(
      warehouseUrl,
      `create function takeover.slow() returns trigger language plpgsql as $$ begin perform pg_sleep(600); return new; end $$;
       create trigger slow before insert on takeover.clicks for each row execute function takeover.slow()`,
    );
    const first = run();
    const sleeping = await waitFor(async () => {
      const rows = await query<{ pid: number }>(
        warehouseUrl,
        `select pid from pg_stat_activity where datname = current_database() and application_name like 'wharf%'
            and wait_event = 'PgSleep'`,
      );
      return rows[0]?.pid;
    });
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();
    // the server would notice the dead client at its next write; the test ends the sleeping session now
    await query(warehouseUrl, 'select pg_terminate_backend($1)', [sleeping]);
    await query(warehouseUrl, 'drop trigger slow on takeover.clicks');
    const jobs = await query<{ n: string }>(
      sourceUrl,
      'select count(*) as n from wharf_worker._private_jobs where locked_at is not null',
    );
    expect(Number(jobs[0]!.n)).toBeGreaterThan(0);

    const second = run();
    await waitFor(async () => {
      const cmp = await compareWithSource(source, {
        warehouseUrl,
        schema: 'takeover',
        account: 1,
        connectorId: id,
      });
      return Object.values(cmp).every((v) => JSON.stringify(v.source) === JSON.stringify(v.warehouse));
    }, 250);
    const state = await query<{ state: string }>(
      sourceUrl,
      'select state from wharf.connectors where id = $1',
      [id],
    );
    expect(state[0]!.state).toBe('active');
    const ok = await query<{ n: string }>(
      sourceUrl,
      "select count(*) as n from wharf.runs where kind = 'load' and connector_id = $1 and status = 'ok'",
      [id],
    );
    expect(Number(ok[0]!.n)).toBeGreaterThan(0);
    await sleep(1500);
    second.child.kill('SIGTERM');
    expect(await second.exited, second.stderr()).toBe(0);
    expect(errorLines(second.stderr())).toEqual([]);
  });
});
