import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { parseConnectionUrl } from '../connectors/connection-url.js';
import { ConnectorStore } from '../connectors/connector-store.js';
import { masterKeysFromEnv } from '../connectors/master-key.js';
import { migrateControl } from '../control/control-schema.js';
import { initSource } from '../source/source-schema.js';
import { insertLiveEvents } from '../source/source-writer.js';
import { createDatabase } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { compareWithSource, type Target } from './helpers/load-harness.js';
import { sleep, tempDir } from './helpers/wharf.js';

/**
 * Three `wharf run` processes share one platform: 20 connectors, steady live traffic for 3 minutes, one process
 * killed with SIGKILL after the first minute.
 */
const ACCOUNTS = Array.from({ length: 20 }, (_, i) => i + 1);
const TRAFFIC_MS = 180_000;
const KILL_AT_MS = 60_000;

const root = join(import.meta.dirname, '..');
let sourceUrl: string;
let warehouseUrl: string;
let stagingDir: string;
let source: pg.Pool;
const masterKey = randomBytes(32).toString('base64');
const targets: Target[] = [];
const children: ChildProcess[] = [];

/** A port free on 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function startRun(name: string, extra: readonly string[] = []): ChildProcess {
  const child = spawn(
    process.execPath,
    ['bin/wharf.js', 'run', '--every', '1s', '--concurrency', '2', ...extra],
    {
      cwd: root,
      env: {
        ...process.env,
        WHARF_SOURCE_URL: sourceUrl,
        WHARF_STAGING_URL: `file://${stagingDir}`,
        WHARF_WINDOW: '1s',
        WHARF_SETTLE: '0s',
        WHARF_MASTER_KEY: masterKey,
        WHARF_HOME: tempDir(`wharf-run-${name}-`),
        WHARF_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  Object.defineProperty(child, 'log', { get: () => stderr });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function allEqual(): Promise<boolean> {
  for (const t of targets) {
    const cmp = await compareWithSource(source, t);
    if (Object.values(cmp).some((v) => JSON.stringify(v.source) !== JSON.stringify(v.warehouse)))
      return false;
  }
  return true;
}

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_procs_src');
  warehouseUrl = await createDatabase('wharf_procs_wh');
  stagingDir = tempDir('wharf-procs-staging-');
  source = new pg.Pool({ connectionString: sourceUrl, max: 4 });
  const client = await source.connect();
  try {
    await initSource(client, {});
    await migrateControl(client, 'wharf');
  } finally {
    client.release();
  }
  for (const a of ACCOUNTS) {
    await insertAccount(source, a);
    await insertClicks(source, a, 30);
  }
  const store = new ConnectorStore(source, masterKeysFromEnv({ WHARF_MASTER_KEY: masterKey }), 'wharf');
  const parsed = parseConnectionUrl(warehouseUrl);
  for (const a of ACCOUNTS) {
    const schema = `acct_${a}`;
    const c = await store.add({
      account: a,
      settings: parsed.settings,
      ...(parsed.password ? { password: parsed.password } : {}),
      schema,
    });
    targets.push({ warehouseUrl, schema, account: a, connectorId: String(c.id) });
  }
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await source?.end();
});

describe('three `wharf run` processes, one killed midway', () => {
  it("every warehouse ends equal to its account's source, each (window, stream) loaded once", {
    timeout: 420_000,
  }, async () => {
    const metricsPort = await freePort();
    const runs = [startRun('a'), startRun('b', ['--metrics-port', String(metricsPort)]), startRun('c')];
    const started = Date.now();
    let killed = false;
    let batches = 0;
    const writer = await source.connect();
    try {
      while (Date.now() - started < TRAFFIC_MS) {
        await insertLiveEvents(writer, { accounts: ACCOUNTS, clicks: 3 });
        batches++;
        if (!killed && Date.now() - started >= KILL_AT_MS) {
          runs[0]!.kill('SIGKILL');
          killed = true;
        }
        await sleep(150);
      }
    } finally {
      writer.release();
    }
    expect(batches).toBeGreaterThan(50);
    expect(await exited(runs[0]!)).toBeNull();

    // the two survivors catch up with the last traffic
    let equal = false;
    for (let i = 0; i < 60 && !equal; i++) {
      await sleep(500);
      equal = await allEqual();
    }
    const states = (
      await source.query<{ id: string; state: string; state_reason: string | null }>(
        'select id, state, state_reason from wharf.connectors order by id',
      )
    ).rows;
    expect(states.filter((c) => c.state !== 'active')).toEqual([]);
    for (const t of targets) {
      const cmp = await compareWithSource(source, t);
      for (const [stream, v] of Object.entries(cmp))
        expect(v.warehouse, `account ${t.account} ${stream}`).toEqual(v.source);
    }

    // the second process serves its metrics and health over HTTP
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/wharf_tick_duration_seconds_count [1-9]/);
    expect(metrics).toMatch(/wharf_rows_loaded_total\{connector="\d+"\} [1-9]/);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);

    // a graceful stop: SIGTERM, the loads under way finish, exit code 0
    runs[1]!.kill('SIGTERM');
    runs[2]!.kill('SIGTERM');
    const codes = await Promise.all([exited(runs[1]!), exited(runs[2]!)]);
    expect(
      codes,
      `${(runs[1] as unknown as { log: string }).log}\n${(runs[2] as unknown as { log: string }).log}`,
    ).toEqual([0, 0]);

    // a window may have closed and been exported after the survivors' last load: a one-shot `wharf load`
    // (what cron would run) finishes it; it must load nothing twice
    const finalLoad = spawnSync(process.execPath, ['bin/wharf.js', 'load', '--json'], {
      cwd: root,
      env: {
        ...process.env,
        WHARF_SOURCE_URL: sourceUrl,
        WHARF_STAGING_URL: `file://${stagingDir}`,
        WHARF_MASTER_KEY: masterKey,
        WHARF_HOME: tempDir('wharf-run-final-'),
        WHARF_LOG_LEVEL: 'warn',
      },
      encoding: 'utf8',
    });
    expect(finalLoad.status, finalLoad.stderr).toBe(0);

    // each (window, stream) is in each ledger exactly once, and only windows that were exported
    const wh = new pg.Pool({ connectionString: warehouseUrl, max: 2 });
    try {
      const exported = new Set(
        (
          await source.query<{ window_id: string }>(
            "select window_id from wharf.windows where format = 'csv'",
          )
        ).rows.map((r) => r.window_id),
      );
      for (const t of targets) {
        const { rows } = await wh.query<{ window_id: string; stream: string; n: string }>(
          `select window_id, stream, count(*) as n from ${t.schema}._wharf_loads group by window_id, stream`,
        );
        expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
        expect(rows.length).toBe(exported.size * trackingCatalog.streams.length);
        expect(rows.every((r) => exported.has(r.window_id))).toBe(true);
      }
    } finally {
      await wh.end();
    }
    const history = await source.query<{ status: string; n: string }>(
      "select status, count(*) as n from wharf.runs where kind = 'load' group by status order by status",
    );
    const byStatus = Object.fromEntries(history.rows.map((r) => [r.status, Number(r.n)]));
    expect(byStatus.ok).toBeGreaterThan(ACCOUNTS.length);
    // failures here are only loads that waited a tick for parent rows of a later window
    const failures = await source.query<{ error: string }>(
      "select error from wharf.runs where kind = 'load' and status = 'failed'",
    );
    for (const f of failures.rows)
      expect(f.error).toMatch(/foreign key|parent rows that are in a window not exported yet/);
    console.info(`load runs by status: ${JSON.stringify(byStatus)}`);
  });
});
