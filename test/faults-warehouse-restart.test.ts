import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedServer, startEmbeddedPostgres } from '../core/embedded-postgres.js';
import { initSource } from '../source/source-schema.js';
import { wharf } from './helpers/cli.js';
import { errorLines, session, startWharf, type WharfProcess, waitFor } from './helpers/daemon.js';
import { createDatabase, query } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { compareWithSource } from './helpers/load-harness.js';
import { sleep, tempDir } from './helpers/wharf.js';

/**
 * The warehouse goes away under `wharf run`, on a server of its own: its backend killed during a MERGE (the
 * postmaster restarts every session: the client sees "Connection terminated unexpectedly", with no SQLSTATE),
 * and the server stopped during a COPY, then started again. Both are transient: the connector is never
 * parked and catches up alone.
 */
let sourceUrl: string;
let source: pg.Pool;
let warehouse: EmbeddedServer;
let dataDir: string;
let warehouseUrl: string;
let env: Record<string, string>;
const daemons: WharfProcess[] = [];

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_whrestart_src');
  source = new pg.Pool({ connectionString: sourceUrl, max: 3 });
  source.on('error', () => {});
  const c = await source.connect();
  await initSource(c, {});
  c.release();
  for (const a of [1, 2]) await insertAccount(source, a);
  dataDir = join(tempDir('wharf-whrestart-'), 'data');
  warehouse = await startEmbeddedPostgres({ dataDir, port: 0, persistent: true });
  warehouseUrl = warehouse.url;
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-whrestart-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1s',
    WHARF_SETTLE: '0s',
    WHARF_HOME: tempDir('wharf-whrestart-home-'),
    // the statement the test interrupts waits for a lock the test holds: no timeout may end it first
    WHARF_LOCK_TIMEOUT: '30m',
  };
});

afterAll(async () => {
  for (const d of daemons) if (d.running()) d.child.kill('SIGKILL');
  await source.end();
  await warehouse.stop().catch(() => {});
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

/** The pid of a Wharf session on the warehouse running `statement` (a prefix) that waits as `wait` says. */
function waitingSession(statement: string, wait: string): Promise<number> {
  return waitFor(async () => {
    const rows = await query<{ pid: number }>(
      warehouseUrl,
      `select pid from pg_stat_activity
        where application_name like 'wharf%' and query ilike $1 and (wait_event_type = $2 or wait_event = $2)`,
      [`${statement}%`, wait],
    );
    return rows[0]?.pid;
  });
}

async function equalToSource(account: number, schema: string): Promise<boolean> {
  const cmp = await compareWithSource(source, { warehouseUrl, schema, account, connectorId: 'x' });
  return Object.values(cmp).every((v) => JSON.stringify(v.source) === JSON.stringify(v.warehouse));
}

async function runs(connectorId: string): Promise<{ status: string; error: string | null }[]> {
  return query(
    sourceUrl,
    `select status, error from wharf.runs where kind = 'load' and connector_id = $1 order by id`,
    [connectorId],
  );
}

async function state(connectorId: string): Promise<string> {
  const rows = await query<{ state: string }>(sourceUrl, 'select state from wharf.connectors where id = $1', [
    connectorId,
  ]);
  return rows[0]!.state;
}

describe('the warehouse restarting under `wharf run`', () => {
  it('during a MERGE (its session killed, the server restarts every session): retried, never parked, caught up alone', {
    timeout: 240_000,
  }, async () => {
    await insertClicks(source, 1, 30, 'first');
    const id = await addConnector(1, 'merge_case');
    // a first load, so that the next one merges into a table that has rows
    await sleep(1100);
    const first = await wharf(['sync'], env);
    expect(first.code, first.stderr).toBe(0);
    await insertClicks(source, 1, 25, 'second');

    // the MERGE waits for the test's lock: a point inside the MERGE statement, chosen
    const holder = await session(warehouseUrl, 'holder');
    await holder.query('begin');
    await holder.query('lock table merge_case.clicks in share mode');
    const daemon = startWharf(['run', '--every', '1s'], env);
    daemons.push(daemon);
    const pid = await waitingSession('merge into', 'Lock');
    process.kill(pid, 'SIGKILL');
    await holder.end().catch(() => {});

    await waitFor(() => equalToSource(1, 'merge_case'), 500);
    const history = await runs(id);
    const lost = history.filter((r) => r.status === 'failed');
    expect(lost.length).toBeGreaterThan(0);
    console.info(`MERGE interrupted, as recorded: ${lost.map((r) => r.error).join(' | ')}`);
    for (const r of lost)
      expect(r.error).toMatch(/lost the connection to the warehouse database|starting up|recovery/);
    expect(history.at(-1)?.status).toBe('ok');
    expect(await state(id)).toBe('active');
    expect(daemon.running()).toBe(true);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited, daemon.stderr()).toBe(0);
    expect(errorLines(daemon.stderr())).toEqual([]);
  });

  it('during a COPY (the server stopped, then started again): retried, never parked, caught up alone', {
    timeout: 240_000,
  }, async () => {
    // one window of 50,500 rows into an empty table: COPY goes straight into the target, where a trigger of the
    // test holds the first row until the test lets it go
    await insertClicks(source, 2, 50_500);
    const id = await addConnector(2, 'copy_case');
    await query(
      warehouseUrl,
      `create function copy_case.hold() returns trigger language plpgsql as $$ begin perform pg_advisory_xact_lock_shared(4242); return new; end $$;
       create trigger hold before insert on copy_case.clicks for each row execute function copy_case.hold()`,
    );
    const holder = await session(warehouseUrl, 'holder');
    await holder.query('select pg_advisory_lock(4242)');
    const daemon = startWharf(['run', '--every', '1s'], env);
    daemons.push(daemon);
    await waitingSession('copy', 'advisory');

    await warehouse.stop();
    await holder.end().catch(() => {});
    // the daemon fails the load (and retries it) while the server is down
    await waitFor(async () => (await runs(id)).some((r) => r.status === 'failed'));
    expect(daemon.running()).toBe(true);
    warehouse = await startEmbeddedPostgres({ dataDir, port: warehouse.port, persistent: true });

    await waitFor(() => equalToSource(2, 'copy_case'), 500);
    const history = await runs(id);
    console.info(
      `COPY interrupted, as recorded: ${history
        .filter((x) => x.status === 'failed')
        .map((r) => r.error)
        .join(' | ')}`,
    );
    for (const r of history.filter((x) => x.status === 'failed')) {
      expect(r.error).toMatch(
        /lost the connection to the warehouse database|cannot connect to the warehouse/,
      );
    }
    expect(history.at(-1)?.status).toBe('ok');
    expect(await state(id)).toBe('active');
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited, daemon.stderr()).toBe(0);
    expect(errorLines(daemon.stderr())).toEqual([]);
  });
});
