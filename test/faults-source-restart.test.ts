import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedServer, startEmbeddedPostgres } from '../core/embedded-postgres.js';
import { initSource } from '../source/source-schema.js';
import { wharf } from './helpers/cli.js';
import { errorLines, session, startWharf, type WharfProcess, waitFor } from './helpers/daemon.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { sleep, tempDir } from './helpers/wharf.js';

/**
 * The source database (which holds the control schema too, the default) stopped in the middle of an export:
 * the export's COPY of one stream waits for a lock the test holds, and the server stops while it waits.
 */
let server: EmbeddedServer;
let dataDir: string;
let sourceUrl: string;
let env: Record<string, string>;
const daemons: WharfProcess[] = [];

async function withSource<T>(use: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: sourceUrl, max: 2 });
  pool.on('error', () => {});
  try {
    return await use(pool);
  } finally {
    await pool.end();
  }
}

/** New clicks whose window has closed by the time this returns (1 s windows, no settle time). */
async function newClicks(n: number, referrer: string): Promise<Date> {
  const at = await withSource(async (pool) => {
    await insertClicks(pool, 1, n, referrer);
    return (await pool.query<{ t: Date }>('select now() as t')).rows[0]!.t;
  });
  await sleep(1100);
  return at;
}

/** Holds a lock on the `conversions` table: an export's COPY of it waits (after the streams before it). */
async function blockConversions(): Promise<pg.Client> {
  const holder = await session(sourceUrl, 'holder');
  await holder.query('begin');
  await holder.query('lock table conversions in access exclusive mode');
  return holder;
}

function waitForBlockedCopy(): Promise<number> {
  return waitFor(() =>
    withSource(async (pool) => {
      const r = await pool.query<{ pid: number }>(
        // the export's read of conversions (its account count, then its COPY) waits on the test's lock
        `select pid from pg_stat_activity
          where query ilike '%conversions%' and wait_event_type = 'Lock' and application_name like 'wharf%'`,
      );
      return r.rows[0]?.pid;
    }),
  );
}

async function exportedUpTo(): Promise<Date | null> {
  return withSource(
    async (pool) =>
      (
        await pool.query<{ e: Date | null }>(
          "select max(end_at) as e from wharf.windows where format = 'csv'",
        )
      ).rows[0]!.e,
  );
}

beforeAll(async () => {
  dataDir = join(tempDir('wharf-srcrestart-'), 'data');
  server = await startEmbeddedPostgres({ dataDir, port: 0, persistent: true });
  sourceUrl = server.url;
  await withSource(async (pool) => {
    const c = await pool.connect();
    await initSource(c, {});
    c.release();
    await insertAccount(pool, 1);
  });
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-srcrestart-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1s',
    WHARF_SETTLE: '0s',
    WHARF_HOME: tempDir('wharf-srcrestart-home-'),
  };
  await newClicks(20, 'history');
  // a first export: the next ones continue from it
  const first = await wharf(['export'], env);
  expect(first.code, first.stderr).toBe(0);
});

afterAll(async () => {
  for (const d of daemons) if (d.running()) d.child.kill('SIGKILL');
  await server.stop().catch(() => {});
});

async function restart(): Promise<void> {
  server = await startEmbeddedPostgres({ dataDir, port: server.port, persistent: true });
}

describe('the source stopped in the middle of an export', () => {
  it('`wharf export` fails in one line (exit 1); the next export completes the window', {
    timeout: 180_000,
  }, async () => {
    const at = await newClicks(15, 'one-shot');
    const holder = await blockConversions();
    const exporting = startWharf(['export'], env);
    daemons.push(exporting);
    await waitForBlockedCopy();
    await server.stop();
    await holder.end().catch(() => {});
    expect(await exporting.exited, exporting.stderr()).toBe(1);
    const lines = errorLines(exporting.stderr());
    expect(lines, exporting.stderr()).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^wharf: error: lost the connection to the source database \(.+\) \(window \d{8}T\d{6}Z_\d{8}T\d{6}Z, stream conversions\); the server restarted or the network failed/,
    );
    expect(exporting.stderr()).not.toMatch(/Unhandled|at .+\.js:\d+/);

    await restart();
    const again = await wharf(['export', '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { windows: number }).windows).toBeGreaterThan(0);
    expect((await exportedUpTo())!.getTime()).toBeGreaterThan(at.getTime());
  });

  it('`wharf run` keeps running while the source is down, and exports alone once it is back', {
    timeout: 180_000,
  }, async () => {
    const at = await newClicks(12, 'daemon');
    const holder = await blockConversions();
    const daemon = startWharf(['run', '--every', '1s'], env);
    daemons.push(daemon);
    await waitForBlockedCopy();
    await server.stop();
    await holder.end().catch(() => {});
    // ticks fail while the server is down; the process stays
    await waitFor(() => daemon.stderr().includes('export failed') || !daemon.running());
    await sleep(2500);
    expect(daemon.running(), daemon.stderr()).toBe(true);

    await restart();
    await waitFor(async () => ((await exportedUpTo())?.getTime() ?? 0) > at.getTime(), 250);
    expect(daemon.running()).toBe(true);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited, daemon.stderr()).toBe(0);
    expect(errorLines(daemon.stderr())).toEqual([]);
    expect(daemon.stderr()).toMatch(/lost the connection to the source database/);
  });
});
