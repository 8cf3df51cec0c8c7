import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { freePort } from '../core/embedded-postgres.js';

const ALL = trackingCatalog.streams.map((s) => s.name);

import { wharf } from './helpers/cli.js';
import { createDatabase, query, serverUrl } from './helpers/databases.js';
import { startS3 } from './helpers/s3.js';
import { tempDir } from './helpers/wharf.js';

let sourceUrl: string;
let warehouseUrl: string;
let env: Record<string, string>;
const masterKey = randomBytes(32).toString('base64');

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_cli_src');
  warehouseUrl = await createDatabase('wharf_cli_wh');
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-cli-staging-')}`,
    WHARF_MASTER_KEY: masterKey,
    WHARF_WINDOW: '1m',
    WHARF_SETTLE: '0s',
    WHARF_LOG_LEVEL: 'debug',
  };
});

describe('wharf CLI', () => {
  it('prints help and exits 0', async () => {
    const r = await wharf(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of [
      'source',
      'seed',
      'connectors',
      'export',
      'load',
      'sync',
      'replay',
      'run',
      'status',
      'demo',
    ]) {
      expect(r.stdout).toContain(cmd);
    }
  });

  it('runs the demo: embedded PostgreSQL, seed, connector, export, load, an analyst query', async () => {
    const dir = tempDir('wharf-demo-');
    const r = await wharf(['demo', '--keep=false', '--rows', '5000', '--dir', dir], {
      WHARF_MASTER_KEY: undefined,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Exported \d+ closed windows/);
    expect(r.stdout).toMatch(/Loaded them into account 1's warehouse/);
    expect(r.stdout).toMatch(/clicks\s+[\d,]+/);
    expect(r.stdout).toMatch(/approved commission by affiliate/);
    expect(r.stdout).toContain(`${dir}/staging`);
    expect(r.stdout).toMatch(/psql "postgres:\/\/postgres:postgres@127\.0\.0\.1:\d+\/wharf_warehouse"/);
  });

  it('exits 2 on a usage error, with one line', async () => {
    const r = await wharf(['export', '--no-such-flag'], env);
    expect(r.code).toBe(2);
    const bad = await wharf(['export', '--window', '1 minute'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/invalid window size/);
  });

  it('runs the whole flow: init, seed, connector, sync, status, replay', async () => {
    expect((await wharf(['source', 'init'], env)).code).toBe(0);
    const seeded = await wharf(['seed', '--accounts', '2', '--rows', '2000', '--seed', '3', '--json'], env);
    expect(seeded.code, seeded.stderr).toBe(0);
    const addFirst = [
      'connectors',
      'add',
      '--account',
      '1',
      '--engine',
      'postgres',
      '--url',
      `${warehouseUrl}?sslmode=disable`,
    ];
    const add = await wharf([...addFirst, '--json'], env);
    expect(add.code, add.stderr).toBe(0);
    const { id } = JSON.parse(add.stdout) as { id: string };
    expect(id).toMatch(/^\d+$/);
    const second = await wharf(addFirst, env);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(new RegExp(`wharf connectors disable ${id}`));

    const sync = await wharf(['sync', '--json'], env);
    expect(sync.code, sync.stderr).toBe(0);
    const s = JSON.parse(sync.stdout);
    expect(s.export.windows).toBeGreaterThan(0);
    expect(s.load.connectors[0].rowsStaged).toBeGreaterThan(0);

    const status = await wharf(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    const st = JSON.parse(status.stdout);
    expect(st.connectors[0]).toMatchObject({ id, state: 'active' });
    expect(st.connectors[0].lastWindow).toMatch(/^\d{8}T\d{6}Z_/);

    const clicks = await query<{ n: string }>(warehouseUrl, 'select count(*) as n from tracking.clicks');
    const src = await query<{ n: string }>(
      sourceUrl,
      'select count(*) as n from clicks where account_id = 1',
    );
    expect(clicks[0]!.n).toBe(src[0]!.n);

    // freshness in SQL for the customer's analysts
    const fresh = await query<{
      stream: string;
      window_id: string;
      lag_seconds: string;
      source_high_water: Date | null;
    }>(
      warehouseUrl,
      'select stream, window_id, lag_seconds, source_high_water from tracking._wharf_sync_status order by stream',
    );
    expect(fresh.map((r) => r.stream)).toEqual([...ALL].sort());
    expect(fresh.every((r) => r.window_id === st.connectors[0].lastWindow)).toBe(true);
    expect(fresh.find((r) => r.stream === 'clicks')!.source_high_water).not.toBeNull();

    const replay = await wharf(['replay', '--connector', id, '--json'], env);
    expect(replay.code, replay.stderr).toBe(0);
    const after = await query<{ n: string }>(warehouseUrl, 'select count(*) as n from tracking.clicks');
    expect(after[0]!.n).toBe(src[0]!.n);
  });

  it('bad input gets one clear line: unreachable source, missing table, unknown scheme, missing bucket', async () => {
    const port = await freePort();
    const unreachable = await wharf(['export'], {
      ...env,
      WHARF_SOURCE_URL: `postgres://x:y@127.0.0.1:${port}/db`,
    });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot connect to the source database at 127\.0\.0\.1:\d+\/db/);
    expect(unreachable.stderr.trim().split('\n')).toHaveLength(1);

    const empty = await createDatabase('wharf_cli_empty');
    const missing = await wharf(['export'], { ...env, WHARF_SOURCE_URL: empty });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/source table public\.\w+ does not exist.*wharf source init/);

    const scheme = await wharf(['export'], { ...env, WHARF_STAGING_URL: 'ftp://somewhere/x' });
    expect(scheme.code).toBe(2);
    expect(scheme.stderr).toMatch(/unknown staging URL scheme "ftp:"/);

    const s3 = await startS3();
    try {
      const bucket = await wharf(['export'], {
        ...env,
        WHARF_STAGING_URL: 's3://no-such-bucket/prefix',
        WHARF_S3_ENDPOINT: s3.endpoint,
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
      });
      expect(bucket.code).toBe(1);
      expect(bucket.stderr).toMatch(/bucket no-such-bucket does not exist/);
      expect(bucket.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await s3.stop();
    }
  });
});

describe('SQL Server connectors', () => {
  it('are checked in order before anything is stored: an unreachable server fails at "reach", in one line', async () => {
    const port = await freePort();
    const r = await wharf(
      [
        'connectors',
        'add',
        '--account',
        '9',
        '--allow-unknown-account',
        '--engine',
        'mssql',
        '--url',
        `mssql://loader@127.0.0.1:${port}/analytics`,
        '--password-stdin',
      ],
      env,
      'S3cret;pw\n',
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/warehouse check "reach" failed for 127\.0\.0\.1:\d+\/analytics/);
    expect(r.stderr).not.toContain('S3cret');
    const list = await wharf(['connectors', 'list', '--json'], env);
    expect(JSON.parse(list.stdout).some((c: { account: string }) => c.account === '9')).toBe(false);
  });
});

describe('a canary password is never shown', () => {
  const canary = `Canary-${randomBytes(6).toString('hex')}@:/?#[]%" x`;
  const role = `wharf_canary_${randomBytes(4).toString('hex')}`;
  const noGrant = `wharf_nogrant_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    const escaped = canary.replace(/'/g, "''");
    await query(serverUrl(), `create role ${role} login password '${escaped}'`);
    await query(serverUrl(), `create role ${noGrant} login password '${escaped}'`);
    const db = new URL(warehouseUrl).pathname.slice(1);
    await query(serverUrl(), `grant create, temporary on database "${db}" to ${role}`);
    await query(serverUrl(), `revoke create, temporary on database "${db}" from public`);
  });

  afterAll(async () => {
    const db = new URL(warehouseUrl).pathname.slice(1);
    await query(serverUrl(), `grant temporary on database "${db}" to public`).catch(() => {});
  });

  it('in no output, log line or error across 24 forced failures, nor in the control database', async () => {
    const closed = await freePort();
    const base = new URL(warehouseUrl);
    const enc = encodeURIComponent(canary);
    const cases: { name: string; url: string; stdin?: string }[] = [];
    const host = `127.0.0.1:${base.port}`;
    const specs: [string, string, string, string][] = [
      // name, user, password, host/database?options
      ['wrong port', role, canary, `127.0.0.1:${closed}${base.pathname}?sslmode=disable`],
      ['wrong host', role, canary, `127.0.0.1:${closed}/nowhere?sslmode=disable&connect_timeout=2`],
      ['wrong password', role, `${canary}x`, `${host}${base.pathname}?sslmode=disable`],
      ['wrong database', role, canary, `${host}/no_such_db?sslmode=disable`],
      ['TLS failure', role, canary, `${host}${base.pathname}?sslmode=require`],
      ['missing grant', noGrant, canary, `${host}${base.pathname}?sslmode=disable`],
    ];
    for (const [name, user, password, rest] of specs) {
      cases.push({ name, url: `postgres://${user}:${encodeURIComponent(password)}@${rest}` });
      cases.push({ name: `${name} (stdin)`, url: `postgres://${user}@${rest}`, stdin: password });
    }
    let failures = 0;
    for (const c of cases) {
      for (const extra of [['--json'], ['--verbose']]) {
        const r = await wharf(
          [
            'connectors',
            'add',
            '--account',
            '77',
            '--allow-unknown-account',
            '--engine',
            'postgres',
            '--url',
            c.url,
            ...(c.stdin ? ['--password-stdin'] : []),
            ...extra,
          ],
          env,
          c.stdin ? `${c.stdin}\n` : undefined,
        );
        expect(r.code, `${c.name}: ${r.stderr}`).not.toBe(0);
        failures++;
        for (const text of [r.stdout, r.stderr]) {
          expect(text, c.name).not.toContain(canary);
          expect(text, c.name).not.toContain(enc);
          expect(text, c.name).not.toContain(canary.slice(0, 19));
        }
      }
    }
    expect(failures).toBeGreaterThanOrEqual(20);

    // a connector that works, then its control rows: no plaintext
    const ok = await wharf(
      [
        'connectors',
        'add',
        '--account',
        '2',
        '--engine',
        'postgres',
        '--url',
        `postgres://${role}:${enc}@127.0.0.1:${base.port}${base.pathname}?sslmode=disable`,
        '--schema',
        'canary',
        '--json',
        '--verbose',
      ],
      env,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout + ok.stderr).not.toContain(canary.slice(0, 19));
    const dump = await query<{ t: string }>(
      sourceUrl,
      `select string_agg(t::text, ' ') as t from (select c::text as t from wharf.connectors c union all select s::text from wharf.secrets s) x`,
    );
    expect(dump[0]!.t).not.toContain(canary.slice(0, 19));
    expect(dump[0]!.t).not.toContain(Buffer.from(canary).toString('hex'));
    for (const cmd of [
      ['connectors', 'list', '--json'],
      ['connectors', 'show', JSON.parse(ok.stdout).id, '--json', '--verbose'],
      ['status', '--json', '--verbose'],
      ['sync', '--verbose'],
    ]) {
      const r = await wharf(cmd, env);
      expect(r.stdout + r.stderr).not.toContain(canary.slice(0, 19));
    }
  });
});
