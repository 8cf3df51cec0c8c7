import { randomBytes } from 'node:crypto';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../core/embedded-postgres.js';
import { createApp } from '../server/app.js';
import { createWarehouse, startTestApi, type TestApi } from './helpers/api.js';
import { wharf } from './helpers/cli.js';
import { createDatabase, query } from './helpers/databases.js';
import { S3RVER_CREDENTIALS, startS3 } from './helpers/s3.js';
import { tempDir } from './helpers/wharf.js';

let env: Record<string, string>;
let sourceUrl: string;
let api: TestApi;
let wh1: Awaited<ReturnType<typeof createWarehouse>>;
let wh2: Awaited<ReturnType<typeof createWarehouse>>;
/** Account 1's token (from the CLI), account 2's (from the API). */
let token1: string;
let token2: string;
let connector1: string;
let connector2: string;
// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is read as JSON
let doc: any;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** Every operation of the document: method, path template. */
function operations(): { method: string; path: string }[] {
  return Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => ({ method: method.toUpperCase(), path })),
  );
}

/** A body each operation accepts, so that only the token decides the answer. */
function validBody(method: string, path: string): unknown {
  if (method !== 'POST') return undefined;
  if (path.endsWith('/rotate')) return { password: 'another-password' };
  if (path === '/v1/connectors') return { engine: 'postgres', url: 'postgres://u@127.0.0.1:1/db' };
  if (path === '/v1/tokens') return { account: 2 };
  return {};
}

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_api_src');
  wh1 = await createWarehouse('wharf_api_wh1');
  wh2 = await createWarehouse('wharf_api_wh2');
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-api-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1m',
    WHARF_SETTLE: '0s',
    WHARF_LOG_LEVEL: 'warn',
  };
  const seeded = await wharf(['seed', '--accounts', '2', '--rows', '600', '--seed', '7'], env);
  expect(seeded.code, seeded.stderr).toBe(0);
  api = await startTestApi(env);
  const created = await wharf(['tokens', 'create', '--account', '1', '--name', 'platform', '--json'], env);
  expect(created.code, created.stderr).toBe(0);
  token1 = (JSON.parse(created.stdout) as { token: string }).token;
  const t2 = await api.call('POST', '/v1/tokens', { body: { account: 2, name: 'account two' } });
  expect(t2.status, t2.text).toBe(201);
  token2 = t2.body.token;
  doc = (await api.call('GET', '/openapi.json')).body;
});

afterAll(async () => {
  await api?.close();
});

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('covers every route the server answers, each with the bearer scheme', () => {
    const app = createApp({ rt: api.rt });
    const served = new Set(
      app.routes
        .filter((r) => r.method !== 'ALL')
        .map((r) => `${r.method} ${r.path.replace(/:([a-z]+)/gi, '{$1}')}`),
    );
    const documented = new Set(operations().map((o) => `${o.method} ${o.path}`));
    expect([...served].sort()).toEqual([...documented].sort());
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const { method, path } of operations()) {
      expect(doc.paths[path][method.toLowerCase()].security, `${method} ${path}`).toEqual([{ bearer: [] }]);
    }
    expect(documented.size).toBeGreaterThan(15);
  });
});

describe('authentication', () => {
  it('answers 401 on every route without a token (the console page: its sign-in form)', async () => {
    for (const { method, path } of operations()) {
      const r = await api.call(method, path.replace('{id}', '1').replace('{file}', 'console.js'), {
        token: null,
        body: validBody(method, path),
      });
      expect(r.status, `${method} ${path}`).toBe(401);
      expect(r.headers.get('www-authenticate')).toContain('Bearer');
      if (path === '/') expect(r.text).toContain('id="signin"');
      else expect(r.body.error).toMatch(/Authorization: Bearer/);
    }
  });

  it('answers 401 for an unknown or malformed token', async () => {
    for (const token of ['wharf_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'nope', `${token1}x`]) {
      const r = await api.call('GET', '/v1/connectors', { token });
      expect(r.status).toBe(401);
    }
  });

  it('stores tokens as sha256 only', async () => {
    const rows = await query<{ sha256: Buffer; account_id: string | null }>(
      sourceUrl,
      'select sha256, account_id from wharf.api_tokens order by id',
    );
    expect(rows.map((r) => r.account_id)).toEqual(['1', '2']);
    for (const r of rows) {
      expect(r.sha256).toHaveLength(32);
      expect(r.sha256.toString('utf8')).not.toContain('wharf_');
    }
    const list = await wharf(['tokens', 'list', '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).not.toContain(token1);
    expect(JSON.parse(list.stdout)).toHaveLength(2);
  });
});

describe('connectors end to end', () => {
  it('adds a connector through the API with an account token, returning each check step', async () => {
    const r = await api.call('POST', '/v1/connectors', {
      token: token1,
      body: { engine: 'postgres', url: wh1.url, password: wh1.password, streams: ['accounts', 'affiliates'] },
    });
    expect(r.status, r.text).toBe(201);
    connector1 = r.body.id;
    expect(r.body.checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining(['reach', 'authenticate']),
    );
    for (const c of r.body.checks) expect(c.ok).toBe(true);
    const shown = await api.call('GET', `/v1/connectors/${connector1}`, { token: token1 });
    expect(shown.body).toMatchObject({ id: connector1, account: '1', engine: 'postgres', state: 'active' });
    expect(shown.body.streams).toEqual(['accounts', 'affiliates']);
  });

  it('an admin adds account 2 (password in the URL); the second add is refused with the CLI line', async () => {
    const url = new URL(wh2.url);
    url.password = wh2.password;
    const r = await api.call('POST', '/v1/connectors', {
      body: { account: 2, engine: 'postgres', url: url.toString() },
    });
    expect(r.status, r.text).toBe(201);
    connector2 = r.body.id;
    const again = await api.call('POST', '/v1/connectors', {
      body: { account: 2, engine: 'postgres', url: url.toString() },
    });
    expect(again.status).toBe(400);
    expect(again.body.error).toBe(
      `account 2 already has active connector ${connector2}; disable it first: wharf connectors disable ${connector2}`,
    );
  });

  it('loads through the API after an export, and shows status, runs and lag', async () => {
    const exported = await wharf(['export'], env);
    expect(exported.code, exported.stderr).toBe(0);
    const load = await api.call('POST', `/v1/connectors/${connector1}/load`, { token: token1 });
    expect(load.status, load.text).toBe(200);
    expect(load.body.windows).toBeGreaterThan(0);
    const [inSource] = await query<{ n: string }>(
      sourceUrl,
      'select count(*) as n from affiliates where account_id = 1',
    );
    const [inWarehouse] = await query<{ n: string }>(
      wh1.url.replace(`${wh1.user}@`, `${wh1.user}:${wh1.password}@`),
      'select count(*) as n from tracking.affiliates',
    );
    expect(inWarehouse!.n).toBe(inSource!.n);

    const status = await api.call('GET', `/v1/connectors/${connector1}/status`, { token: token1 });
    expect(status.status).toBe(200);
    expect(status.body.lastWindow).toBe(load.body.lastWindow);
    expect(status.body.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(status.body.loadsToday).toBe(1);
    expect(status.body.streams.map((s: { stream: string }) => s.stream)).toEqual(['accounts', 'affiliates']);

    const runs = await api.call('GET', `/v1/connectors/${connector1}/runs`, { token: token1 });
    expect(runs.body.runs).toHaveLength(1);
    expect(runs.body.runs[0]).toMatchObject({
      kind: 'load',
      status: 'ok',
      connectorId: connector1,
      account: '1',
    });

    const lag = await api.call('GET', `/v1/connectors/${connector1}/lag?hours=1`, { token: token1 });
    expect(lag.body.points).toHaveLength(1);
    expect(lag.body.points[0].status).toBe('ok');
    expect(lag.body.points[0].lagSeconds).toBeGreaterThanOrEqual(0);

    const replay = await api.call('POST', `/v1/connectors/${connector1}/replay`, {
      token: token1,
      body: { from: '2000-01-01T00:00:00Z' },
    });
    expect(replay.status, replay.text).toBe(200);
    expect(replay.body.windows).toBe(load.body.windows);
  });

  it('status pages, filters and sorts by lag; an account token sees only its own', async () => {
    const all = await api.call('GET', '/v1/status?sort=lag&order=desc&limit=1');
    expect(all.body.total).toBe(2);
    expect(all.body.connectors).toHaveLength(1);
    // connector 2 never loaded: the most behind
    expect(all.body.connectors[0].id).toBe(connector2);
    const filtered = await api.call('GET', `/v1/status?q=${connector1}&limit=10`);
    expect(filtered.body.connectors.map((c: { id: string }) => c.id)).toContain(connector1);
    const mine = await api.call('GET', '/v1/status', { token: token2 });
    expect(mine.body.connectors.map((c: { id: string }) => c.id)).toEqual([connector2]);
    const list = await api.call('GET', '/v1/connectors', { token: token2 });
    expect(list.body).toMatchObject({ total: 1 });
    const runs = await api.call('GET', '/v1/runs', { token: token2 });
    expect(runs.body.runs).toEqual([]);
    const adminRuns = await api.call('GET', '/v1/runs?status=ok');
    expect(adminRuns.body.runs.length).toBeGreaterThanOrEqual(3); // export, load, replay
  });

  it('tests, rotates and disables through the API', async () => {
    const test = await api.call('POST', `/v1/connectors/${connector2}/test`, { token: token2 });
    expect(test.status, test.text).toBe(200);
    expect(test.body.ok).toBe(true);
    const newPassword = `pw-${randomBytes(12).toString('hex')}`;
    await query(sourceUrl, `alter role "${wh2.user}" password '${newPassword}'`);
    wh2.password = newPassword; // looked for in every answer below
    const rotated = await api.call('POST', `/v1/connectors/${connector2}/rotate`, {
      token: token2,
      body: { password: newPassword },
    });
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.body.secretVersion).toBe(2);
    const disabled = await api.call('POST', `/v1/connectors/${connector2}/disable`, { token: token2 });
    expect(disabled.body.state).toBe('disabled');
  });

  it('a failed check answers with every step and the one line (a warehouse that refuses connections)', async () => {
    const port = await freePort();
    const r = await api.call('POST', '/v1/connectors', {
      body: {
        account: 3,
        allowUnknownAccount: true,
        engine: 'postgres',
        url: `postgres://u:pw-not-shown@127.0.0.1:${port}/db?sslmode=disable`,
      },
    });
    expect(r.status).toBe(503);
    expect(r.body.error).toMatch(new RegExp(`cannot reach 127\\.0\\.0\\.1:${port}: connection refused`));
    expect(r.body.checks[0]).toMatchObject({ name: 'reach', ok: false, code: 'ECONNREFUSED' });
    expect(r.text).not.toContain('pw-not-shown');
  });
});

describe('bucket connectors', () => {
  it('adds one through the API, delivers through the API, and lists its deliveries', async () => {
    const s3 = await startS3();
    try {
      const r = await api.call('POST', '/v1/connectors', {
        body: {
          account: 5,
          allowUnknownAccount: true,
          engine: 'bucket',
          url: `s3://${s3.bucket}/customer-5`,
          s3Endpoint: s3.endpoint,
          s3PathStyle: true,
          accessKeyId: S3RVER_CREDENTIALS.accessKeyId,
          secretAccessKey: S3RVER_CREDENTIALS.secretAccessKey.reveal(),
        },
      });
      expect(r.status, r.text).toBe(201);
      for (const c of r.body.checks) expect(c.ok).toBe(true);
      const id = r.body.id as string;
      const shown = await api.call('GET', `/v1/connectors/${id}`);
      expect(shown.body).toMatchObject({
        engine: 'bucket',
        family: 'bucket',
        destination: `s3://${s3.bucket}/customer-5 at ${s3.endpoint}`,
      });
      expect(shown.text).not.toContain('secretAccessKey');
      const delivered = await api.call('POST', `/v1/connectors/${id}/load`);
      expect(delivered.status, delivered.text).toBe(200);
      expect(delivered.body).toMatchObject({ family: 'bucket', connector: id });
      expect(delivered.body.deliveries).toBeGreaterThan(0);
      const list = await api.call('GET', `/v1/connectors/${id}/deliveries`);
      expect(list.status, list.text).toBe(200);
      expect(list.body.deliveries.length).toBe(delivered.body.deliveries);
      for (const d of list.body.deliveries) expect(d.status).toBe('done');
      expect(list.body.deliveries.reduce((n: number, d: { files: number }) => n + d.files, 0)).toBe(
        delivered.body.files,
      );
      const status = await api.call('GET', `/v1/connectors/${id}/status`);
      expect(status.body.delivery).toMatchObject({ deliveries: delivered.body.deliveries });
      const lag = await api.call('GET', `/v1/connectors/${id}/lag?hours=1`);
      expect(lag.body.points.map((p: { status: string }) => p.status)).toEqual(['ok']);
      const warehouse = await api.call('GET', `/v1/connectors/${connector1}/deliveries`);
      expect(warehouse.status).toBe(400);
      expect(warehouse.body.error).toContain('is a warehouse connector');
    } finally {
      await s3.stop();
    }
  });
});

describe('bad requests', () => {
  it('answers 400 naming the field and what to do', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/v1/connectors', { account: 1, engine: 'oracle', url: 'x' }, 'engine'],
      ['POST', '/v1/connectors', { account: 1, engine: 'postgres' }, 'url'],
      [
        'POST',
        '/v1/connectors',
        { account: 1, engine: 'postgres', url: 'x', streams: ['nope'] },
        'streams.0',
      ],
      ['POST', '/v1/connectors', { account: 'one', engine: 'postgres', url: 'x' }, 'account'],
      ['POST', '/v1/connectors', { engine: 'postgres', url: 'postgres://u@h/db' }, 'account'],
      ['GET', '/v1/status?limit=0', undefined, 'limit'],
      ['GET', '/v1/connectors/abc', undefined, 'id'],
      ['POST', '/v1/connectors/1/replay', { from: 'yesterday' }, 'from'],
      ['POST', '/v1/tokens', { account: -1 }, 'account'],
    ];
    for (const [method, path, body, field] of cases) {
      const r = await api.call(method, path, { body });
      expect(r.status, `${method} ${path} ${r.text}`).toBe(400);
      expect(r.body.field, `${method} ${path}`).toBe(field);
      expect(r.body.error).toMatch(
        new RegExp(`^invalid ${field.replace('.', '\\.')}: .+; see /openapi.json`),
      );
    }
    const malformed = await api.call('POST', '/v1/connectors', { body: '{"account": ' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toMatch(/JSON/);
    const huge = await api.call('POST', '/v1/connectors', {
      body: JSON.stringify({ url: 'x'.repeat(2 ** 21) }),
    });
    expect(huge.status).toBe(413);
    expect(huge.body.error).toContain('larger than 1 MiB');
    const unknown = await api.call('GET', '/v1/nothing-here');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe('no route GET /v1/nothing-here; see /openapi.json');
  });

  it('a usage error of the pipeline is a 400 with its line', async () => {
    const r = await api.call('POST', '/v1/connectors', {
      body: { account: 4, engine: 'mssql', url: 'postgres://u@127.0.0.1:1/db' },
    });
    expect(r.status).toBe(400);
    expect(r.body.error).toContain('--engine mssql does not match the URL scheme');
  });
});

describe('account scoping', () => {
  it("answers 404 on every route of another account's connector, as for one that does not exist", async () => {
    const objects: Record<string, string> = { '/v1/connectors/': connector2 };
    let tried = 0;
    for (const { method, path } of operations()) {
      if (!path.includes('{id}') || path.startsWith('/v1/tokens/')) continue;
      // reverse ETL's sources and syncs: test/api-syncs.test.ts
      if (path.startsWith('/v1/sources/') || path.startsWith('/v1/syncs/')) continue;
      const prefix = Object.keys(objects).find((p) => path.startsWith(p));
      expect(prefix, `${path}: name an object of account 2 for this route group`).toBeDefined();
      const r = await api.call(method, path.replace('{id}', objects[prefix!]!), {
        token: token1,
        body: validBody(method, path),
      });
      expect(r.status, `${method} ${path}`).toBe(404);
      const missing = await api.call(method, path.replace('{id}', '999999'), {
        token: token1,
        body: validBody(method, path),
      });
      expect(missing.status).toBe(404);
      expect(r.body.error.replace(objects[prefix!]!, 'N')).toBe(missing.body.error.replace('999999', 'N'));
      tried++;
    }
    expect(tried).toBeGreaterThanOrEqual(9);
    const runs = await api.call('GET', `/v1/runs?connector=${connector2}`, { token: token1 });
    expect(runs.status).toBe(404);
  });

  it('an account token cannot add for another account, nor manage tokens (403)', async () => {
    const add = await api.call('POST', '/v1/connectors', {
      token: token1,
      body: { account: 2, engine: 'postgres', url: wh2.url },
    });
    expect(add.status).toBe(403);
    for (const { method, path } of operations().filter((o) => o.path.startsWith('/v1/tokens'))) {
      const r = await api.call(method, path.replace('{id}', '1'), {
        token: token1,
        body: validBody(method, path),
      });
      expect(r.status, `${method} ${path}`).toBe(403);
    }
  });

  it('a revoked token stops working at once', async () => {
    const t = await api.call('POST', '/v1/tokens', { body: { account: 1, name: 'short-lived' } });
    expect((await api.call('GET', '/v1/session', { token: t.body.token })).body).toMatchObject({
      admin: false,
      account: '1',
    });
    const revoked = await api.call('DELETE', `/v1/tokens/${t.body.id}`);
    expect(revoked.body.revokedAt).not.toBeNull();
    expect((await api.call('GET', '/v1/session', { token: t.body.token })).status).toBe(401);
  });
});

describe('secrets', () => {
  it('no answer so far carried a password or the admin token', () => {
    expect(api.seen.length).toBeGreaterThan(50);
    for (const answer of api.seen) {
      for (const secret of [wh1.password, wh2.password, 'another-password', api.adminToken]) {
        expect(answer.includes(secret), answer.slice(0, 200)).toBe(false);
      }
    }
  });
});

describe('failed authentication', () => {
  it('is rate limited per address and logged without the token', async () => {
    const limited = await startTestApi(env, { failures: 3, periodMs: 60_000 });
    try {
      const wrong = `wharf_9_${'B'.repeat(43)}`;
      for (let i = 0; i < 3; i++) {
        expect((await limited.call('GET', '/v1/status', { token: wrong })).status).toBe(401);
      }
      const blocked = await limited.call('GET', '/v1/status', { token: wrong });
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      // the address is refused before any token is checked, a right one too
      expect((await limited.call('GET', '/v1/status')).status).toBe(429);
      const logged = limited.logs.join('');
      expect(logged).toContain('API authentication failed');
      expect(logged).toContain('/v1/status');
      expect(logged).not.toContain(wrong);
      expect(logged).not.toContain('B'.repeat(43));
    } finally {
      await limited.close();
    }
  });
});
