import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMasterKey } from '../connectors/master-key.js';
import { literalPg, quotePg } from '../db/postgres/quote.js';
import { wharf } from './helpers/cli.js';
import { createDatabase, query, serverUrl } from './helpers/databases.js';
import { type Receiver, startReceiver } from './helpers/retl-receiver.js';
import { tempDir } from './helpers/wharf.js';

const suffix = randomBytes(4).toString('hex');
const PASSWORD = `Rotate-${randomBytes(6).toString('hex')}`;
const WRITE_KEY = `wk_rotate_${randomBytes(6).toString('hex')}`;
const role = `wharf_retl_rotate_${suffix}`;
const OLD_KEY = randomBytes(32).toString('base64');
const NEW_KEY = randomBytes(32).toString('base64');

let controlUrl: string;
let warehouseUrl: string;
let receiver: Receiver;
let base: Record<string, string>;

beforeAll(async () => {
  controlUrl = await createDatabase('wharf_retl_rotate_control');
  warehouseUrl = await createDatabase('wharf_retl_rotate_wh');
  receiver = await startReceiver();
  await query(
    warehouseUrl,
    `create table users (id bigint primary key, email text, last_updated bigint not null);
     insert into users select i, 'user' || i || '@example.com', 1000 + i from generate_series(1, 5) i`,
  );
  await query(serverUrl(), `create role ${quotePg(role)} login password ${literalPg(PASSWORD)}`);
  await query(warehouseUrl, `grant select on users to ${quotePg(role)}`);
  base = {
    WHARF_SOURCE_URL: controlUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-retl-rotate-staging-')}`,
    WHARF_SPOOL_DIR: tempDir('wharf-retl-rotate-spool-'),
  };
});

afterAll(async () => {
  await receiver?.close();
  await query(serverUrl(), `drop role if exists ${quotePg(role)}`).catch(() => {});
});

describe('wharf keys rotate and reverse ETL', () => {
  it("re-wraps sources' passwords and syncs' write keys: a sync still runs with the new key alone", async () => {
    const withOld = { ...base, WHARF_MASTER_KEY: OLD_KEY };
    const url = new URL(warehouseUrl);
    url.username = role;
    url.password = '';
    url.searchParams.set('sslmode', 'disable');
    const added = await wharf(
      [
        'retl',
        'sources',
        'add',
        '--account',
        '3',
        '--engine',
        'postgres',
        '--url',
        url.href,
        '--password-stdin',
        '--json',
      ],
      withOld,
      `${PASSWORD}\n`,
    );
    expect(added.code, added.stderr).toBe(0);
    const sourceId = (JSON.parse(added.stdout) as { id: string }).id;
    const endpoint = new URL(receiver.url);
    endpoint.username = WRITE_KEY;
    const sync = await wharf(
      [
        'retl',
        'syncs',
        'add',
        '--source',
        sourceId,
        '--name',
        'users',
        '--type',
        'identify',
        '--query',
        'SELECT id AS userId, email FROM users WHERE last_updated >= {{last_sync_time}}',
        '--deliver-to',
        endpoint.href,
        '--json',
      ],
      withOld,
    );
    expect(sync.code, sync.stderr).toBe(0);
    const syncId = (JSON.parse(sync.stdout) as { id: string }).id;
    const first = await wharf(['retl', 'run', syncId, '--json'], withOld);
    expect(first.code, first.stderr).toBe(0);
    expect(receiver.delivered()).toHaveLength(5);

    const rotated = await wharf(['keys', 'rotate', '--json'], {
      ...base,
      WHARF_MASTER_KEY: NEW_KEY,
      WHARF_MASTER_KEY_PREVIOUS: OLD_KEY,
    });
    expect(rotated.code, rotated.stderr).toBe(0);
    // the source's password and the sync's write key
    expect(JSON.parse(rotated.stdout)).toMatchObject({ rewrapped: 2, keyId: parseMasterKey(NEW_KEY).id });
    const secrets = await query<{ owner_kind: string; key_id: string }>(
      controlUrl,
      'select owner_kind, key_id from wharf.retl_secrets order by owner_kind',
    );
    expect(secrets).toEqual([
      { owner_kind: 'source', key_id: parseMasterKey(NEW_KEY).id },
      { owner_kind: 'sync', key_id: parseMasterKey(NEW_KEY).id },
    ]);

    // the new key alone: the source's password opens (the warehouse is read) and the write key goes out
    await query(warehouseUrl, `insert into users values (6, 'user6@example.com', 4000000000)`);
    const second = await wharf(['retl', 'run', syncId, '--json'], { ...base, WHARF_MASTER_KEY: NEW_KEY });
    expect(second.code, second.stderr).toBe(0);
    const out = JSON.parse(second.stdout) as { syncs: { status: string; calls: number }[] };
    expect(out.syncs).toMatchObject([{ status: 'ok', calls: 1 }]);
    expect(receiver.delivered().map((c) => c.userId)).toEqual(['1', '2', '3', '4', '5', '6']);
    const last = receiver.requests[receiver.requests.length - 1]!;
    expect(last.authorization).toBe(`Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`);

    // the old key alone no longer opens them: one clear line naming the key they are sealed with
    const stale = await wharf(['retl', 'run', syncId, '--json'], { ...base, WHARF_MASTER_KEY: OLD_KEY });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain(parseMasterKey(NEW_KEY).id);
    expect(stale.stderr).not.toContain(PASSWORD);
    expect(stale.stderr).not.toContain(WRITE_KEY);
  });
});
