import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tryAdvisoryLock } from '../db/postgres/locks.js';
import { exportLockKey } from '../exporter/export.js';
import { connectorLockKey } from '../pipeline/connector-job.js';
import { wharf } from './helpers/cli.js';
import { session } from './helpers/daemon.js';
import { createDatabase, query } from './helpers/databases.js';
import { tempDir } from './helpers/wharf.js';

/**
 * Exit codes say what happened: 0 done (or nothing was due), 1 failed, 2 usage, 3 skipped because another process
 * holds the lock. One line per error on stderr; logs stay logs.
 */
let sourceUrl: string;
let warehouseUrl: string;
let env: Record<string, string>;
let id: string;

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_exit_src');
  warehouseUrl = await createDatabase('wharf_exit_wh');
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-exit-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1m',
    WHARF_SETTLE: '0s',
    // info logs on: the error must still be on stderr once
    WHARF_LOG_LEVEL: 'info',
  };
  expect((await wharf(['seed', '--accounts', '2', '--rows', '300', '--seed', '8'], env)).code).toBe(0);
  const add = await wharf(
    [
      'connectors',
      'add',
      '--account',
      '1',
      '--engine',
      'postgres',
      '--url',
      `${warehouseUrl}?sslmode=disable`,
      '--json',
    ],
    env,
  );
  expect(add.code, add.stderr).toBe(0);
  id = (JSON.parse(add.stdout) as { id: string }).id;
  const sync = await wharf(['sync'], env);
  expect(sync.code, sync.stderr).toBe(0);
});

/** The lines of stderr that are not log lines (JSON). */
const errorLines = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => !l.startsWith('{'));

describe('a connector another process is loading', () => {
  let release: () => Promise<void>;

  beforeAll(async () => {
    const lock = await tryAdvisoryLock(sourceUrl, connectorLockKey('wharf', id), 'wharf-test-holder');
    expect(lock).toBeDefined();
    release = () => lock!.release();
  });

  afterAll(async () => {
    await release();
  });

  it.each([
    ['wharf load --connector ID', () => ['load', '--connector', id]],
    ['wharf load', () => ['load']],
    ['wharf sync', () => ['sync']],
    ['wharf replay --connector ID', () => ['replay', '--connector', id]],
  ])('%s: exit 3, one line naming the process that holds the lock', async (_name, args) => {
    const r = await wharf(args(), env);
    expect(r.code, r.stderr).toBe(3);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^wharf: skipped: connector ${id} was not loaded: process wharf-test-holder [^ ]+:\\d+ \\(database session pid \\d+ since [^)]+\\) holds its load lock`,
      ),
    );
    expect(r.stdout).toMatch(new RegExp(`connector ${id}: skipped: process wharf-test-holder`));
  });
});

describe('an export another process holds', () => {
  it('`wharf export --no-wait`: exit 3, one line naming the holder; without --no-wait it waits', async () => {
    const holder = await session(sourceUrl, 'wharf-test-exporter');
    try {
      await holder.query('select pg_advisory_lock(hashtext($1))', [exportLockKey('wharf', 'csv')]);
      const r = await wharf(['export', '--no-wait'], env);
      expect(r.code, r.stderr).toBe(3);
      const lines = errorLines(r.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^wharf: skipped: nothing exported: process wharf-test-exporter \(database session pid \d+/,
      );
      expect(r.stdout).toContain('another export is running; nothing done');
    } finally {
      await holder.end();
    }
    const free = await wharf(['export', '--no-wait'], env);
    expect(free.code, free.stderr).toBe(0);
  });
});

describe('a parked connector', () => {
  it('is named by `wharf load`, which exits 1 with one line saying how to resume it', async () => {
    await query(
      sourceUrl,
      "update wharf.connectors set state = 'failing', state_reason = 'grant revoked' where id = $1",
      [id],
    );
    try {
      const r = await wharf(['load'], env);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`connector ${id}: not loaded: parked (state failing)`);
      expect(r.stdout).not.toContain('no active connectors');
      const lines = errorLines(r.stderr);
      expect(lines).toEqual([
        `wharf: error: connector ${id} is parked (state failing): grant revoked; fix the cause, then run \`wharf connectors test ${id}\``,
      ]);
    } finally {
      await query(
        sourceUrl,
        "update wharf.connectors set state = 'active', state_reason = null where id = $1",
        [id],
      );
    }
  });
});

describe('a load that fails', () => {
  it('prints its error once: one line on stderr, not again on stdout or in a log line', async () => {
    const add2 = await wharf(
      [
        'connectors',
        'add',
        '--account',
        '2',
        '--engine',
        'postgres',
        '--url',
        `${warehouseUrl}?sslmode=disable`,
        '--schema',
        'second',
        '--json',
      ],
      env,
    );
    expect(add2.code, add2.stderr).toBe(0);
    const second = (JSON.parse(add2.stdout) as { id: string }).id;
    // the table changed by hand: its load fails, the first connector's goes on
    await query(warehouseUrl, 'alter table second.clicks drop column referrer');
    const r = await wharf(['load'], env);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^wharf: error: warehouse table second\\.clicks has no column referrer \\(connector ${second}, stream clicks\\)`,
      ),
    );
    const all = r.stdout + r.stderr;
    expect(all.split('has no column referrer').length - 1).toBe(1);
    expect(r.stdout).toContain(`connector ${second}: FAILED`);
    expect(r.stdout).toMatch(new RegExp(`connector ${id}: \\d+ window\\(s\\)`));
  });
});
