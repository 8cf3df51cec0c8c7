import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addSource, addSync, setSyncEnabled } from '../pipeline/retl-flows.js';
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
  const deliverTo = new URL(receiver.url);
  deliverTo.username = 'wk_job';
  syncId = (
    await addSync(rt, {
      source: source.id,
      name: 'users',
      type: 'identify',
      query: 'select id as userId from users where last_updated >= {{last_sync_time}}',
      deliverTo: deliverTo.href,
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
});
