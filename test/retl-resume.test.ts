import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyncDefinition } from '../reverse-etl/sync-run.js';
import { runSync } from '../reverse-etl/sync-run.js';
import { createDatabase, query } from './helpers/databases.js';
import {
  addSync,
  openRetlHarness,
  type RetlHarness,
  runDeps,
  warehouseReader,
  withWriteKey,
} from './helpers/retl.js';
import { type Receiver, startReceiver } from './helpers/retl-receiver.js';

const QUERY =
  'SELECT id AS userId, id * 10 AS score FROM users WHERE last_updated >= {{last_sync_time}} ORDER BY id';
const ROWS = 100;
const PER_BATCH = 10;

let h: RetlHarness;
let receiver: Receiver;
let warehouseUrl: string;

beforeAll(async () => {
  h = await openRetlHarness();
  receiver = await startReceiver();
  warehouseUrl = await createDatabase('wharf_retl_resume');
  await query(
    warehouseUrl,
    `create table users (id bigint, last_updated bigint);
     insert into users select i, 1000 + i from generate_series(1, ${ROWS}) i`,
  );
});

afterAll(async () => {
  await receiver?.close();
  await h?.close();
});

function child(
  sync: SyncDefinition,
  deliverTo: string,
  killAt = '',
): { process: ChildProcess; exit: Promise<string | null> } {
  const proc = spawn(process.execPath, ['bin/run-ts.js', 'test/helpers/retl-child.ts'], {
    env: {
      ...process.env,
      WAREHOUSE_URL: warehouseUrl,
      CONTROL_URL: h.controlUrl,
      STAGING_DIR: h.stagingDir,
      SPOOL_DIR: h.spoolDir,
      SYNC_ID: sync.id,
      TYPE: sync.type,
      QUERY,
      DELIVER_TO: deliverTo,
      MAX_CALLS: String(PER_BATCH),
      KILL_AT: killAt,
    },
    stdio: 'inherit',
  });
  const exit = new Promise<string | null>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('exit', (_code, signal) => resolve(signal));
  });
  return { process: proc, exit };
}

const ids = (batch: Record<string, unknown>[]) => batch.map((c) => c.messageId as string);

describe('a sync run killed with SIGKILL', () => {
  it('halfway through delivery resumes after the last acknowledged batch; only the batch in flight repeats', async () => {
    receiver.requests.length = 0;
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    let run: ReturnType<typeof child> | undefined;
    // the fifth batch reaches the receiver, which kills the sender before answering
    receiver.respond((n) => {
      if (n === 4) {
        run!.process.kill('SIGKILL');
        return 'hold';
      }
      return undefined;
    });
    run = child(sync, deliverTo);
    expect(await run.exit).toBe('SIGKILL');
    receiver.respond(undefined);
    const before = receiver.requests.length;
    expect(before).toBe(5);
    const state = await h.progress.state(sync.id);
    expect(state.unfinished).toMatchObject({ acknowledgedBatches: 4 });

    const resumed = await runSync(
      runDeps(h, warehouseReader(warehouseUrl), deliverTo, { limits: { maxCalls: PER_BATCH } }),
      sync,
    );
    expect(resumed).toMatchObject({ resumed: true, calls: ROWS, batches: 6 });

    const batches = receiver.requests.map((r) => ids(r.body.batch));
    expect(batches).toHaveLength(11);
    // the batch in flight when the process died is sent again, with the same ids
    expect(batches[5]).toEqual(batches[4]);
    const all = batches.flat();
    const distinct = new Set(all);
    expect(distinct.size).toBe(ROWS);
    const repeats = all.filter((id, i) => all.indexOf(id) !== i);
    expect(repeats).toEqual(batches[4]);
    // and every user arrives
    const users = new Set(receiver.requests.flatMap((r) => r.body.batch.map((c) => c.userId)));
    expect(users.size).toBe(ROWS);
    expect((await h.progress.state(sync.id)).unfinished).toBeUndefined();
  });

  it('before its run was recorded as staged: the next run starts over and sends every call once', async () => {
    receiver.requests.length = 0;
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    expect(await child(sync, deliverTo, 'staged').exit).toBe('SIGKILL');
    expect(receiver.requests).toHaveLength(0);
    const again = await runSync(
      runDeps(h, warehouseReader(warehouseUrl), deliverTo, { limits: { maxCalls: PER_BATCH } }),
      sync,
    );
    expect(again).toMatchObject({ resumed: false, calls: ROWS, batches: 10 });
    const all = receiver.requests.flatMap((r) => ids(r.body.batch));
    expect(new Set(all).size).toBe(ROWS);
    expect(all).toHaveLength(ROWS);
    const runs = await h.control.query('select status from wharf.runs where sync_id = $1 order by id', [
      sync.id,
    ]);
    expect(runs.rows.map((r) => r.status)).toEqual(['failed', 'ok']);
  });
});
