import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { literalPg, quotePg } from '../db/postgres/quote.js';
import { type CliResult, wharf } from './helpers/cli.js';
import { createDatabase, query, serverUrl } from './helpers/databases.js';
import { type Receiver, startReceiver } from './helpers/retl-receiver.js';
import { sleep, tempDir } from './helpers/wharf.js';

const suffix = randomBytes(4).toString('hex');
const PASSWORD = `Canary-${randomBytes(6).toString('hex')}-p@ss:w/o?r#d`;
const WRITE_KEY = `wk_canary_${randomBytes(6).toString('hex')}`;
const roles = { ro: `wharf_retl_ro_${suffix}`, rw: `wharf_retl_rw_${suffix}` };

let controlUrl: string;
let warehouseUrl: string;
let warehouse: string;
let port: number;
let env: Record<string, string>;
let receiver: Receiver;
const outputs: CliResult[] = [];

/** `wharf` with the test's settings; every output is kept to check that no secret ever shows. */
async function run(args: readonly string[], input?: string): Promise<CliResult> {
  const r = await wharf(args, env, input);
  outputs.push(r);
  return r;
}

function sourceUrl(user: string, password?: string, options = 'sslmode=disable'): string {
  const auth = password === undefined ? user : `${user}:${encodeURIComponent(password)}`;
  return `postgres://${auth}@127.0.0.1:${port}/${warehouse}${options ? `?${options}` : ''}`;
}

function deliverTo(path = '/v1/batch'): string {
  const u = new URL(receiver.url);
  u.username = WRITE_KEY;
  u.pathname = path;
  return u.href;
}

const control = <T = Record<string, unknown>>(sql: string, values: unknown[] = []) =>
  query<T>(controlUrl, sql, values);
const count = async (table: string) =>
  Number((await control<{ n: string }>(`select count(*)::text as n from wharf.${table}`))[0]!.n);

beforeAll(async () => {
  port = Number(new URL(serverUrl()).port);
  controlUrl = await createDatabase('wharf_retl_cli_control');
  warehouseUrl = await createDatabase('wharf_retl_cli_wh');
  warehouse = new URL(warehouseUrl).pathname.slice(1);
  receiver = await startReceiver();
  await query(
    warehouseUrl,
    `create table users (id bigint primary key, email text, plan text, last_updated bigint not null);
     insert into users select i, 'user' || i || '@example.com', case when i % 2 = 0 then 'pro' else 'free' end, 1000 + i
       from generate_series(1, 50) i;
     insert into users values (51, null, 'free', 2000);`,
  );
  for (const role of Object.values(roles)) {
    await query(serverUrl(), `create role ${quotePg(role)} login password ${literalPg(PASSWORD)}`);
    await query(warehouseUrl, `grant select on users to ${quotePg(role)}`);
  }
  await query(warehouseUrl, `grant insert, update on users to ${quotePg(roles.rw)}`);
  env = {
    WHARF_SOURCE_URL: controlUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-retl-cli-staging-')}`,
    WHARF_SPOOL_DIR: tempDir('wharf-retl-cli-spool-'),
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_LOG_LEVEL: 'debug',
  };
});

afterAll(async () => {
  await receiver?.close();
  await query(serverUrl(), `drop database if exists ${quotePg(warehouse)} with (force)`).catch(() => {});
  for (const role of Object.values(roles)) {
    await query(serverUrl(), `drop role if exists ${quotePg(role)}`).catch(() => {});
  }
});

let sourceId: string;
let syncId: string;
const QUERY =
  'SELECT id AS userId, email, plan FROM users WHERE last_updated >= {{last_sync_time}} ORDER BY id';

describe('wharf retl sources', () => {
  it('add: runs the checks in order and stores a read-only source; --json prints its id', async () => {
    const r = await run(
      [
        'retl',
        'sources',
        'add',
        '--account',
        '42',
        '--engine',
        'postgres',
        '--url',
        sourceUrl(roles.ro),
        '--password-stdin',
        '--json',
      ],
      `${PASSWORD}\n`,
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { id: string; warnings: string[] };
    expect(out.id).toMatch(/^\d+$/);
    expect(out.warnings).toEqual([]);
    sourceId = out.id;
    const human = await run([
      'retl',
      'sources',
      'add',
      '--account',
      '42',
      '--engine',
      'postgres',
      '--url',
      sourceUrl(roles.ro, PASSWORD),
    ]);
    expect(human.code, human.stderr).toBe(0);
    expect(
      human.stdout
        .split('\n')
        .filter((l) => l.startsWith('  ok'))
        .map((l) => l.split(/\s+/)[2]),
    ).toEqual(['reach', 'authenticate', 'select']);
  });

  it('add: a user that can write is a warning, not a failure', async () => {
    const r = await run([
      'retl',
      'sources',
      'add',
      '--account',
      '43',
      '--engine',
      'postgres',
      '--url',
      sourceUrl(roles.rw, PASSWORD),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { id: string; warnings: string[] };
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]).toMatch(
      new RegExp(
        `^user ${roles.rw} can write: it may change 1 table\\(s\\) \\("public"\\."users"\\); give Wharf a read-only user`,
      ),
    );
    expect(r.stderr).toContain(`wharf: warning: user ${roles.rw} can write`);
    const human = await run(['retl', 'sources', 'test', out.id]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^ {2}warn {2}user .* can write/m);
  });

  it('add: a wrong password is one line and exit 1; nothing is stored', async () => {
    const before = await count('retl_sources');
    const r = await run(
      [
        'retl',
        'sources',
        'add',
        '--account',
        '42',
        '--engine',
        'postgres',
        '--url',
        sourceUrl(roles.ro),
        '--password-stdin',
      ],
      'not-the-password\n',
    );
    expect(r.code).toBe(1);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('wharf:'));
    expect(lines).toEqual([
      expect.stringMatching(
        /^wharf: error: source check "authenticate" failed for 127\.0\.0\.1:\d+\/\S+: authentication failed for user wharf_retl_ro_/,
      ),
    ]);
    expect(await count('retl_sources')).toBe(before);
  });

  it('add: TLS is verified by default (verify-full); a plain connection must be asked for by name', async () => {
    const before = await count('retl_sources');
    const r = await run([
      'retl',
      'sources',
      'add',
      '--account',
      '42',
      '--engine',
      'postgres',
      '--url',
      sourceUrl(roles.ro, PASSWORD, ''),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/source check "tls" failed .*sslmode=verify-full requires it/);
    expect(await count('retl_sources')).toBe(before);
    const shown = await run(['retl', 'sources', 'show', sourceId, '--json']);
    expect(JSON.parse(shown.stdout).url).toContain('sslmode=disable');
  });

  it('add: a bad argument exits 2 and stores nothing', async () => {
    const before = await count('retl_sources');
    for (const args of [
      ['--engine', 'mssql', '--url', sourceUrl(roles.ro, PASSWORD)],
      ['--engine', 'postgres', '--url', sourceUrl(roles.ro, PASSWORD, 'sslmode=sometimes')],
      ['--engine', 'postgres', '--url', 'not a url'],
      ['--engine', 'oracle', '--url', sourceUrl(roles.ro, PASSWORD)],
    ]) {
      const r = await run(['retl', 'sources', 'add', '--account', '42', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('wharf:')),
      ).toHaveLength(1);
    }
    expect(await count('retl_sources')).toBe(before);
  });

  it('list and show never print the password', async () => {
    const list = await run(['retl', 'sources', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const sources = JSON.parse(list.stdout) as { id: string; url: string; secretVersion: number }[];
    expect(sources.find((s) => s.id === sourceId)).toMatchObject({
      secretVersion: 1,
      url: sourceUrl(roles.ro),
    });
  });
});

describe('wharf retl syncs', () => {
  it('add, list, show, disable and enable', async () => {
    const queryFile = join(tempDir('wharf-retl-cli-query-'), 'users.sql');
    writeFileSync(queryFile, QUERY);
    const r = await run([
      'retl',
      'syncs',
      'add',
      '--source',
      sourceId,
      '--name',
      'users',
      '--description',
      'users to the platform',
      '--type',
      'identify',
      '--query-file',
      queryFile,
      '--every',
      '5m',
      '--deliver-to',
      deliverTo(),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    syncId = (JSON.parse(r.stdout) as { id: string }).id;
    expect(syncId).toMatch(/^\d+$/);

    const list = await run(['retl', 'syncs', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({
        id: syncId,
        source: sourceId,
        name: 'users',
        type: 'identify',
        every: '5m',
        deliverTo: receiver.url,
        state: 'active',
      }),
    ]);
    const show = await run(['retl', 'syncs', 'show', syncId]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`query: ${QUERY}`);
    expect(show.stdout).toContain('runs: none yet');

    const disabled = await run(['retl', 'syncs', 'disable', syncId, '--json']);
    expect(JSON.parse(disabled.stdout).state).toBe('disabled');
    const refused = await run(['retl', 'run', syncId]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      `sync ${syncId} is disabled; enable it first: wharf retl syncs enable ${syncId}`,
    );
    const enabled = await run(['retl', 'syncs', 'enable', syncId]);
    expect(enabled.stdout.trim()).toBe(`sync ${syncId} active`);
    for (const args of [
      ['syncs', 'show', '999999'],
      ['run', '999999'],
      ['syncs', 'show', 'x'],
    ]) {
      const unknown = await run(['retl', ...args]);
      expect(unknown.code, unknown.stderr).toBe(2);
    }
  });

  it('add: a bad argument exits 2 and stores nothing', async () => {
    const before = await count('retl_syncs');
    const base = ['retl', 'syncs', 'add', '--type', 'identify'];
    const to = ['--source', sourceId, '--deliver-to', deliverTo()];
    for (const [args, message] of [
      [
        [...to, '--name', 'a', '--query', QUERY, '--every', '30s'],
        /invalid --every 30s: a sync runs at most once a minute/,
      ],
      [
        [...to, '--name', 'b', '--query', "select id as userId from users where note = '{{last_sync_time}}'"],
        /inside a string literal at line 1, column 46/,
      ],
      [[...to, '--name', 'c'], /give the query with --query SQL or --query-file FILE/],
      [[...to, '--name', 'users', '--query', QUERY], /already has a sync named "users"/],
      [[...to, '--name', 'd', '--query', QUERY, '--start-at', 'yesterday'], /invalid --start-at/],
      [['--source', sourceId, '--name', 'e', '--query', QUERY, '--deliver-to', 'ftp://k@h/p'], /scheme ftp:/],
      [
        ['--source', '999999', '--deliver-to', deliverTo(), '--name', 'f', '--query', QUERY],
        /there is no reverse-ETL source 999999/,
      ],
    ] as const) {
      const r = await run([...base, ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      const lines = r.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('wharf:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(message);
    }
    expect(await count('retl_syncs')).toBe(before);
  });
});

describe('wharf retl preview', () => {
  it('prints the SQL, the value bound, the rows, the calls and the rejections; sends and records nothing', async () => {
    receiver.requests.length = 0;
    const runs = await count('runs');
    const r = await run(['retl', 'preview', syncId, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p.sql).toBe(QUERY.replace('{{last_sync_time}}', '$1'));
    expect(p.parameter).toEqual({ type: 'bigint', kind: 'seconds', value: '0' });
    expect(p.rows).toHaveLength(51);
    expect(p.rows[0]).toEqual({ userid: 1, email: 'user1@example.com', plan: 'free' });
    expect(p.calls).toHaveLength(51);
    expect(p.calls[0]).toMatchObject({
      type: 'identify',
      userId: '1',
      traits: { email: 'user1@example.com', plan: 'free' },
    });
    expect(p.calls[0].messageId).toMatch(/^wharf-[0-9a-f]{64}$/);
    expect(p.rejected).toEqual([]);

    const adHoc = await run([
      'retl',
      'preview',
      '--source',
      sourceId,
      '--type',
      'track',
      '--limit',
      '3',
      '--query',
      'select id as userId, email as event from users where id > 48 and last_updated >= {{last_sync_time}} order by id',
    ]);
    expect(adHoc.code, adHoc.stderr).toBe(0);
    expect(adHoc.stdout).toContain(
      'SQL as sent:\n  select id as userId, email as event from users where id > 48 and last_updated >= $1 order by id',
    );
    expect(adHoc.stdout).toContain(
      'parameter: bigint (seconds) = 0, for last_sync_time 1970-01-01T00:00:00.000000Z',
    );
    expect(adHoc.stdout).toContain('rows (3):\n  {"userid":49,"event":"user49@example.com"}');
    expect(adHoc.stdout).toMatch(
      /calls \(2\), .*\n {2}\{"messageId":"wharf-[0-9a-f]{64}","type":"track","userId":"49","event":"user49@example\.com","properties":\{\}\}/,
    );
    expect(adHoc.stdout).toContain('rejected (1):\n  row 3: no event');
    expect(receiver.requests).toHaveLength(0);
    expect(await count('runs')).toBe(runs);
  });
});

describe('wharf retl run', () => {
  it('delivers every row once, then only the rows changed since the first run started', async () => {
    receiver.requests.length = 0;
    const r = await run(['retl', 'run', syncId, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [outcome] = (JSON.parse(r.stdout) as { syncs: Record<string, unknown>[] }).syncs;
    expect(outcome).toMatchObject({
      sync: syncId,
      status: 'ok',
      rows: 51,
      calls: 51,
      rejected: 0,
      batches: 1,
    });
    const calls = receiver.delivered();
    expect(calls.map((c) => c.userId)).toEqual(Array.from({ length: 51 }, (_, i) => String(i + 1)));
    expect(receiver.requests[0]!.authorization).toBe(
      `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`,
    );

    // changed after the first run started (whole seconds, on the warehouse clock); the next run starts a
    // second later, so that it does not read them again
    await query(
      warehouseUrl,
      `update users set plan = 'team', last_updated = extract(epoch from now())::bigint where id in (7, 8)`,
    );
    await sleep(1100);
    receiver.requests.length = 0;
    const second = await run(['retl', 'run', syncId]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(new RegExp(`^sync ${syncId}: run \\d+: 2 rows, 2 calls, 1 batches sent`));
    expect(receiver.delivered().map((c) => [c.userId, (c.traits as { plan: string }).plan])).toEqual([
      ['7', 'team'],
      ['8', 'team'],
    ]);

    const runs = await control<{ kind: string; status: string; rows: string; calls: string }>(
      'select kind, status, rows::text, calls::text from wharf.runs where sync_id = $1 order by id',
      [syncId],
    );
    expect(runs).toEqual([
      { kind: 'sync', status: 'ok', rows: '51', calls: '51' },
      { kind: 'sync', status: 'ok', rows: '2', calls: '2' },
    ]);
  });

  it('a run overlapping a slow one is skipped (exit 3) and recorded', async () => {
    // a row changed after the last run started, on the warehouse's clock
    await query(
      warehouseUrl,
      'update users set last_updated = extract(epoch from now())::bigint where id = 9',
    );
    await sleep(1100);
    receiver.requests.length = 0;
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => {
      receiver.respond(async () => {
        await new Promise<void>((r) => {
          release = r;
          resolve();
        });
        return undefined;
      });
    });
    const slow = new Promise<CliResult>((resolve, reject) => {
      const child = spawn(process.execPath, ['bin/wharf.js', 'retl', 'run', syncId], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    await held;
    const skipped = await run(['retl', 'run', syncId]);
    release!();
    receiver.respond(undefined);
    const first = await slow;
    outputs.push(first);
    expect(first.code, first.stderr).toBe(0);
    expect(skipped.code).toBe(3);
    expect(skipped.stdout.trim()).toBe(`sync ${syncId}: skipped (another run of it holds its lock)`);
    expect(skipped.stderr).toContain(
      `wharf: skipped: sync ${syncId} was not run: another run of it holds its lock`,
    );
    const last = await control<{ status: string }>(
      'select status from wharf.runs where sync_id = $1 order by id desc limit 2',
      [syncId],
    );
    expect(last.map((x) => x.status).sort()).toEqual(['ok', 'skipped']);
  });

  it('replay delivers a staged run again with the same messageIds', async () => {
    const runs = await control<{ run_id: string }>(
      'select run_id::text from wharf.retl_runs where sync_id = $1 order by run_id limit 1',
      [syncId],
    );
    receiver.requests.length = 0;
    const r = await run(['retl', 'replay', syncId, '--run', runs[0]!.run_id, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ calls: 51, batches: 1 });
    expect(receiver.delivered()).toHaveLength(51);
    const missing = await run(['retl', 'replay', syncId, '--run', '999999']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`sync ${syncId} has no staged run 999999`);
  });

  it('a receiver that refuses the calls parks the sync (state failing); status shows it; enable makes it active', async () => {
    const add = await run([
      'retl',
      'syncs',
      'add',
      '--source',
      sourceId,
      '--name',
      'refused',
      '--type',
      'identify',
      '--query',
      QUERY,
      '--deliver-to',
      deliverTo('/refuse'),
      '--json',
    ]);
    const refusedId = (JSON.parse(add.stdout) as { id: string }).id;
    receiver.respond((_n, req, res) => {
      res
        .writeHead(400, { 'content-type': 'application/json' })
        .end(JSON.stringify({ message: `bad key ${WRITE_KEY}` }));
      void req;
      return undefined;
    });
    const failed = await run(['retl', 'run', refusedId]);
    receiver.respond(undefined);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      new RegExp(
        `wharf: error: the receiver at http://127\\.0\\.0\\.1:\\d+/refuse refused batch 0 with HTTP 400: bad key \\*{8} \\(sync ${refusedId}, key retl/`,
      ),
    );

    const status = await run(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const syncs = (JSON.parse(status.stdout) as { syncs: Record<string, unknown>[] }).syncs;
    expect(syncs.find((s) => s.id === refusedId)).toMatchObject({
      state: 'failing',
      stateReason: expect.stringContaining('HTTP 400'),
      lastRunStatus: 'failed',
      failuresToday: 1,
      lastError: expect.stringContaining('refused batch 0'),
    });
    expect(syncs.find((s) => s.id === syncId)).toMatchObject({
      state: 'active',
      lastRunStatus: 'ok',
      rowsToday: 54,
      callsToday: 54,
      rejectedToday: 0,
      skipsToday: 1,
      failuresToday: 0,
    });
    const human = await run(['status']);
    expect(human.stdout).toMatch(
      new RegExp(
        `^reverse ETL:\\n {2}sync ${syncId} \\(users, identify, source ${sourceId}\\): active; last run \\S+ \\(ok\\), last_sync_time \\S+; today: 54 rows, 54 calls, 0 rejected in 3 run\\(s\\), 1 skip\\(s\\), 0 failure\\(s\\)`,
        'm',
      ),
    );

    // every active sync: the parked one is named, and the exit code says something was not done
    const all = await run(['retl', 'run']);
    expect(all.code).toBe(1);
    expect(all.stdout).toContain(`sync ${refusedId}: not run: parked (state failing)`);
    expect(all.stdout).toMatch(new RegExp(`sync ${syncId}: run \\d+: 0 rows`));
    const enabled = await run(['retl', 'syncs', 'enable', refusedId, '--json']);
    expect(JSON.parse(enabled.stdout)).toMatchObject({ state: 'active', stateReason: null });
    await run(['retl', 'syncs', 'disable', refusedId]);
  });

  it('never printed a secret: not in --json outputs, show, errors or logs', () => {
    expect(outputs.length).toBeGreaterThan(20);
    for (const r of outputs) {
      for (const text of [r.stdout, r.stderr]) {
        for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), WRITE_KEY, 'Canary-']) {
          expect(text).not.toContain(secret);
        }
      }
    }
  });
});
