import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

let h: RetlHarness;
let receiver: Receiver;
let warehouseUrl: string;

beforeAll(async () => {
  h = await openRetlHarness();
  receiver = await startReceiver();
  warehouseUrl = await createDatabase('wharf_retl_lookback');
  // rows changed a few seconds ago: inside a 30 s lookback of the first run's start
  await query(
    warehouseUrl,
    `create table users (id bigint, plan text, updated_at timestamptz);
     insert into users values (1, 'free', now() - interval '5 seconds'), (2, 'pro', now() - interval '3 seconds')`,
  );
});

afterAll(async () => {
  await receiver?.close();
  await h?.close();
});

const QUERY = 'select id as userId, plan from users where updated_at >= {{last_sync_time}} order by id';

describe('a lookback', () => {
  it('re-reads rows committed late without sending any call twice', async () => {
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo, lookbackMs: 30_000 });
    const deps = runDeps(h, warehouseReader(warehouseUrl), deliverTo);

    receiver.requests.length = 0;
    const first = await runSync(deps, sync);
    expect(first).toMatchObject({ calls: 2, alreadySent: 0 });
    expect(receiver.delivered().map((c) => c.userId)).toEqual(['1', '2']);

    // a row stamped before the first run's start but committed after it (a late commit), a row changed
    // since, and one unchanged row inside the margin
    const started = new Date(first.startedAtMicros / 1000);
    await query(
      warehouseUrl,
      `insert into users values (3, 'team', $1::timestamptz - interval '2 seconds')`,
      [started.toISOString()],
    );
    await query(warehouseUrl, `update users set plan = 'enterprise', updated_at = now() where id = 2`);

    receiver.requests.length = 0;
    const second = await runSync(deps, sync);
    expect(second.sinceMicros).toBe(first.startedAtMicros - 30_000_000);
    expect(second.parameter?.kind).toBe('timestamptz');
    // user 1 was re-read unchanged: left out; user 2 changed: sent; user 3 came late: sent
    expect(second).toMatchObject({ rows: 3, calls: 2, alreadySent: 1 });
    expect(receiver.delivered().map((c) => [c.userId, (c.traits as { plan: string }).plan])).toEqual([
      ['2', 'enterprise'],
      ['3', 'team'],
    ]);

    // the ids no later run can re-read are pruned; those inside the margin stay
    const kept = await h.control.query<{ n: number }>(
      'select count(*)::int as n from wharf.retl_sent_calls where sync_id = $1',
      [sync.id],
    );
    expect(kept.rows[0]!.n).toBe(4);

    receiver.requests.length = 0;
    const third = await runSync(deps, sync);
    expect(third).toMatchObject({ rows: 3, calls: 0, alreadySent: 3, batches: 0 });
    expect(receiver.requests).toHaveLength(0);
  });
});
