import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError, WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { HttpBatchSender, parseDeliverTo } from '../reverse-etl/batch-sender.js';
import { replayRun, runSync } from '../reverse-etl/sync-run.js';
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

const QUERY = 'SELECT id AS userId, email FROM users WHERE last_updated >= {{last_sync_time}} ORDER BY id';

let h: RetlHarness;
let receiver: Receiver;
let warehouseUrl: string;

beforeAll(async () => {
  h = await openRetlHarness();
  receiver = await startReceiver();
  warehouseUrl = await createDatabase('wharf_retl_delivery');
  await query(
    warehouseUrl,
    `create table users (id bigint, email text, last_updated bigint);
     insert into users values (1, 'a@example.com', 1), (2, 'b@example.com', 2)`,
  );
});

afterAll(async () => {
  await receiver?.close();
  await h?.close();
});

async function runState(syncId: string) {
  const r = await h.control.query(
    `select r.status, r.batches_acked, r.calls_acked::int, u.status as run_status, u.error
       from wharf.retl_runs r join wharf.runs u on u.id = r.run_id where r.sync_id = $1 order by r.run_id`,
    [syncId],
  );
  return r.rows;
}

describe('delivery', () => {
  it('429 with Retry-After: 1, then 503, then 200: the batch is delivered once', async () => {
    receiver.requests.length = 0;
    receiver.respond((n, _req, res) => {
      if (n === 0) res.writeHead(429, { 'retry-after': '1' }).end('{"message":"slow down"}');
      else if (n === 1) res.writeHead(503).end('unavailable');
      return undefined;
    });
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    const retries: { attempt: number; delayMs: number; reason: string }[] = [];
    const summary = await runSync(
      runDeps(h, warehouseReader(warehouseUrl), deliverTo, { onRetry: (e) => retries.push(e) }),
      sync,
    );
    receiver.respond(undefined);
    expect(receiver.requests.map((r) => r.status)).toEqual([429, 503, 200]);
    const ids = receiver.requests.map((r) => r.body.batch.map((c) => c.messageId));
    expect(ids[1]).toEqual(ids[0]);
    expect(ids[2]).toEqual(ids[0]);
    expect(receiver.delivered().map((c) => c.userId)).toEqual(['1', '2']);
    expect(retries.map((r) => [r.attempt, r.reason])).toEqual([
      [1, 'HTTP 429'],
      [2, 'HTTP 503'],
    ]);
    expect(retries[0]!.delayMs).toBe(1000);
    expect(summary).toMatchObject({ rows: 2, calls: 2, batches: 1 });
    expect(await runState(sync.id)).toEqual([
      { status: 'ok', batches_acked: 1, calls_acked: 2, run_status: 'ok', error: null },
    ]);
  });

  it('a 400 fails the run with the status and the receiver message', async () => {
    receiver.requests.length = 0;
    receiver.respond((_n, _req, res) => {
      res
        .writeHead(400, { 'content-type': 'application/json' })
        .end(JSON.stringify({ success: false, message: 'Invalid call: wk_test_123 has no such project' }));
      return undefined;
    });
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    const error = await runSync(runDeps(h, warehouseReader(warehouseUrl), deliverTo), sync).catch((e) => e);
    receiver.respond(undefined);
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).kind).toBe('terminal');
    expect((error as WharfError).code).toBe('HTTP_400');
    // the receiver echoed the write key: it is masked
    expect((error as WharfError).message).toBe(
      `the receiver at ${receiver.url} refused batch 0 with HTTP 400: Invalid call: ******** has no such project`,
    );
    expect(receiver.requests).toHaveLength(1);
    const [run] = await runState(sync.id);
    expect(run).toMatchObject({ status: 'failed', batches_acked: 0, run_status: 'failed' });
    expect(run!.error).toContain('refused batch 0 with HTTP 400');
  });

  it('a receiver down past the attempts leaves the run staged; the next run resumes and delivers once', async () => {
    receiver.requests.length = 0;
    receiver.respond((_n, _req, res) => {
      res.writeHead(500).end();
      return undefined;
    });
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    const deps = runDeps(h, warehouseReader(warehouseUrl), deliverTo, {
      retry: { maxAttempts: 3, baseDelayMs: 5 },
    });
    const error = await runSync(deps, sync).catch((e) => e);
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).transient).toBe(true);
    expect((error as WharfError).message).toContain('kept failing batch 0: HTTP 500 after 3 attempts');
    expect(await runState(sync.id)).toMatchObject([{ status: 'delivering', batches_acked: 0 }]);

    receiver.respond(undefined);
    // a row added meanwhile is not part of the staged run
    await query(warehouseUrl, `insert into users values (3, 'c@example.com', 3)`);
    const resumed = await runSync(deps, sync);
    await query(warehouseUrl, 'delete from users where id = 3');
    expect(resumed).toMatchObject({ resumed: true, calls: 2, batches: 1 });
    expect(receiver.requests).toHaveLength(4);
    expect(receiver.delivered().map((c) => c.userId)).toEqual(['1', '2']);
    expect(await runState(sync.id)).toMatchObject([{ status: 'ok', batches_acked: 1 }]);
  });

  it('a staged run replays from its files: the same calls with the same ids, nothing recorded', async () => {
    receiver.requests.length = 0;
    const deliverTo = withWriteKey(receiver.url);
    const sync = await addSync(h, { type: 'identify', query: QUERY, deliverTo });
    const deps = runDeps(h, warehouseReader(warehouseUrl), deliverTo);
    const first = await runSync(deps, sync);
    const sent = receiver.delivered();
    // the warehouse changes meanwhile: a replay sends what was staged, not what is there now
    await query(warehouseUrl, `update users set email = 'changed@example.com' where id = 1`);
    receiver.requests.length = 0;
    const replay = await replayRun(deps, first.manifestKey);
    await query(warehouseUrl, `update users set email = 'a@example.com' where id = 1`);
    expect(replay).toEqual({ batches: 1, calls: 2, bytes: first.bytes });
    expect(receiver.delivered()).toEqual(sent);
    expect(await runState(sync.id)).toMatchObject([{ status: 'ok', batches_acked: 1, calls_acked: 2 }]);
    const missing = await replayRun(deps, 'retl/999/1/manifest.json').catch((e) => e);
    expect(missing.oneLine()).toBe(
      'there is no staged run at retl/999/1/manifest.json (key retl/999/1/manifest.json); check the sync and run ids, and --staging-url',
    );
  });

  it('honours Retry-After as an HTTP date, and retries network errors', async () => {
    const sender = new HttpBatchSender(parseDeliverTo(withWriteKey(receiver.url)), {
      retry: { baseDelayMs: 5 },
    });
    receiver.requests.length = 0;
    receiver.respond((n, _req, res) => {
      if (n === 0) res.writeHead(503, { 'retry-after': new Date(Date.now() + 2000).toUTCString() }).end();
      return undefined;
    });
    const result = await sender.send(['{"messageId":"wharf-x","type":"identify","userId":"1"}'], 0);
    receiver.respond(undefined);
    expect(result).toEqual({ status: 200, attempts: 2 });

    // a port nobody listens on: connection refused, retried, then a transient error
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const down = new HttpBatchSender(parseDeliverTo(`http://key@127.0.0.1:${port}/v1/batch`), {
      retry: { maxAttempts: 2, baseDelayMs: 5 },
    });
    const error = await down.send(['{}'], 7).catch((e) => e);
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).transient).toBe(true);
    expect((error as WharfError).message).toBe(
      `the receiver at http://127.0.0.1:${port}/v1/batch kept failing batch 7: network error ECONNREFUSED after 2 attempts`,
    );
  });
});

describe('the --deliver-to URL', () => {
  it('keeps the write key apart as a secret that never prints', () => {
    const endpoint = parseDeliverTo('https://wk%2Fabc%40123@api.example.com/v1/batch');
    expect(endpoint.url).toBe('https://api.example.com/v1/batch');
    expect(endpoint.writeKey.reveal()).toBe('wk/abc@123');
    expect(String(endpoint.writeKey)).toBe('********');
    expect(JSON.stringify(endpoint)).toBe('{"url":"https://api.example.com/v1/batch","writeKey":"********"}');
    expect(inspect(endpoint)).not.toContain('wk/abc');
    expect(parseDeliverTo('http://127.0.0.1:9/b', new Secret('other')).writeKey.reveal()).toBe('other');
  });

  it('refuses forms it cannot use, without echoing the key', () => {
    const messages = ['ftp://k@h/p', 'https://k:secret@h/p', 'https://h/p', 'not a url'].map((text) => {
      try {
        parseDeliverTo(text);
      } catch (error) {
        expect(error).toBeInstanceOf(UsageError);
        return (error as UsageError).message;
      }
      throw new Error(`accepted ${text}`);
    });
    expect(messages).toEqual([
      'the --deliver-to URL has the scheme ftp: ; use https:// (or http://)',
      'the --deliver-to URL has a password; the write key goes alone before the @',
      'the --deliver-to URL https://h/p names no write key',
      'the --deliver-to URL is not a valid URL',
    ]);
    expect(messages.join(' ')).not.toContain('secret');
  });
});
