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
import { sleep } from './helpers/wharf.js';

// 400 rows, 5 calls a batch, about 40 calls a file: 10 files of 8 batches, each file delivered as soon as it
// is staged while the query is still being read
const QUERY =
  'SELECT id AS userId, id * 10 AS score FROM users WHERE last_updated >= {{last_sync_time}} ORDER BY id';
const ROWS = 400;
const PER_BATCH = 5;
const FILE_BYTES = 40 * 118;

let h: RetlHarness;
let receiver: Receiver;
let warehouseUrl: string;

beforeAll(async () => {
  h = await openRetlHarness();
  receiver = await startReceiver();
  warehouseUrl = await createDatabase('wharf_retl_pipelined');
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
  inFlight: number,
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
      MAX_FILE_BYTES: String(FILE_BYTES),
      IN_FLIGHT: String(inFlight),
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

async function runRow(syncId: string) {
  const rows = await h.control.query<{
    status: string;
    batches_acked: number;
    acked_ahead: number[];
    files: number;
    calls: number;
  }>(
    `select r.status, r.batches_acked, r.acked_ahead,
            (select count(*)::int from wharf.retl_run_files f where f.run_id = r.run_id) as files,
            (select coalesce(sum(f.calls), 0)::int from wharf.retl_run_files f where f.run_id = r.run_id) as calls
       from wharf.retl_runs r where r.sync_id = $1 order by r.run_id desc limit 1`,
    [syncId],
  );
  return rows.rows[0];
}

describe('a run delivers its files while it reads', () => {
  it('with three requests in flight, killed while reading: the next run sends exactly what was not acknowledged', async () => {
    receiver.requests.length = 0;
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    // requests 2, 6 and 7 get no answer: then all three slots are taken, the others were acknowledged
    const held = new Set([2, 6, 7]);
    receiver.respond((n) => (held.has(n) ? 'hold' : undefined));
    const run = child(sync, deliverTo, 3);
    let state = await runRow(sync.id);
    for (
      let i = 0;
      i < 600 &&
      !(receiver.requests.length >= 8 && state?.batches_acked === 2 && state.acked_ahead.length === 3);
      i++
    ) {
      await sleep(50);
      state = await runRow(sync.id);
    }
    expect(state).toMatchObject({ status: 'reading', batches_acked: 2, acked_ahead: [3, 4, 5] });
    expect(state!.files).toBeGreaterThan(0);
    expect(state!.calls).toBeLessThan(ROWS);
    run.process.kill('SIGKILL');
    expect(await run.exit).toBe('SIGKILL');
    // what it had staged when it died (a file may be staged between the last look and the kill)
    state = await runRow(sync.id);
    expect(state).toMatchObject({ status: 'reading', batches_acked: 2, acked_ahead: [3, 4, 5] });
    expect(state!.calls).toBeLessThan(ROWS);
    receiver.respond(undefined);
    const before = receiver.requests.map((r) => ids(r.body.batch));
    expect(before).toHaveLength(8);

    const next = await runSync(
      runDeps(h, warehouseReader(warehouseUrl), deliverTo, { limits: { maxCalls: PER_BATCH }, inFlight: 3 }),
      sync,
    );
    // the calls of the files the dead run had staged were delivered by this invocation first, and left out of its read
    expect(next).toMatchObject({ resumed: false, rows: ROWS });
    expect(next.alreadySent + next.calls).toBe(ROWS);
    expect(next.alreadySent).toBe(state!.calls);

    const all = receiver.requests.flatMap((r) => ids(r.body.batch));
    expect(new Set(all).size).toBe(ROWS);
    // only the three batches in flight when it died reached the receiver twice
    const repeats = all.filter((id, i) => all.indexOf(id) !== i).sort();
    expect(repeats).toEqual([...before[2]!, ...before[6]!, ...before[7]!].sort());
    const users = new Set(receiver.requests.flatMap((r) => r.body.batch.map((c) => c.userId)));
    expect(users.size).toBe(ROWS);

    const runs = await h.control.query<{ status: string; error: string | null }>(
      'select status, error from wharf.runs where sync_id = $1 order by id',
      [sync.id],
    );
    expect(runs.rows.map((r) => r.status)).toEqual(['failed', 'ok']);
    expect(runs.rows[0]!.error).toBe(
      `stopped while reading; the ${state!.calls} calls it had staged were delivered, and the next run leaves them out`,
    );
    // the ids remembered for that are gone once a later run succeeded
    const left = await h.control.query('select 1 from wharf.retl_sent_calls where sync_id = $1', [sync.id]);
    expect(left.rows).toHaveLength(0);
  });

  it('the files are cut per file: a resumed or replayed run sends the same batches', async () => {
    receiver.requests.length = 0;
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    const deps = runDeps(h, warehouseReader(warehouseUrl), deliverTo, {
      limits: { maxCalls: PER_BATCH },
      inFlight: 3,
    });
    const first = await runSync({ ...deps, files: { ...deps.files, maxFileBytes: FILE_BYTES } }, sync);
    expect(first.calls).toBe(ROWS);
    expect(first.batches).toBe(ROWS / PER_BATCH);
    const sent = receiver.requests.map((r) => ids(r.body.batch).join(',')).sort();
    const { replayRun } = await import('../reverse-etl/sync-run.js');
    receiver.requests.length = 0;
    expect(await replayRun(deps, first.manifestKey)).toMatchObject({ batches: first.batches, calls: ROWS });
    expect(receiver.requests.map((r) => ids(r.body.batch).join(',')).sort()).toEqual(sent);
  });
});
