import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectionUrl } from '../connectors/connection-url.js';
import { ConnectorStore } from '../connectors/connector-store.js';
import { rotateMasterKey } from '../connectors/keys.js';
import { MasterKey } from '../connectors/master-key.js';
import { migrateControl } from '../control/control-schema.js';
import { WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { createDatabase, query } from './helpers/databases.js';

const CANARY = `canary-${randomBytes(6).toString('hex')}-p@ss:w/o?r#d`;
let url: string;
let pool: pg.Pool;
const master = new MasterKey(randomBytes(32));
const store = () => new ConnectorStore(pool, master);

function settings(host = 'wh.example.com') {
  return parseConnectionUrl(`postgres://loader@${host}:5432/warehouse?sslmode=require`).settings;
}

async function failure(work: Promise<unknown>): Promise<WharfError> {
  try {
    await work;
  } catch (error) {
    expect(error).toBeInstanceOf(WharfError);
    return error as WharfError;
  }
  throw new Error('expected a failure');
}

async function controlText(): Promise<string> {
  const rows = await query<{ t: string }>(
    url,
    `select t::text as t from wharf.secrets t union all select t::text from wharf.connectors t
     union all select t::text from wharf.master_keys t union all select t::text from wharf.runs t`,
  );
  return rows.map((r) => r.t).join('\n');
}

beforeAll(async () => {
  url = await createDatabase('wharf_connectors');
  pool = new pg.Pool({ connectionString: url, max: 10 });
  const client = await pool.connect();
  try {
    await migrateControl(client, 'wharf');
  } finally {
    client.release();
  }
});

afterAll(async () => {
  await pool?.end();
});

describe('connector store', () => {
  it('adds a connector with an encrypted secret and gives the password back only as a Secret', async () => {
    const added = await store().add({
      account: 1,
      settings: settings(),
      password: new Secret(CANARY),
      streams: ['accounts', 'clicks'],
    });
    expect(added).toMatchObject({
      account: '1',
      engine: 'postgres',
      streams: ['accounts', 'clicks'],
      format: 'csv',
      state: 'active',
      schema: 'tracking',
      secretVersion: 1,
    });
    expect(added.settings.host).toBe('wh.example.com');
    const creds = await store().credentials(added.id);
    expect(creds.password).toBeInstanceOf(Secret);
    expect(creds.password?.reveal()).toBe(CANARY);
    expect(creds.settings).toEqual(settings());
    expect(JSON.stringify(creds)).not.toContain(CANARY);
    expect(inspect(creds)).not.toContain(CANARY);
    expect(JSON.stringify(await store().list())).not.toContain(CANARY);
    expect(await controlText()).not.toContain(CANARY);
    expect(await controlText()).not.toContain(encodeURIComponent(CANARY));
  });

  it('keeps one active connector per account', async () => {
    const first = await store().add({ account: 2, settings: settings() });
    const error = await failure(store().add({ account: 2, settings: settings('other.example.com') }));
    expect(error.oneLine()).toBe(
      `account 2 already has active connector ${first.id} (account 2); disable it first: wharf connectors disable ${first.id}`,
    );
    await store().disable(first.id, 'moved');
    const second = await store().add({
      account: 2,
      settings: settings('other.example.com'),
      format: 'parquet',
    });
    expect((await store().get(first.id)).state).toBe('disabled');
    expect((await store().get(first.id)).stateReason).toBe('moved');
    const back = await failure(store().setState(first.id, 'active'));
    expect(back.hint).toBe(`disable it first: wharf connectors disable ${second.id}`);
    expect((await store().credentials(second.id)).password).toBeUndefined();
    // one pooled connection is enough to report the clash
    const single = new pg.Pool({ connectionString: url, max: 1 });
    try {
      const clash = await failure(
        new ConnectorStore(single, master).add({ account: 2, settings: settings() }),
      );
      expect(clash.hint).toBe(`disable it first: wharf connectors disable ${second.id}`);
    } finally {
      await single.end();
    }
    const missing = await failure(store().get(999999));
    expect(missing.message).toBe('there is no connector 999999');
  });

  it('rotates a password and a URL while keeping the connector id', async () => {
    const added = await store().add({
      account: 3,
      settings: settings(),
      password: new Secret('first-password'),
    });
    const rotated = await store().rotate(added.id, { password: new Secret(CANARY) });
    expect(rotated.id).toBe(added.id);
    expect(rotated.secretVersion).toBe(2);
    expect((await store().credentials(added.id)).password?.reveal()).toBe(CANARY);
    const moved = await store().rotate(added.id, { settings: settings('new-host.example.com') });
    expect(moved.secretVersion).toBe(3);
    const creds = await store().credentials(added.id);
    expect(creds.settings.host).toBe('new-host.example.com');
    expect(creds.password?.reveal()).toBe(CANARY);
    const versions = await query<{ version: number; retired: boolean }>(
      url,
      'select version, retired_at is not null as retired from wharf.secrets where connector_id = $1 order by version',
      [added.id],
    );
    expect(versions).toEqual([
      { version: 1, retired: true },
      { version: 2, retired: true },
      { version: 3, retired: false },
    ]);
    expect(await controlText()).not.toContain(CANARY);
  });

  it('refuses ciphertexts swapped between connectors, tampered bytes and the wrong master key', async () => {
    const a = await store().add({ account: 4, settings: settings(), password: new Secret(`${CANARY}-a`) });
    const b = await store().add({ account: 5, settings: settings(), password: new Secret(`${CANARY}-b`) });
    await query(
      url,
      `update wharf.secrets s set wrapped_key = o.wrapped_key, ciphertext = o.ciphertext
       from wharf.secrets o where s.connector_id = $1 and o.connector_id = $2`,
      [a.id, b.id],
    );
    const swapped = await failure(store().credentials(a.id));
    expect(swapped.message).toBe(
      `cannot decrypt the secret of connector ${a.id}: wrong master key or tampered data`,
    );
    expect(swapped.kind).toBe('terminal');

    await query(
      url,
      `update wharf.secrets set ciphertext = set_byte(ciphertext, 30, get_byte(ciphertext, 30) # 1) where connector_id = $1`,
      [b.id],
    );
    const tampered = await failure(store().credentials(b.id));
    expect(tampered.message).toBe(
      `cannot decrypt the secret of connector ${b.id}: wrong master key or tampered data`,
    );

    const c = await store().add({ account: 6, settings: settings(), password: new Secret(CANARY) });
    const stranger = new MasterKey(randomBytes(32));
    const wrong = await failure(new ConnectorStore(pool, stranger).credentials(c.id));
    expect(wrong.message).toBe(
      `cannot decrypt the secret of connector ${c.id}: wrong master key or tampered data`,
    );
    expect(wrong.hint).toContain(master.id);
    const sealing = await failure(
      new ConnectorStore(pool, stranger).add({ account: 7, settings: settings() }),
    );
    expect(sealing.message).toContain(`is not the control database's master key (${master.id})`);
    for (const error of [swapped, tampered, wrong, sealing]) {
      for (const shown of [String(error), error.stack ?? '', JSON.stringify(error), inspect(error)]) {
        expect(shown).not.toContain(CANARY);
      }
    }
  });
});

describe('master key rotation', () => {
  it('re-wraps 1,000 secrets: all readable with the new key, none with the old', async () => {
    const rotUrl = await createDatabase('wharf_keys');
    const rotPool = new pg.Pool({ connectionString: rotUrl, max: 10 });
    try {
      const client = await rotPool.connect();
      await migrateControl(client, 'wharf').finally(() => client.release());
      const oldKey = new MasterKey(randomBytes(32));
      const newKey = new MasterKey(randomBytes(32));
      const oldStore = new ConnectorStore(rotPool, oldKey);
      const ids: string[] = [];
      const accounts = Array.from({ length: 1000 }, (_, i) => 1000 + i);
      for (let i = 0; i < accounts.length; i += 20) {
        const batch = await Promise.all(
          accounts
            .slice(i, i + 20)
            .map((account) =>
              oldStore.add({ account, settings: settings(), password: new Secret(`${CANARY}-${account}`) }),
            ),
        );
        ids.push(...batch.map((c) => c.id));
      }
      const progress: number[] = [];
      const result = await rotateMasterKey(rotPool, 'wharf', oldKey, newKey, (p) =>
        progress.push(p.rewrapped),
      );
      expect(result).toEqual({ rewrapped: 1000, keyId: newKey.id, keyVersion: 2 });
      expect(progress.at(-1)).toBe(1000);
      expect(progress.length).toBeGreaterThan(2);

      const newStore = new ConnectorStore(rotPool, newKey);
      for (const [i, id] of ids.entries()) {
        expect((await newStore.credentials(id)).password?.reveal()).toBe(`${CANARY}-${accounts[i]}`);
      }
      const stale = await failure(oldStore.credentials(ids[0]!));
      expect(stale.message).toContain('wrong master key or tampered data');
      const retired = await failure(oldStore.add({ account: 1, settings: settings() }));
      expect(retired.message).toContain('was retired by a key rotation');

      const keys = await query<{ key_id: string; version: number; retired: boolean }>(
        rotUrl,
        'select key_id, version, retired_at is not null as retired from wharf.master_keys order by version',
      );
      expect(keys).toEqual([
        { key_id: oldKey.id, version: 1, retired: true },
        { key_id: newKey.id, version: 2, retired: false },
      ]);
      const byKey = await query<{ key_id: string; key_version: number; n: string }>(
        rotUrl,
        'select key_id, key_version, count(*) as n from wharf.secrets group by 1, 2',
      );
      expect(byKey).toEqual([{ key_id: newKey.id, key_version: 2, n: '1000' }]);
      const text = (await query<{ t: string }>(rotUrl, 'select t::text as t from wharf.secrets t'))
        .map((r) => r.t)
        .join('\n');
      expect(text).not.toContain(CANARY);
      expect(text).not.toContain(Buffer.from(CANARY).toString('hex'));

      // running it again finds nothing left; the new key keeps adding connectors
      expect((await rotateMasterKey(rotPool, 'wharf', oldKey, newKey)).rewrapped).toBe(0);
      const later = await newStore.add({
        account: 5000,
        settings: settings(),
        password: new Secret('later'),
      });
      expect((await newStore.credentials(later.id)).password?.reveal()).toBe('later');
    } finally {
      await rotPool.end();
    }
  });

  it('keeps secrets readable mid-rotation with the previous key, and refuses a foreign key', async () => {
    const midUrl = await createDatabase('wharf_keys_mid');
    const midPool = new pg.Pool({ connectionString: midUrl, max: 4 });
    try {
      const client = await midPool.connect();
      await migrateControl(client, 'wharf').finally(() => client.release());
      const oldKey = new MasterKey(randomBytes(32));
      const newKey = new MasterKey(randomBytes(32));
      const added = await new ConnectorStore(midPool, oldKey).add({
        account: 1,
        settings: settings(),
        password: new Secret(CANARY),
      });
      const ring = new ConnectorStore(midPool, { current: newKey, previous: oldKey });
      expect((await ring.credentials(added.id)).password?.reveal()).toBe(CANARY);
      const foreign = await failure(
        rotateMasterKey(midPool, 'wharf', new MasterKey(randomBytes(32)), newKey),
      );
      expect(foreign.message).toContain(`sealed with master key ${oldKey.id}`);
      await rotateMasterKey(midPool, 'wharf', oldKey, newKey);
      expect((await ring.credentials(added.id)).password?.reveal()).toBe(CANARY);
    } finally {
      await midPool.end();
    }
  });
});
