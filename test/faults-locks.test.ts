import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initSource } from '../source/source-schema.js';
import { wharf } from './helpers/cli.js';
import { errorLines, session, startWharf, type WharfProcess, waitFor } from './helpers/daemon.js';
import { createDatabase, query } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { compareWithSource } from './helpers/load-harness.js';
import { tempDir } from './helpers/wharf.js';

/**
 * Warehouse locks under `wharf run`: an analyst's open transaction during a first load (the empty-table fast
 * path takes ACCESS EXCLUSIVE locks), and SIGTERM while a load waits for a lock or runs.
 */
let sourceUrl: string;
let warehouseUrl: string;
let source: pg.Pool;
let env: Record<string, string>;
const daemons: WharfProcess[] = [];

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_locks_src');
  warehouseUrl = await createDatabase('wharf_locks_wh');
  source = new pg.Pool({ connectionString: sourceUrl, max: 3 });
  source.on('error', () => {});
  const c = await source.connect();
  await initSource(c, {});
  c.release();
  for (const a of [1, 2, 3]) await insertAccount(source, a);
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-locks-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1s',
    WHARF_SETTLE: '0s',
    WHARF_HOME: tempDir('wharf-locks-home-'),
  };
});

afterAll(async () => {
  for (const d of daemons) if (d.running()) d.child.kill('SIGKILL');
  await source.end();
});

async function addConnector(account: number, schema: string): Promise<string> {
  const r = await wharf(
    [
      'connectors',
      'add',
      '--account',
      String(account),
      '--engine',
      'postgres',
      '--url',
      `${warehouseUrl}?sslmode=disable`,
      '--schema',
      schema,
      '--json',
    ],
    env,
  );
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { id: string }).id;
}

function run(extra: Record<string, string>): WharfProcess {
  const d = startWharf(['run', '--every', '1s'], { ...env, ...extra });
  daemons.push(d);
  return d;
}

/** A Wharf session on the warehouse that waits for a lock (the load), other than `except`. */
async function waitingLoad(except: number, wait = 'Lock'): Promise<number> {
  return waitFor(async () => {
    const rows = await query<{ pid: number }>(
      warehouseUrl,
      `select pid from pg_stat_activity
        where datname = current_database() and application_name like 'wharf%' and pid <> $1
          and (wait_event_type = $2 or wait_event = $2)`,
      [except, wait],
    );
    return rows[0]?.pid;
  });
}

async function wharfSessions(): Promise<number> {
  const rows = await query<{ n: string }>(
    warehouseUrl,
    `select count(*) as n from pg_stat_activity where datname = current_database() and application_name like 'wharf%'`,
  );
  return Number(rows[0]!.n);
}

async function lastRun(connectorId: string): Promise<{ status: string; error: string | null } | undefined> {
  const rows = await query<{ status: string; error: string | null }>(
    sourceUrl,
    `select status, error from wharf.runs where kind = 'load' and connector_id = $1 order by id desc limit 1`,
    [connectorId],
  );
  return rows[0];
}

async function state(connectorId: string): Promise<string> {
  const rows = await query<{ state: string }>(sourceUrl, 'select state from wharf.connectors where id = $1', [
    connectorId,
  ]);
  return rows[0]!.state;
}

async function equalToSource(account: number, schema: string): Promise<boolean> {
  const cmp = await compareWithSource(source, { warehouseUrl, schema, account, connectorId: 'x' });
  return Object.values(cmp).every((v) => JSON.stringify(v.source) === JSON.stringify(v.warehouse));
}

describe('an analyst holding a lock during a first load', () => {
  it('times the load out (lock_timeout), names the analyst in the status, lets readers through, and loads once the analyst is done', {
    timeout: 300_000,
  }, async () => {
    // 50,500 clicks in one window into empty tables: the fast path, which takes ACCESS EXCLUSIVE locks
    await insertClicks(source, 1, 50_500);
    const id = await addConnector(1, 'lock_case');
    const analyst = await session(warehouseUrl, 'analyst');
    const analystPid = (await analyst.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    await analyst.query('begin');
    await analyst.query('select count(*) from lock_case.clicks');

    const daemon = run({ WHARF_LOCK_TIMEOUT: '2s' });
    await waitingLoad(analystPid);
    // a reader that comes now queues behind the load's lock request; the lock timeout lets it through while the
    // analyst's transaction is still open (it never waits for the analyst)
    const reader = await session(warehouseUrl, 'reader');
    const counted = await reader.query<{ n: string }>('select count(*) as n from lock_case.clicks');
    expect(counted.rows[0]!.n).toBe('0');
    await reader.end();
    const analystState = await query<{ state: string }>(
      warehouseUrl,
      'select state from pg_stat_activity where pid = $1',
      [analystPid],
    );
    expect(analystState[0]!.state).toBe('idle in transaction');

    // the timeout is a transient failure: recorded with who held the lock, and retried
    const failed = await waitFor(async () => {
      const r = await lastRun(id);
      return r?.status === 'failed' ? r : undefined;
    });
    console.info(`the lock timeout as the run history records it: ${failed.error}`);
    expect(failed.error).toContain('gave up (lock_timeout)');
    expect(failed.error).toContain(`pid ${analystPid}`);
    expect(failed.error).toContain('"select count(*) from lock_case.clicks"');
    const status = await wharf(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    const mine = (
      JSON.parse(status.stdout) as { connectors: { id: string; state: string; lastError: string }[] }
    ).connectors.find((c) => c.id === id)!;
    expect(mine.state).toBe('active');
    expect(mine.lastError).toContain(`pid ${analystPid}`);

    await analyst.query('commit');
    await analyst.end();
    await waitFor(() => equalToSource(1, 'lock_case'), 500);
    expect(await state(id)).toBe('active');
    expect((await lastRun(id))?.status).toBe('ok');
    expect(daemon.running()).toBe(true);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited, daemon.stderr()).toBe(0);
    expect(errorLines(daemon.stderr())).toEqual([]);
  });
});

describe('SIGTERM to `wharf run`', () => {
  it('ends a load that waits for a lock at once: rolled back, its session gone, the lock holder untouched', {
    timeout: 180_000,
  }, async () => {
    await insertClicks(source, 2, 20);
    const id = await addConnector(2, 'stop_wait');
    const holder = await session(warehouseUrl, 'holder');
    const holderPid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    await holder.query('begin');
    await holder.query('lock table stop_wait.clicks in access exclusive mode');

    // a lock timeout far longer than the test: only the stop can end the wait
    const daemon = run({ WHARF_LOCK_TIMEOUT: '30m' });
    await waitingLoad(holderPid);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited, daemon.stderr()).toBe(0);
    // the holder still holds its lock: the wait was ended by the stop, not by the holder
    expect((await holder.query<{ n: string }>('select count(*) as n from stop_wait.clicks')).rows[0]!.n).toBe(
      '0',
    );
    await waitFor(async () => (await wharfSessions()) === 0);
    const r = await lastRun(id);
    expect(r?.status).toBe('failed');
    expect(r?.error).toContain('load stopped before commit');
    await holder.query('rollback');
    await holder.end();
    expect(await state(id)).toBe('active');
  });

  it('ends a load that runs past the stop grace period (a statement that would run for ten minutes)', {
    timeout: 180_000,
  }, async () => {
    await insertClicks(source, 3, 20);
    const id = await addConnector(3, 'stop_run');
    await query(
      warehouseUrl,
      `create function stop_run.slow() returns trigger language plpgsql as $$ begin perform pg_sleep(600); return new; end $$;
       create trigger slow before insert on stop_run.clicks for each row execute function stop_run.slow()`,
    );
    const daemon = run({ WHARF_STOP_GRACE: '1s' });
    await waitingLoad(0, 'PgSleep');
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited, daemon.stderr()).toBe(0);
    await waitFor(async () => (await wharfSessions()) === 0);
    const rows = await query<{ n: string }>(warehouseUrl, 'select count(*) as n from stop_run.clicks');
    expect(rows[0]!.n).toBe('0');
    expect((await lastRun(id))?.error).toContain('load stopped before commit');
    // not parked: once the slow trigger is gone, a one-shot load completes
    await query(warehouseUrl, 'drop trigger slow on stop_run.clicks');
    expect(await state(id)).toBe('active');
    const load = await wharf(['load', '--connector', id], env);
    expect(load.code, load.stderr).toBe(0);
    expect(await equalToSource(3, 'stop_run')).toBe(true);
  });
});
