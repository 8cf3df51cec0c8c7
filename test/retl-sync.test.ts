import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError, WharfError } from '../core/errors.js';
import { parseQueryTemplate } from '../reverse-etl/query-template.js';
import type { CallType } from '../reverse-etl/row-to-call.js';
import { isoMicros, previewSync, runSync } from '../reverse-etl/sync-run.js';
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

// The four documented example queries of CALLS.md, as written.
const EXAMPLES: ReadonlyArray<{ type: CallType; query: string }> = [
  {
    type: 'identify',
    query: `SELECT id AS userId, email_address AS email, fname, lname, msisdn AS phone
FROM users WHERE last_updated >= {{last_sync_time}}`,
  },
  {
    type: 'track',
    query: `SELECT id AS userId, event_name AS event, products, total_price AS value
FROM events WHERE timestamp > {{last_sync_time}}`,
  },
  {
    type: 'group',
    query: `SELECT companyId AS groupId, objectTypeId, companyname, employees, personId AS userId
FROM companies WHERE last_updated >= {{last_sync_time}}`,
  },
  {
    type: 'alias',
    query: `SELECT id AS userId, old_id AS previousId FROM user_resolution
WHERE timestamp >= {{last_sync_time}}`,
  },
];

/** The same tables twice: time columns in Unix seconds (`unix`) and as timestamptz (`tz`). */
function tables(schema: 'unix' | 'tz'): string {
  const time = schema === 'unix' ? 'bigint' : 'timestamptz';
  const at = (seconds: number) => (schema === 'unix' ? String(seconds) : `to_timestamp(${seconds})`);
  return `
    create schema ${schema};
    set search_path = ${schema};
    create table users (id bigint primary key, email_address text, fname text, lname text, msisdn text, last_updated ${time});
    create table events (id bigint, event_name text, products jsonb, total_price numeric(24,2), timestamp ${time});
    create table companies (companyId bigint, objectTypeId int, companyname text, employees int, personId bigint, last_updated ${time});
    create table user_resolution (id bigint, old_id text, timestamp ${time});
    insert into users values
      (1, 'ann@example.com', 'Ann', 'Lee', '+4471234', ${at(1_600_000_000)}),
      (2, 'bob@example.com', 'Bob', null, null, ${at(1_600_000_100)});
    insert into events values
      (1, 'Order Completed', '[{"sku": "a-1", "qty": 2}]', 19.90, ${at(1_600_000_000)}),
      (2, 'Order Completed', '[]', 123456789012345678.91, ${at(1_600_000_050)}),
      (3, null, '[]', 1, ${at(1_600_000_060)});
    insert into companies values (10, 2, 'Acme', 250, 1, ${at(1_600_000_000)}), (11, null, 'Solo', 1, null, ${at(1_600_000_000)});
    insert into user_resolution values (1, 'anon-1', ${at(1_600_000_000)}), (2, null, ${at(1_600_000_000)});
  `;
}

/** Everything of a call but the id and `sentAt`. */
function content(call: Record<string, unknown>): Record<string, unknown> {
  const { messageId: _id, ...rest } = call;
  return rest;
}

/** The messageId recipe: `wharf-` + sha256(sync id, newline, the call's JSON without its id). */
function expectedId(syncId: string, call: Record<string, unknown>): string {
  return `wharf-${createHash('sha256')
    .update(`${syncId}\n${JSON.stringify(content(call))}`)
    .digest('hex')}`;
}

const FIRST: Record<CallType, unknown[]> = {
  identify: [
    {
      type: 'identify',
      userId: '1',
      traits: { email: 'ann@example.com', fname: 'Ann', lname: 'Lee', phone: '+4471234' },
    },
    {
      type: 'identify',
      userId: '2',
      traits: { email: 'bob@example.com', fname: 'Bob', lname: null, phone: null },
    },
  ],
  track: [
    {
      type: 'track',
      userId: '1',
      event: 'Order Completed',
      properties: { products: [{ qty: 2, sku: 'a-1' }], value: 19.9 },
    },
    {
      type: 'track',
      userId: '2',
      event: 'Order Completed',
      properties: { products: [], value: '123456789012345678.91' },
    },
  ],
  group: [
    {
      type: 'group',
      userId: '1',
      groupId: '10',
      objectTypeId: '2',
      traits: { companyname: 'Acme', employees: 250 },
    },
  ],
  alias: [{ type: 'alias', userId: '1', previousId: 'anon-1' }],
  page: [],
  screen: [],
};

const REJECTED: Record<string, Record<string, number>> = {
  identify: {},
  track: { 'no event': 1 },
  group: { 'no userId and no anonymousId': 1 },
  alias: { 'no previousId': 1 },
};

async function keys(harness: RetlHarness): Promise<string[]> {
  const out: string[] = [];
  for await (const key of harness.store.list('retl/')) out.push(key);
  return out;
}

let h: RetlHarness;
let receiver: Receiver;
let warehouseUrl: string;

beforeAll(async () => {
  h = await openRetlHarness();
  receiver = await startReceiver();
  warehouseUrl = await createDatabase('wharf_retl_warehouse');
  await query(warehouseUrl, tables('unix'));
  await query(warehouseUrl, tables('tz'));
});

afterAll(async () => {
  await receiver?.close();
  await h?.close();
});

describe.each(['unix', 'tz'] as const)('the CALLS.md example queries, time columns as %s', (schema) => {
  it.each(EXAMPLES)(
    '$type: every row once as the expected call, then only what changed',
    async ({ type, query: text }) => {
      receiver.requests.length = 0;
      const deliverTo = withWriteKey(receiver.url);
      const sync = await addSync(h, { type, query: text, deliverTo });
      const deps = runDeps(h, warehouseReader(warehouseUrl, schema), deliverTo);

      const first = await runSync(deps, sync);
      expect(first.parameter).toEqual(
        schema === 'unix'
          ? { type: 'bigint', kind: 'seconds', value: '0' }
          : { type: 'timestamp with time zone', kind: 'timestamptz', value: '1970-01-01T00:00:00.000000Z' },
      );
      expect(first.rejections).toEqual(REJECTED[type]);
      const calls = receiver.delivered();
      expect(calls.map(content)).toEqual(FIRST[type]);
      for (const call of calls) expect(call.messageId).toBe(expectedId(sync.id, call));
      expect(
        receiver.requests.every(
          (r) => r.authorization === `Basic ${Buffer.from('wk_test_123:').toString('base64')}`,
        ),
      ).toBe(true);
      expect(receiver.requests.every((r) => r.contentType === 'application/json')).toBe(true);
      expect(first).toMatchObject({
        rows: FIRST[type].length + first.rejected,
        calls: FIRST[type].length,
        batches: 1,
      });

      // a row changed after the first run's start (on the warehouse clock) and nothing else is read again
      const later = Math.ceil(first.startedAtMicros / 1e6) + 1;
      const at = schema === 'unix' ? String(later) : `to_timestamp(${later})`;
      const moved = {
        identify: 'update users set last_updated = $1 where id = 1',
        track: 'update events set timestamp = $1 where id = 1',
        group: 'update companies set last_updated = $1 where companyId = 10',
        alias: 'update user_resolution set timestamp = $1 where id = 1',
      }[type as string]!;
      await query(warehouseUrl, `set search_path = ${schema}; ${moved.replace('$1', at)}`);
      receiver.requests.length = 0;
      const second = await runSync(deps, sync);
      expect(second.parameter?.value).toBe(
        schema === 'unix'
          ? String(Math.floor(first.startedAtMicros / 1e6))
          : isoMicros(first.startedAtMicros),
      );
      const again = receiver.delivered();
      expect(again.map(content)).toEqual([FIRST[type][0]]);
      // the same row gets the same id in every run
      expect(again[0]!.messageId).toBe(calls[0]!.messageId);
    },
  );

  it('a timestamp column becomes the call timestamp in ISO-8601', async () => {
    receiver.requests.length = 0;
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, {
      type: 'track',
      query:
        'select id as userId, event_name as event, timestamp from events where id = 1 and timestamp >= {{ last_sync_time }}',
      deliverTo,
    });
    await runSync(runDeps(h, warehouseReader(warehouseUrl, schema), deliverTo), sync);
    const [call] = receiver.delivered();
    // id 1 was moved past the first run of the track example above, so its timestamp is a whole second
    expect(typeof call!.timestamp).toBe('string');
    expect(call!.timestamp).toMatch(
      schema === 'unix' ? /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/ : /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    );
    expect(Object.keys(call!.properties as object)).toEqual([]);
  });
});

describe('values full of SQL and JSON metacharacters', () => {
  it('arrive unchanged and change nothing in the warehouse', async () => {
    const url = await createDatabase('wharf_retl_meta');
    const nasty = [
      `'; drop table users; --`,
      '{{last_sync_time}}',
      '{{ last_sync_time }} $1 @p1 $$ $tag$',
      `"quoted" \\backslash\\ 'single' \`tick\``,
      '{"json": [1, "two"]}\n\tnew line, ünïcödé, 🚀, \u2028',
      'x'.repeat(30 * 1024),
    ];
    await query(url, 'create table users (id bigint, note text, last_updated bigint)');
    for (const [i, note] of nasty.entries()) {
      await query(url, 'insert into users values ($1, $2, 1)', [i + 1, note]);
    }
    await query(url, 'insert into users values (99, $1, 1)', ['y'.repeat(33 * 1024)]);
    receiver.requests.length = 0;
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, {
      type: 'identify',
      query: `SELECT id AS userId, note, left(note, 200) AS "context.userAgent" FROM users WHERE last_updated >= {{last_sync_time}} ORDER BY id`,
      deliverTo,
    });
    const summary = await runSync(runDeps(h, warehouseReader(url), deliverTo), sync);
    const calls = receiver.delivered();
    expect(calls.map((c) => (c.traits as { note: string }).note)).toEqual(nasty);
    expect(calls.map((c) => (c.context as { userAgent: string }).userAgent)).toEqual(
      nasty.map((n) => n.slice(0, 200)),
    );
    expect(summary.rejected).toBe(1);
    expect(Object.keys(summary.rejections)[0]).toMatch(
      /^the call is \d+ bytes, over the 32 KB limit of one call$/,
    );
    const rows = await query<{ n: string }>(url, 'select count(*)::text as n from users');
    expect(rows[0]!.n).toBe(String(nasty.length + 1));
  });
});

describe('queries that write', () => {
  let url: string;
  beforeAll(async () => {
    url = await createDatabase('wharf_retl_writes');
    await query(
      url,
      'create table users (id bigint, last_updated bigint); insert into users values (1, 1), (2, 2)',
    );
  });

  async function count(): Promise<string> {
    return (await query<{ n: string }>(url, 'select count(*)::text as n from users'))[0]!.n;
  }

  it('a data-modifying CTE, SELECT INTO or a writing function fail read-only and change nothing', async () => {
    await query(
      url,
      `create function wipe() returns bigint language sql as $$ delete from users returning 1 $$`,
    );
    for (const text of [
      'with gone as (delete from users returning id) select id as userId from gone where {{last_sync_time}} >= 0',
      'select id as userId into copy_of_users from users where last_updated >= {{last_sync_time}}',
      'select wipe() as userId where {{last_sync_time}} >= 0',
    ]) {
      receiver.requests.length = 0;
      const deliverTo = withWriteKey(receiver.url);
      const sync = await addSync(h, { type: 'identify', query: text, deliverTo });
      const error = await runSync(runDeps(h, warehouseReader(url), deliverTo), sync).catch((e) => e);
      expect(error).toBeInstanceOf(WharfError);
      expect((error as WharfError).code).toBe('25006');
      expect((error as WharfError).oneLine()).toMatch(
        /^the sync query tried to write: .*; a sync query only reads/,
      );
      expect(receiver.requests).toHaveLength(0);
      const run = await h.control.query(`select status, error from wharf.runs where sync_id = $1`, [sync.id]);
      expect(run.rows).toEqual([{ status: 'failed', error: expect.stringContaining('tried to write') }]);
    }
    expect(await count()).toBe('2');
    const copies = await query(url, `select to_regclass('copy_of_users') as t`);
    expect(copies[0]!.t).toBeNull();
  });

  it('a second statement, or the placeholder in a literal or a name, is refused before anything runs', () => {
    expect(() => parseQueryTemplate('select id as userId from users; drop table users', 'postgres')).toThrow(
      UsageError,
    );
    expect(() =>
      parseQueryTemplate("select id as userId from users where note = '{{last_sync_time}}'", 'postgres'),
    ).toThrow(/inside a string literal at line 1, column 46/);
    expect(() => parseQueryTemplate('select id as "{{last_sync_time}}" from users', 'postgres')).toThrow(
      /inside a quoted identifier at line 1, column 15/,
    );
  });

  it('still has its rows', async () => {
    expect(await count()).toBe('2');
  });
});

describe('preview', () => {
  it('binds what the next run would, shows rows, calls and rejections, sends and records nothing', async () => {
    receiver.requests.length = 0;
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: EXAMPLES[1]!.type, query: EXAMPLES[1]!.query, deliverTo });
    const before = await h.control.query('select count(*)::int as n from wharf.runs');
    const files = await keys(h);
    const state = await h.progress.state(sync.id);
    const preview = await previewSync(warehouseReader(warehouseUrl, 'unix'), {
      syncId: sync.id,
      type: sync.type,
      query: sync.query,
      lastSyncTimeMicros: state.lastSyncTimeMicros,
      timeoutMs: 10_000,
      limit: 3,
    });
    expect(preview.sql).toBe(`SELECT id AS userId, event_name AS event, products, total_price AS value
FROM events WHERE timestamp > $1`);
    expect(preview.parameter).toEqual({ type: 'bigint', kind: 'seconds', value: '0' });
    expect(preview.rows).toHaveLength(3);
    const third = preview.rows.findIndex((r) => r.userid === 3);
    expect(preview.rows[third]).toEqual({ userid: 3, event: null, products: [], value: 1 });
    expect(preview.calls.map(content).map((c) => c.event)).toEqual(['Order Completed', 'Order Completed']);
    for (const call of preview.calls) expect(call.messageId).toBe(expectedId(sync.id, call));
    expect(preview.rejected).toEqual([{ row: third + 1, reason: 'no event' }]);
    expect(receiver.requests).toHaveLength(0);
    expect((await h.control.query('select count(*)::int as n from wharf.runs')).rows).toEqual(before.rows);
    expect(await keys(h)).toEqual(files);
  });
});
