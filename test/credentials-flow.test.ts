/**
 * Credentials through the real CLI: a password rotated between two syncs, passwords full of URL
 * delimiters (percent-encoded in the URL, or through --password-stdin), and a rotation to a wrong password.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { quotePg } from '../db/postgres/quote.js';
import { insertLiveEvents } from '../source/source-writer.js';
import { wharf } from './helpers/cli.js';
import { tableChecksum } from './helpers/compare.js';
import { createDatabase, query, serverUrl } from './helpers/databases.js';
import { documentedGrants } from './helpers/engines.js';
import { sleep, tempDir } from './helpers/wharf.js';

const ALL = trackingCatalog.streams.map((s) => s.name);
const AWKWARD = `p@ss:w/o?r#d[1]%25 "quoted" and spaces`;

let sourceUrl: string;
let env: Record<string, string>;
let source: pg.Pool;

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_cred_src');
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-cred-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1s',
    WHARF_SETTLE: '0s',
  };
  expect((await wharf(['source', 'init'], env)).code).toBe(0);
  const seeded = await wharf(['seed', '--accounts', '4', '--rows', '1500', '--seed', '9'], env);
  expect(seeded.code, seeded.stderr).toBe(0);
  source = new pg.Pool({ connectionString: sourceUrl, max: 2 });
});

afterAll(async () => {
  await source?.end();
});

/** A warehouse database and a login role holding only the documented grants on it. */
async function warehouseFor(password: string) {
  const adminUrl = await createDatabase('wharf_cred_wh');
  const database = new URL(adminUrl).pathname.slice(1);
  const role = `wharf_cred_${randomBytes(4).toString('hex')}`;
  await setPassword(role, password, true);
  for (const grant of documentedGrants(database, role)) await query(serverUrl(), grant);
  const port = new URL(adminUrl).port;
  const url = (pw?: string) =>
    `postgres://${role}${pw === undefined ? '' : `:${encodeURIComponent(pw)}`}@127.0.0.1:${port}/${database}?sslmode=disable`;
  return { adminUrl, role, url };
}

async function setPassword(role: string, password: string, create = false) {
  const literal = `'${password.replace(/'/g, "''")}'`;
  await query(
    serverUrl(),
    create
      ? `create role ${quotePg(role)} login password ${literal}`
      : `alter role ${quotePg(role)} password ${literal}`,
  );
}

async function addConnector(account: number, url: string, stdin?: string): Promise<string> {
  const args = ['connectors', 'add', '--account', String(account), '--engine', 'postgres', '--url', url];
  const r = await wharf(
    [...args, ...(stdin === undefined ? [] : ['--password-stdin']), '--json'],
    env,
    stdin,
  );
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { id: string }).id;
}

async function sync() {
  const r = await wharf(['sync', '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { load: { connectors: { connector: string; windows: number }[] } };
}

interface LedgerRow {
  window_id: string;
  stream: string;
  loaded_at: string;
}

async function ledger(adminUrl: string): Promise<LedgerRow[]> {
  return query<LedgerRow>(
    adminUrl,
    `select window_id, stream, to_char(loaded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as loaded_at
       from tracking._wharf_loads order by window_id, stream`,
  );
}

async function exportedWindows(): Promise<string[]> {
  const { rows } = await source.query<{ window_id: string }>(
    `select window_id from wharf.windows where format = 'csv' order by start_at, revision`,
  );
  return rows.map((r) => r.window_id);
}

async function expectEqualToSource(adminUrl: string, account: number) {
  const wh = new pg.Pool({ connectionString: adminUrl, max: 1 });
  try {
    for (const s of trackingCatalog.streams) {
      expect(await tableChecksum(wh, 'tracking', s), s.name).toEqual(
        await tableChecksum(source, 'public', s, account),
      );
    }
  } finally {
    await wh.end();
  }
}

async function newEvents(account: number) {
  const c = await source.connect();
  try {
    await insertLiveEvents(c, { accounts: [account], clicks: 25, seed: account });
  } finally {
    c.release();
  }
  // the events' window must close before the export takes it
  await sleep(1100);
}

async function disable(id: string) {
  const r = await wharf(['connectors', 'disable', id], env);
  expect(r.code, r.stderr).toBe(0);
}

describe('credentials through the CLI', () => {
  it('a password rotated between two syncs: both exit 0, the second loads only new windows, the ledger stays continuous', async () => {
    const a = `A-${randomBytes(8).toString('hex')}`;
    const b = `B-${randomBytes(8).toString('hex')}`;
    const wh = await warehouseFor(a);
    const id = await addConnector(1, wh.url(a));
    await sync();
    const first = await ledger(wh.adminUrl);
    expect(first.length).toBeGreaterThan(0);
    await expectEqualToSource(wh.adminUrl, 1);

    await setPassword(wh.role, b);
    const rotate = await wharf(['connectors', 'rotate', id, '--password-stdin'], env, `${b}\n`);
    expect(rotate.code, rotate.stderr).toBe(0);
    expect(rotate.stdout).toMatch(/secret version 2/);

    await newEvents(1);
    const second = await sync();
    const mine = second.load.connectors.find((c) => String(c.connector) === id);
    expect(mine?.windows).toBeGreaterThan(0);
    const after = await ledger(wh.adminUrl);
    // no reload: every earlier ledger row is still there, untouched
    const byKey = new Map(after.map((r) => [`${r.window_id}|${r.stream}`, r.loaded_at]));
    for (const r of first) expect(byKey.get(`${r.window_id}|${r.stream}`), r.window_id).toBe(r.loaded_at);
    const added = after.filter(
      (r) => !first.some((f) => f.window_id === r.window_id && f.stream === r.stream),
    );
    const firstWindows = new Set(first.map((r) => r.window_id));
    expect(added.length).toBeGreaterThan(0);
    expect(added.every((r) => !firstWindows.has(r.window_id))).toBe(true);
    // continuous: every exported window present once per stream
    const windows = await exportedWindows();
    expect(after.map((r) => `${r.window_id}|${r.stream}`).sort()).toEqual(
      windows.flatMap((w) => ALL.map((s) => `${w}|${s}`)).sort(),
    );
    await expectEqualToSource(wh.adminUrl, 1);
    await disable(id);
  });

  it.each([
    { how: 'percent-encoded in the URL', stdin: false },
    { how: 'through --password-stdin', stdin: true },
  ])('a password holding @ : / ? # [ ] % " and spaces works $how, for add and rotate', async ({ stdin }) => {
    const account = stdin ? 3 : 2;
    const first = `${AWKWARD} ${randomBytes(3).toString('hex')}`;
    const next = `${AWKWARD}#2/${randomBytes(3).toString('hex')}`;
    const wh = await warehouseFor(first);
    const id = stdin
      ? await addConnector(account, wh.url(), first)
      : await addConnector(account, wh.url(first));
    await sync();
    await expectEqualToSource(wh.adminUrl, account);

    await setPassword(wh.role, next);
    const rotate = stdin
      ? await wharf(['connectors', 'rotate', id, '--password-stdin'], env, `${next}\n`)
      : await wharf(['connectors', 'rotate', id, '--url', wh.url(next)], env);
    expect(rotate.code, rotate.stderr).toBe(0);
    for (const out of [rotate.stdout, rotate.stderr]) {
      expect(out).not.toContain(next);
      expect(out).not.toContain(encodeURIComponent(next));
    }
    await newEvents(account);
    await sync();
    await expectEqualToSource(wh.adminUrl, account);
    await disable(id);
  });

  it('a rotation to a wrong password fails its test and changes nothing: the old credentials still work', async () => {
    const good = `good-${randomBytes(8).toString('hex')}`;
    const wh = await warehouseFor(good);
    const id = await addConnector(4, wh.url(good));
    await sync();
    const shown = await wharf(['connectors', 'show', id, '--json'], env);
    expect(shown.code, shown.stderr).toBe(0);
    const before = JSON.parse(shown.stdout) as { secretVersion: number };

    const rotate = await wharf(['connectors', 'rotate', id, '--password-stdin'], env, 'wrong-password\n');
    expect(rotate.code).not.toBe(0);
    expect(rotate.stderr).toMatch(/authenticat|password/i);
    expect(rotate.stderr).not.toContain('wrong-password');
    const again = await wharf(['connectors', 'show', id, '--json'], env);
    expect(JSON.parse(again.stdout)).toEqual(before);

    await newEvents(4);
    const next = await sync();
    expect(next.load.connectors.find((c) => String(c.connector) === id)?.windows).toBeGreaterThan(0);
    await expectEqualToSource(wh.adminUrl, 4);
    await disable(id);
  });
});
