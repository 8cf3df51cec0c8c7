import { type AddressInfo, createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneLine, WharfError } from '../core/errors.js';
import { classifyError } from '../db/classify.js';
import { connectClient, isLost } from '../db/postgres/connection.js';
import { explainLockTimeout } from '../db/postgres/lock-timeout.js';
import { openPool } from '../db/postgres/pool.js';
import { session, waitFor } from './helpers/daemon.js';
import { createDatabase } from './helpers/databases.js';

let url: string;
let admin: pg.Client;

/** A TCP proxy to the test server: cutting its sockets is a connection lost without any message from the server. */
async function proxy(): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const target = new URL(url);
  const sockets: Socket[] = [];
  const server: Server = createServer((c) => {
    const s = netConnect(Number(target.port), target.hostname);
    for (const x of [c, s]) {
      x.on('error', () => {});
      sockets.push(x);
    }
    c.pipe(s);
    s.pipe(c);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const via = new URL(url);
  via.port = String((server.address() as AddressInfo).port);
  return {
    url: via.toString(),
    cut: () => {
      for (const x of sockets) x.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

beforeAll(async () => {
  url = await createDatabase('wharf_loss');
  admin = await session(url);
  await admin.query('create table t (id int primary key)');
});

afterAll(async () => {
  await admin.end();
});

describe('a connection lost under a query', () => {
  it('"Connection terminated unexpectedly" (no SQLSTATE) is a transient connection-loss error, on every later query too', async () => {
    const p = await proxy();
    try {
      const client = await connectClient(
        { connectionString: p.url, application_name: 'wharf-loss' },
        'warehouse',
      );
      const running = client.query('select pg_sleep(60)');
      await waitFor(async () => {
        const r = await admin.query(
          "select 1 from pg_stat_activity where application_name = 'wharf-loss' and query like 'select pg_sleep%'",
        );
        return r.rowCount === 1;
      });
      p.cut();
      const error = await running.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(WharfError);
      expect((error as WharfError).code).toBe('08006');
      expect(classifyError(error)).toBe('transient');
      expect(oneLine(error)).toMatch(
        /^lost the connection to the warehouse database \(Connection terminated unexpectedly\); the server restarted or the network failed/,
      );
      expect(isLost(client)).toBe(true);
      const next = await client.query('select 1').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(classifyError(next)).toBe('transient');
      expect((next as WharfError).code).toBe('08006');
      await client.end().catch(() => {});
    } finally {
      await p.close();
    }
  });

  it('a pool client whose session the server ends while it is checked out fails transiently, never the process', async () => {
    const pool = await openPool(url, 'source', '--source-url', 2);
    try {
      const client = await pool.connect();
      const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      // the server ends the session between two queries: the client's `error` event fires while it is checked out
      await admin.query('select pg_terminate_backend($1)', [pid]);
      await waitFor(
        async () =>
          (await admin.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 0,
      );
      const error = await waitFor(() =>
        client.query('select 1').then(
          () => undefined,
          (e: unknown) => e,
        ),
      );
      expect(classifyError(error)).toBe('transient');
      client.release(true);
      // the pool opens a new connection for the next query
      expect((await pool.query<{ n: number }>('select 1 as n')).rows[0]!.n).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('a statement timeout (57014) and a lock timeout (55P03) are transient', async () => {
    const client = await connectClient({ connectionString: url }, 'warehouse');
    try {
      await client.query("set statement_timeout = '50ms'");
      const timeout = await client.query('select pg_sleep(5)').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((timeout as { code?: string }).code).toBe('57014');
      expect(classifyError(timeout)).toBe('transient');
    } finally {
      await client.end();
    }
  });
});

describe('a lock timeout', () => {
  it('names the session that held the lock, its user, state and statement', async () => {
    const analyst = await session(url, 'analyst');
    const loader = await connectClient({ connectionString: url }, 'warehouse');
    try {
      const analystPid = (await analyst.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!
        .pid;
      await analyst.query('begin');
      await analyst.query('select count(*) from public.t');
      await loader.query("set lock_timeout = '100ms'");
      await loader.query('begin');
      const error = await loader.query('lock table public.t in access exclusive mode').then(
        () => undefined,
        (e: unknown) => e,
      );
      await loader.query('rollback');
      expect((error as { code?: string }).code).toBe('55P03');
      const explained = await explainLockTimeout(error, loader, 'public', 100);
      expect(explained).toBeInstanceOf(WharfError);
      expect(classifyError(explained)).toBe('transient');
      const line = oneLine(explained);
      expect(line).toContain('waited 100ms for a lock on schema public and gave up (lock_timeout)');
      expect(line).toMatch(
        new RegExp(
          `held by pid ${analystPid} \\(\\w+, idle in transaction, on t: "select count\\(\\*\\) from public\\.t"\\)`,
        ),
      );
      expect(line).toContain('raise WHARF_LOCK_TIMEOUT');
      expect(line).not.toContain('\n');
    } finally {
      await analyst.end();
      await loader.end();
    }
  });
});
