import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectionUrl } from '../connectors/connection-url.js';
import type { ConnectorStore } from '../connectors/connector-store.js';
import { quotePg } from '../db/postgres/quote.js';
import { connectorLockKey as loadLockKey } from '../pipeline/connector-job.js';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { delayToNextTick, Scheduler, settledPhaseMs, type TickReport } from '../scheduler/scheduler.js';
import { initSource } from '../source/source-schema.js';
import { wharf } from './helpers/cli.js';
import { createDatabase, query, serverUrl } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { compareWithSource, type Target } from './helpers/load-harness.js';
import { sleep, tempDir } from './helpers/wharf.js';

const ACCOUNTS = [1, 2, 3];
const role = `wharf_sched_${randomBytes(4).toString('hex')}`;
const rolePassword = `pw-${randomBytes(8).toString('hex')}`;

let sourceUrl: string;
let stagingDir: string;
let source: pg.Pool;
let ctx: Runtime;
let store: ConnectorStore;
let scheduler: Scheduler;
/** Account → connector id and its warehouse. */
const targets = new Map<number, Target & { id: string; url: string }>();

function dbName(url: string): string {
  return new URL(url).pathname.slice(1);
}

/** The same database as the administrator of the test server. */
function adminUrl(url: string): string {
  const u = new URL(url);
  const admin = new URL(serverUrl());
  u.username = admin.username;
  u.password = admin.password;
  return u.toString();
}

/** Inserts clicks for every account, then waits until the database clock has closed their windows (1 s, settle 0). */
async function addTraffic(n: number): Promise<void> {
  for (const a of ACCOUNTS) await insertClicks(source, a, n);
  const t = (await source.query<{ t: Date }>('select now() as t')).rows[0]!.t.getTime();
  for (;;) {
    const now = (await source.query<{ t: Date }>('select clock_timestamp() as t')).rows[0]!.t.getTime();
    if (now >= t + 1100) return;
    await sleep(100);
  }
}

function outcome(report: TickReport, account: number) {
  const id = targets.get(account)!.id;
  return report.connectors.find((c) => c.connector === id);
}

async function expectEqualToSource(account: number): Promise<void> {
  const cmp = await compareWithSource(source, targets.get(account)!);
  for (const [stream, v] of Object.entries(cmp))
    expect(v.warehouse, `account ${account} ${stream}`).toEqual(v.source);
}

async function runs(connectorId: string) {
  return query<{ status: string; windows: number; rows: string; error: string | null }>(
    sourceUrl,
    'select status, windows, rows, error from wharf.runs where connector_id = $1 and kind = $2 order by id',
    [connectorId, 'load'],
  );
}

beforeAll(async () => {
  process.env.WHARF_MASTER_KEY ??= randomBytes(32).toString('base64');
  process.env.WHARF_LOG_LEVEL = 'silent';
  // commands run in this process spool under it, not in the working directory
  process.env.WHARF_HOME = tempDir('wharf-sched-home-');
  sourceUrl = await createDatabase('wharf_sched_src');
  stagingDir = tempDir('wharf-sched-staging-');
  source = new pg.Pool({ connectionString: sourceUrl, max: 4 });
  const c = await source.connect();
  await initSource(c, {});
  c.release();
  for (const a of ACCOUNTS) {
    await insertAccount(source, a);
    await insertClicks(source, a, 20 + a);
  }
  ctx = new Runtime(
    resolveSettings(
      {
        sourceUrl,
        stagingUrl: `file://${stagingDir}`,
        window: '1s',
        settle: '0s',
        spoolDir: join(stagingDir, '..', 'spool'),
      },
      {},
    ),
  );
  store = await ctx.connectors();
  await query(serverUrl(), `create role ${quotePg(role)} login password '${rolePassword}'`);
  for (const a of ACCOUNTS) {
    const whUrl = await createDatabase('wharf_sched_wh');
    let url = whUrl;
    if (a === 2) {
      // connector 2 loads as a role of its own: least privileges, so that the grant can be taken away
      await query(serverUrl(), `grant create on database ${quotePg(dbName(whUrl))} to ${quotePg(role)}`);
      const u = new URL(whUrl);
      u.username = role;
      u.password = rolePassword;
      url = u.toString();
    }
    const parsed = parseConnectionUrl(url);
    const connector = await store.add({
      account: a,
      settings: parsed.settings,
      ...(parsed.password ? { password: parsed.password } : {}),
      schema: 'tracking',
    });
    targets.set(a, {
      id: String(connector.id),
      url,
      warehouseUrl: url,
      schema: 'tracking',
      account: a,
      connectorId: String(connector.id),
    });
  }
  scheduler = new Scheduler(ctx, {
    everyMs: 1000,
    concurrency: 2,
    retry: { attempts: 2, baseMs: 10, maxMs: 50 },
  });
});

afterAll(async () => {
  await ctx?.close();
  await source?.end();
});

describe('Scheduler.tick', () => {
  it('exports closed windows, then loads every active connector', async () => {
    await addTraffic(5);
    const report = await scheduler.tick();
    expect(report.exportError).toBeNull();
    expect(report.export!.windows).toBeGreaterThan(0);
    expect(report.export!.rows).toBeGreaterThan(0);
    for (const a of ACCOUNTS) {
      expect(outcome(report, a)).toMatchObject({ status: 'ok' });
      expect(outcome(report, a)!.windows).toBeGreaterThan(0);
      await expectEqualToSource(a);
      const r = await runs(targets.get(a)!.id);
      expect(r.map((x) => x.status)).toEqual(['ok']);
      expect(Number(r[0]!.rows)).toBe(outcome(report, a)!.rows);
    }
    const text = await scheduler.metrics.text();
    expect(text).toMatch(new RegExp(`wharf_rows_loaded_total\\{connector="${targets.get(1)!.id}"\\} [1-9]`));
    expect(text).toMatch(/wharf_windows_exported_total [1-9]/);
    expect(text).toContain(`wharf_connector_lag_seconds{connector="${targets.get(3)!.id}"}`);
  });

  it('skips the export while another process exports, and leaves up-to-date connectors alone', async () => {
    const held = new pg.Client({ connectionString: sourceUrl });
    await held.connect();
    try {
      await held.query('select pg_advisory_lock(hashtext($1))', ['wharf.export.wharf.csv']);
      const report = await scheduler.tick();
      expect(report.export).toMatchObject({ skipped: true, windows: 0 });
      for (const a of ACCOUNTS) expect(outcome(report, a)).toMatchObject({ status: 'current', windows: 0 });
      for (const a of ACCOUNTS) expect((await runs(targets.get(a)!.id)).length).toBe(1);
    } finally {
      await held.end();
    }
  });

  it('skips a connector whose load lock another session holds, and counts the skip', async () => {
    await addTraffic(4);
    const held = new pg.Client({ connectionString: sourceUrl });
    await held.connect();
    const id3 = targets.get(3)!.id;
    try {
      const got = await held.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [
        loadLockKey('wharf', id3),
      ]);
      expect(got.rows[0]!.ok).toBe(true);
      const report = await scheduler.tick();
      expect(outcome(report, 3)).toMatchObject({ status: 'skipped', windows: 0 });
      expect(outcome(report, 1)).toMatchObject({ status: 'ok' });
      expect(outcome(report, 2)).toMatchObject({ status: 'ok' });
      expect((await runs(id3)).map((x) => x.status)).toEqual(['ok', 'skipped']);
      expect(await scheduler.metrics.text()).toContain(`wharf_load_skips_total{connector="${id3}"} 1`);
    } finally {
      await held.end();
    }
    // the lock is free again: the next tick catches up
    const next = await scheduler.tick();
    expect(outcome(next, 3)).toMatchObject({ status: 'ok' });
    for (const a of ACCOUNTS) await expectEqualToSource(a);
  });

  it('parks a connector whose warehouse role lost its grant, while the others load in the same tick', async () => {
    const t2 = targets.get(2)!;
    await query(serverUrl(), `revoke create on database ${quotePg(dbName(t2.url))} from ${quotePg(role)}`);
    // loads no longer migrate the schema every time, so the role loses what a load needs too
    await query(
      adminUrl(t2.url),
      `revoke insert, update on all tables in schema tracking from ${quotePg(role)}`,
    );
    await addTraffic(6);
    const report = await scheduler.tick();
    expect(outcome(report, 2)).toMatchObject({ status: 'parked' });
    const reason = outcome(report, 2)!.error!;
    expect(reason).toContain(`connector ${t2.id}`);
    expect(reason).not.toContain('\n');
    expect(outcome(report, 1)).toMatchObject({ status: 'ok' });
    expect(outcome(report, 3)).toMatchObject({ status: 'ok' });
    await expectEqualToSource(1);
    await expectEqualToSource(3);

    const parked = await store.get(t2.id);
    expect(parked.state).toBe('failing');
    expect(parked.stateReason).toBe(reason);
    const r = await runs(t2.id);
    expect(r.at(-1)).toMatchObject({ status: 'failed', error: reason });
    expect(await scheduler.metrics.text()).toContain(
      `wharf_load_failures_total{connector="${t2.id}",kind="terminal"} 1`,
    );

    // parked: later ticks do not try it
    await addTraffic(2);
    const later = await scheduler.tick();
    expect(outcome(later, 2)).toBeUndefined();
    expect(outcome(later, 1)).toMatchObject({ status: 'ok' });
    expect((await runs(t2.id)).length).toBe(r.length);
  });

  it('`wharf status` shows the last error, rows today and skips', () => {
    const out = spawnSync(process.execPath, ['bin/wharf.js', 'status', '--json'], {
      cwd: join(import.meta.dirname, '..'),
      env: { ...process.env, WHARF_SOURCE_URL: sourceUrl, WHARF_STAGING_URL: `file://${stagingDir}` },
      encoding: 'utf8',
    });
    expect(out.status, out.stderr).toBe(0);
    const status = JSON.parse(out.stdout) as {
      connectors: {
        id: string;
        state: string;
        lastError: string | null;
        rowsToday: number;
        skipsToday: number;
      }[];
    };
    const byId = new Map(status.connectors.map((c) => [c.id, c]));
    expect(byId.get(targets.get(2)!.id)).toMatchObject({ state: 'failing' });
    expect(byId.get(targets.get(2)!.id)!.lastError).toContain(`connector ${targets.get(2)!.id}`);
    expect(byId.get(targets.get(3)!.id)).toMatchObject({ skipsToday: 1, lastError: null });
    expect(byId.get(targets.get(1)!.id)!.rowsToday).toBeGreaterThan(0);
  });

  it('resumes a parked connector once `wharf connectors test` passes', async () => {
    const t2 = targets.get(2)!;
    // still without the grant: the test fails and the connector stays parked
    expect((await wharf(['connectors', 'test', t2.id, '--source-url', sourceUrl, '--json'])).code).toBe(1);
    expect((await store.get(t2.id)).state).toBe('failing');
    await query(serverUrl(), `grant create on database ${quotePg(dbName(t2.url))} to ${quotePg(role)}`);
    await query(
      adminUrl(t2.url),
      `grant insert, update on all tables in schema tracking to ${quotePg(role)}`,
    );
    expect((await wharf(['connectors', 'test', t2.id, '--source-url', sourceUrl, '--json'])).code).toBe(0);
    expect((await store.get(t2.id)).state).toBe('active');
    const report = await scheduler.tick();
    expect(outcome(report, 2)).toMatchObject({ status: 'ok' });
    expect(outcome(report, 2)!.windows).toBeGreaterThan(0);
    for (const a of ACCOUNTS) await expectEqualToSource(a);
  });
});

describe('wharf run --once', () => {
  const flags = () => [
    '--source-url',
    sourceUrl,
    '--staging-url',
    `file://${stagingDir}`,
    '--window',
    '1s',
    '--settle',
    '0s',
  ];

  it('runs one tick and exits 0 when every connector loads', async () => {
    await addTraffic(3);
    expect((await wharf(['run', '--once', '--json', ...flags()])).code).toBe(0);
    for (const a of ACCOUNTS) await expectEqualToSource(a);
  });

  it('refuses a concurrency below 1 as a usage error', async () => {
    expect((await wharf(['run', '--once', '--concurrency', '0', ...flags()])).code).toBe(2);
  });
});

describe('tick placement', () => {
  it('puts each tick just after a window has settled, never twice in one slot', () => {
    // 1-minute ticks and windows, 30 s settle: ticks at :31 of every minute (30 s + 1 s margin)
    const phase = settledPhaseMs(30_000, 60_000);
    expect(phase).toBe(31_000);
    const minute = Date.UTC(2026, 10, 23, 9, 20);
    expect(delayToNextTick(minute + 10_000, 60_000, phase)).toBe(21_000);
    expect(delayToNextTick(minute + 31_000, 60_000, phase)).toBe(60_000);
    expect(delayToNextTick(minute + 45_000, 60_000, phase)).toBe(46_000);
    // 1 s windows (as in the compressed lag bench): 0.5 s settle and a 50 ms margin
    expect(settledPhaseMs(500, 1000)).toBe(550);
    expect(delayToNextTick(minute + 100, 1000, 550)).toBe(450);
    expect(delayToNextTick(minute + 700, 1000, 550)).toBe(850);
    // a phase longer than the tick wraps around
    expect(delayToNextTick(minute, 60_000, 90_000)).toBe(30_000);
  });
});
