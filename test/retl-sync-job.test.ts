import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addSource, addSync, setSyncEnabled, showSync } from '../pipeline/retl-flows.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { dueSyncs, runSyncJob, syncLockKey } from '../pipeline/sync-job.js';
import { createDatabase, query } from './helpers/databases.js';
import { type Receiver, startReceiver } from './helpers/retl-receiver.js';
import { tempDir } from './helpers/wharf.js';

let rt: Runtime;
let controlUrl: string;
let receiver: Receiver;
let syncId: string;
let sourceId: string;
let deliverTo: string;

beforeAll(async () => {
  process.env.WHARF_MASTER_KEY = randomBytes(32).toString('base64');
  controlUrl = await createDatabase('wharf_retl_job_control');
  const warehouseUrl = await createDatabase('wharf_retl_job_wh');
  await query(
    warehouseUrl,
    `create table users (id bigint, last_updated bigint);
     insert into users select i, i from generate_series(1, 20) i`,
  );
  receiver = await startReceiver();
  rt = new Runtime(
    resolveSettings(
      {
        sourceUrl: controlUrl,
        stagingUrl: `file://${tempDir('wharf-retl-job-staging-')}`,
        spoolDir: tempDir('wharf-retl-job-spool-'),
      },
      {},
    ),
  );
  const url = new URL(warehouseUrl);
  url.searchParams.set('sslmode', 'disable');
  const source = await addSource(rt, { account: 7, engine: 'postgres', url: url.href });
  sourceId = source.id;
  const endpoint = new URL(receiver.url);
  endpoint.username = 'wk_job';
  deliverTo = endpoint.href;
  syncId = (
    await addSync(rt, {
      source: source.id,
      name: 'users',
      type: 'identify',
      query: 'select id as userId from users where last_updated >= {{last_sync_time}}',
      deliverTo,
    })
  ).id;
});

afterAll(async () => {
  await rt?.close();
  await receiver?.close();
});

describe('the sync job', () => {
  it('dueSyncs names a sync that never ran, and not once it ran within its frequency', async () => {
    expect((await dueSyncs(rt)).map((d) => d.id)).toEqual([syncId]);
    const result = await runSyncJob(rt, syncId);
    expect(result.status).toBe('ok');
    expect(result.status === 'ok' && result.summary.calls).toBe(20);
    expect(receiver.delivered()).toHaveLength(20);
    expect(await dueSyncs(rt)).toEqual([]);
    // a scheduler may look a little ahead; a whole frequency ahead, it is due again
    const ahead = await dueSyncs(rt, { aheadMs: 60_000 });
    expect(ahead).toEqual([{ id: syncId, everyMs: 60_000, lastStartedAt: expect.any(Date) }]);
    await setSyncEnabled(rt, syncId, false);
    expect(await dueSyncs(rt, { aheadMs: 60_000 })).toEqual([]);
    await setSyncEnabled(rt, syncId, true);
  });

  it('is skipped, recorded and counted while another process holds the sync', async () => {
    const holder = new pg.Client({ connectionString: controlUrl });
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock(hashtext($1))', [syncLockKey('wharf', syncId)]);
      expect(await runSyncJob(rt, syncId)).toEqual({ status: 'skipped' });
    } finally {
      await holder.end();
    }
    const runs = await query<{ kind: string; status: string }>(
      controlUrl,
      'select kind, status from wharf.runs where sync_id = $1 order by id',
      [syncId],
    );
    expect(runs).toEqual([
      { kind: 'sync', status: 'ok' },
      { kind: 'sync', status: 'skipped' },
    ]);
    const metrics = await rt.metrics.text();
    expect(metrics).toContain(`wharf_retl_calls_total{sync="${syncId}"} 20`);
    expect(metrics).toContain(`wharf_retl_rows_total{sync="${syncId}"} 20`);
    expect(metrics).toContain(`wharf_retl_runs_total{sync="${syncId}",status="ok"} 1`);
    expect(metrics).toContain(`wharf_retl_runs_total{sync="${syncId}",status="skipped"} 1`);
  });

  it('--start-at is when the schedule starts (default now); the first run still binds last_sync_time = 0', async () => {
    const clock = async () =>
      Number(
        (
          await query<{ micros: string }>(
            controlUrl,
            'select (extract(epoch from now()) * 1000000)::bigint::text as micros',
          )
        )[0]!.micros,
      );
    const add = (name: string, startAt?: string) =>
      addSync(rt, {
        source: sourceId,
        name,
        type: 'identify',
        query: 'select id as userId from users where last_updated >= {{last_sync_time}}',
        deliverTo,
        ...(startAt === undefined ? {} : { startAt }),
      });
    const before = await clock();
    const now = await add('starts-now');
    const after = await clock();
    const stored = (
      await query<{ micros: string }>(
        controlUrl,
        'select start_at_micros::text as micros from wharf.retl_syncs where id = $1',
        [now.id],
      )
    )[0]!.micros;
    expect(Number(stored)).toBeGreaterThanOrEqual(before);
    expect(Number(stored)).toBeLessThanOrEqual(after);
    expect((await dueSyncs(rt)).map((d) => d.id)).toContain(now.id);

    const later = new Date(Date.now() + 3_600_000).toISOString();
    const tomorrow = await add('starts-later', later);
    expect((await showSync(rt, tomorrow.id)).startAt).toBe(later.replace(/\.(\d{3})Z$/, '.$1000Z'));
    // not due before its start, even looked at a little ahead; due once the look ahead reaches it
    expect((await dueSyncs(rt)).map((d) => d.id)).not.toContain(tomorrow.id);
    expect((await dueSyncs(rt, { aheadMs: 60_000 })).map((d) => d.id)).not.toContain(tomorrow.id);
    expect((await dueSyncs(rt, { aheadMs: 2 * 3_600_000 })).map((d) => d.id)).toContain(tomorrow.id);
    // run by hand before its start, it binds 0: every row, not the rows after its start
    const first = await runSyncJob(rt, tomorrow.id);
    expect(first.status === 'ok' && first.summary.sinceMicros).toBe(0);
    expect(first.status === 'ok' && first.summary.calls).toBe(20);

    const past = await add('started-earlier', '2024-06-01T00:00:00Z');
    expect((await dueSyncs(rt)).map((d) => d.id)).toContain(past.id);
    const run = await runSyncJob(rt, past.id);
    expect(run.status === 'ok' && run.summary.sinceMicros).toBe(0);
    expect(run.status === 'ok' && run.summary.calls).toBe(20);
    for (const id of [now.id, tomorrow.id, past.id]) await setSyncEnabled(rt, id, false);
  });
});
