import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCallManifest } from '../reverse-etl/call-files.js';
import { MAP_THREAD_ROWS } from '../reverse-etl/stage-calls.js';
import { previewSync, replayRun, runSync } from '../reverse-etl/sync-run.js';
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

// more rows than MAP_THREAD_ROWS: the first fetch is full, so the rows are mapped on the second thread
const ROWS = 2600;
const QUERY =
  'SELECT id AS userId, email, note, score FROM users WHERE last_updated >= {{last_sync_time}} ORDER BY n';

let h: RetlHarness;
let receiver: Receiver;
let warehouseUrl: string;

beforeAll(async () => {
  h = await openRetlHarness();
  receiver = await startReceiver();
  warehouseUrl = await createDatabase('wharf_retl_thread');
  // every 97th row has no id (rejected), every 311th a note over 32 KB (rejected), some notes need escaping
  await query(
    warehouseUrl,
    `create table users (n int, id bigint, email text, note text, score numeric(30,2), last_updated bigint);
     insert into users
     select i, case when i % 97 = 0 then null else i end, 'user' || i || '@example.com',
            case when i % 311 = 0 then repeat('x', 40000)
                 when i % 7 = 0 then 'caf' || chr(233) || ' "' || i || '" \\ ' || chr(10) || chr(128512)
                 else 'n' || i end,
            case when i % 5 = 0 then 123456789012345678901234.5 else i / 8.0 end, 1000 + i
       from generate_series(1, ${ROWS}) i`,
  );
});

afterAll(async () => {
  await receiver?.close();
  await h?.close();
});

describe('rows mapped on a second thread', () => {
  it('give the same calls, rejections, batches and files as on one thread', async () => {
    expect(ROWS).toBeGreaterThan(MAP_THREAD_ROWS);
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    const deps = runDeps(h, warehouseReader(warehouseUrl), deliverTo, { limits: { maxCalls: 37 } });
    const run = await runSync({ ...deps, files: { ...deps.files, maxFileBytes: 20_000 } }, sync);

    // the same query mapped on this thread, the way `retl preview` does it
    const expected = await previewSync(warehouseReader(warehouseUrl), {
      syncId: sync.id,
      type: sync.type,
      query: sync.query,
      lastSyncTimeMicros: 0,
      timeoutMs: 60_000,
      limit: ROWS,
    });
    expect(expected.rejected.length).toBe(26 + 8);
    expect(run).toMatchObject({
      rows: ROWS,
      calls: expected.calls.length,
      rejected: expected.rejected.length,
    });
    const counts: Record<string, number> = {};
    for (const r of expected.rejected) counts[r.reason] = (counts[r.reason] ?? 0) + 1;
    expect(run.rejections).toEqual(counts);
    expect(counts['no userId and no anonymousId']).toBe(26);
    expect(receiver.delivered()).toEqual(expected.calls);
    const manifest = (await readCallManifest(h.store, run.manifestKey))!;
    expect(manifest.rejected_samples).toEqual(expected.rejected);
    expect(manifest.files.length).toBeGreaterThan(10);
    // cut as on one thread: every request 37 calls but the last, and a replay cuts the files into the same batches
    const sizes = receiver.requests.map((r) => r.body.batch.length);
    expect(sizes.slice(0, -1).every((n) => n === 37)).toBe(true);
    const sent = receiver.requests.map((r) => r.body.batch.map((c) => c.messageId).join(','));
    receiver.requests.length = 0;
    expect(await replayRun(deps, run.manifestKey)).toMatchObject({ batches: run.batches, calls: run.calls });
    expect(receiver.requests.map((r) => r.body.batch.map((c) => c.messageId).join(','))).toEqual(sent);
  });

  it("stop with the run when delivery fails, with the receiver's error", async () => {
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    receiver.respond((_n, _request, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"message":"no such source"}');
      return undefined;
    });
    try {
      const deps = runDeps(h, warehouseReader(warehouseUrl), deliverTo, { limits: { maxCalls: 37 } });
      await expect(
        runSync({ ...deps, files: { ...deps.files, maxFileBytes: 20_000 } }, sync),
      ).rejects.toThrow(/refused batch \d+ with HTTP 400: no such source/);
    } finally {
      receiver.respond(undefined);
    }
    const runs = await h.control.query<{ status: string }>(
      'select status from wharf.retl_runs where sync_id = $1',
      [sync.id],
    );
    expect(runs.rows).toEqual([{ status: 'failed' }]);
  });
});
