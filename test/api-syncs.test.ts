import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { literalPg, quotePg } from '../db/postgres/quote.js';
import { startTestApi, type TestApi } from './helpers/api.js';
import { createDatabase, query, serverUrl } from './helpers/databases.js';
import { type Receiver, startReceiver } from './helpers/retl-receiver.js';
import { tempDir } from './helpers/wharf.js';

const suffix = randomBytes(4).toString('hex');
const ROLE = `wharf_api_retl_${suffix}`;
const PASSWORD = `pw-${randomBytes(10).toString('hex')}`;
const WRITE_KEY = `wk_${randomBytes(10).toString('hex')}`;
const QUERY =
  'SELECT id AS "userId", email, plan FROM users WHERE last_updated >= {{last_sync_time}} ORDER BY id';

let api: TestApi;
let receiver: Receiver;
let warehouse: string;
let token7: string;
let token8: string;
let source7: string;
let source8: string;
let sync7: string;
let sync8: string;

beforeAll(async () => {
  const controlUrl = await createDatabase('wharf_api_retl_control');
  const warehouseUrl = await createDatabase('wharf_api_retl_wh');
  warehouse = new URL(warehouseUrl).pathname.slice(1);
  await query(
    warehouseUrl,
    `create table users (id bigint primary key, email text, plan text, last_updated bigint not null);
     insert into users select i, 'user' || i || '@example.com', 'pro', 1000 + i from generate_series(1, 20) i;
     insert into users values (21, null, 'free', 2000), (22, 'x@example.com', 'free', 2001);`,
  );
  await query(serverUrl(), `create role ${quotePg(ROLE)} login password ${literalPg(PASSWORD)}`);
  await query(warehouseUrl, `grant select on users to ${quotePg(ROLE)}`);
  receiver = await startReceiver();
  api = await startTestApi({
    WHARF_SOURCE_URL: controlUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-api-retl-staging-')}`,
    WHARF_SPOOL_DIR: tempDir('wharf-api-retl-spool-'),
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
  });
  token7 = (await api.call('POST', '/v1/tokens', { body: { account: 7 } })).body.token;
  token8 = (await api.call('POST', '/v1/tokens', { body: { account: 8 } })).body.token;
});

afterAll(async () => {
  await api?.close();
  await receiver?.close();
  await query(serverUrl(), `drop database if exists ${quotePg(warehouse)} with (force)`).catch(() => {});
  await query(serverUrl(), `drop role if exists ${quotePg(ROLE)}`).catch(() => {});
});

const port = () => new URL(serverUrl()).port;
const sourceUrl = () => `postgres://${ROLE}@127.0.0.1:${port()}/${warehouse}?sslmode=disable`;
const deliverTo = () => receiver.url.replace('http://', `http://${WRITE_KEY}@`);

describe('reverse ETL through the API', () => {
  it('adds sources (each check step) and syncs for two accounts with their own tokens', async () => {
    for (const [token, set] of [
      [() => token7, (id: string) => (source7 = id)],
      [() => token8, (id: string) => (source8 = id)],
    ] as const) {
      const r = await api.call('POST', '/v1/sources', {
        token: token(),
        body: { engine: 'postgres', url: sourceUrl(), password: PASSWORD },
      });
      expect(r.status, r.text).toBe(201);
      expect(r.body.checks.length).toBeGreaterThan(2);
      set(r.body.id);
    }
    const a = await api.call('POST', '/v1/syncs', {
      token: token7,
      body: { source: source7, name: 'users', type: 'identify', query: QUERY, deliverTo: deliverTo() },
    });
    expect(a.status, a.text).toBe(201);
    sync7 = a.body.id;
    const b = await api.call('POST', '/v1/syncs', {
      token: token8,
      body: { source: source8, name: 'users', type: 'identify', query: QUERY, deliverTo: deliverTo() },
    });
    sync8 = b.body.id;
    const mine = await api.call('GET', '/v1/syncs', { token: token7 });
    expect(mine.body.syncs.map((s: { id: string }) => s.id)).toEqual([sync7]);
    expect(mine.body.syncs[0]).toMatchObject({ account: '7', name: 'users', type: 'identify' });
  });

  it('previews a sync: the SQL with its bound value, the rows, the calls and the rejections', async () => {
    const p = await api.call('POST', `/v1/syncs/${sync7}/preview`, { token: token7, body: { limit: 50 } });
    expect(p.status, p.text).toBe(200);
    expect(p.body.sql).toContain('$1');
    expect(p.body.parameter).toMatchObject({ value: '0' });
    expect(p.body.rows).toHaveLength(22);
    expect(p.body.calls.length + p.body.rejected.length).toBe(22);
    expect(p.body.calls[0]).toMatchObject({ type: 'identify', userId: '1' });
    const adHoc = await api.call('POST', '/v1/preview', {
      token: token7,
      body: { source: source7, type: 'identify', query: 'SELECT id AS "userId" FROM users WHERE id <= 3' },
    });
    expect(adHoc.status, adHoc.text).toBe(200);
    expect(adHoc.body.calls).toHaveLength(3);
  });

  it('runs, disables and enables a sync; the calls reach the endpoint with the write key', async () => {
    const run = await api.call('POST', `/v1/syncs/${sync7}/run`, { token: token7 });
    expect(run.status, run.text).toBe(200);
    expect(receiver.delivered().length).toBe(run.body.calls);
    expect(receiver.requests[0]!.authorization).toBe(
      `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`,
    );
    const shown = await api.call('GET', `/v1/syncs/${sync7}`, { token: token7 });
    expect(shown.body.runs.length).toBe(1);
    expect((await api.call('POST', `/v1/syncs/${sync7}/disable`, { token: token7 })).body.state).toBe(
      'disabled',
    );
    expect((await api.call('POST', `/v1/syncs/${sync7}/run`, { token: token7 })).status).toBe(400);
    expect((await api.call('POST', `/v1/syncs/${sync7}/enable`, { token: token7 })).body.state).toBe(
      'active',
    );
  });

  it("answers 404 on every route of another account's source or sync, as for a missing one", async () => {
    const doc = (await api.call('GET', '/openapi.json')).body;
    let tried = 0;
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      const other = path.startsWith('/v1/sources/')
        ? source8
        : path.startsWith('/v1/syncs/')
          ? sync8
          : undefined;
      if (!other) continue;
      for (const method of Object.keys(item)) {
        const body = method === 'post' ? (path.endsWith('/rotate') ? { password: 'x' } : {}) : undefined;
        const r = await api.call(method.toUpperCase(), path.replace('{id}', other), { token: token7, body });
        expect(r.status, `${method} ${path}`).toBe(404);
        const missing = await api.call(method.toUpperCase(), path.replace('{id}', '99999'), {
          token: token7,
          body,
        });
        expect(missing.status, `${method} ${path} (missing)`).toBe(404);
        tried++;
      }
    }
    expect(tried).toBeGreaterThanOrEqual(8);
    const addToOther = await api.call('POST', '/v1/syncs', {
      token: token7,
      body: { source: source8, name: 'x', type: 'identify', query: QUERY, deliverTo: deliverTo() },
    });
    expect(addToOther.status).toBe(404);
    const previewOther = await api.call('POST', '/v1/preview', {
      token: token7,
      body: { source: source8, type: 'identify', query: 'SELECT 1 AS "userId"' },
    });
    expect(previewOther.status).toBe(404);
  });

  it('no answer carried the password or the write key', () => {
    for (const answer of api.seen) {
      expect(answer.includes(PASSWORD)).toBe(false);
      expect(answer.includes(WRITE_KEY)).toBe(false);
    }
  });
});
