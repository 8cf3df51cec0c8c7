import type pg from 'pg';
import { WharfError } from '../core/errors.js';
import { quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';
import { rewrap } from './envelope.js';
import type { MasterKey } from './master-key.js';
import { SEALED_TABLES, type SealedTable } from './sealed-tables.js';

/** Progress of a master key rotation. */
export interface KeyRotationProgress {
  readonly rewrapped: number;
  readonly total: number;
}

/** The outcome of a master key rotation. */
export interface KeyRotationResult {
  /** Data keys re-wrapped by this call (0 when there was nothing left to do). */
  readonly rewrapped: number;
  readonly keyId: string;
  readonly keyVersion: number;
}

interface KeyRow {
  key_id: string;
  version: number;
  retired_at: Date | null;
}

const BATCH = 500;

function lockKey(schema: string): string {
  return `wharf.master_keys.${schema}`;
}

/**
 * The master key to seal new secrets with, at its recorded version. The first key ever used is
 * registered as version 1; after that, a key other than the control database's current one is
 * refused (secrets sealed with it would be unreadable to everyone else). Call inside a transaction:
 * the key's row stays share-locked until commit, so a rotation cannot retire it underneath.
 */
export async function currentMasterKey(
  client: pg.ClientBase,
  schema: string,
  key: MasterKey,
): Promise<MasterKey> {
  const s = quotePg(schema);
  const find = async (): Promise<KeyRow | undefined> =>
    (
      await client.query<KeyRow>(
        `select key_id, version, retired_at from ${s}.master_keys where key_id = $1 for share`,
        [key.id],
      )
    ).rows[0];
  let row = await find();
  if (!row) {
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [lockKey(schema)]);
    const active = (
      await client.query<KeyRow>(
        `select key_id, version, retired_at from ${s}.master_keys where retired_at is null order by version desc limit 1`,
      )
    ).rows[0];
    if (active && active.key_id !== key.id) {
      throw new WharfError(
        `WHARF_MASTER_KEY (master key ${key.id}) is not the control database's master key (${active.key_id})`,
        {
          kind: 'terminal',
          hint: 'set WHARF_MASTER_KEY to the key in use, or move the secrets to the new key with `wharf keys rotate`',
        },
      );
    }
    await client.query(
      `insert into ${s}.master_keys (key_id, version)
       select $1, coalesce(max(version), 0) + 1 from ${s}.master_keys
       on conflict (key_id) do nothing`,
      [key.id],
    );
    row = await find();
  }
  if (!row) throw new WharfError(`cannot register master key ${key.id}`, { kind: 'transient' });
  if (row.retired_at) {
    const active = (
      await client.query<{ key_id: string }>(
        `select key_id from ${s}.master_keys where retired_at is null order by version desc limit 1`,
      )
    ).rows[0];
    throw new WharfError(`WHARF_MASTER_KEY (master key ${key.id}) was retired by a key rotation`, {
      kind: 'terminal',
      hint: `set WHARF_MASTER_KEY to the current key${active ? ` (${active.key_id})` : ''}`,
    });
  }
  return key.withVersion(row.version);
}

/** Re-wraps up to `limit` data keys of `table` still wrapped by `oldMaster`; returns how many. */
async function rewrapBatch(
  client: pg.ClientBase,
  s: string,
  table: SealedTable,
  oldMaster: MasterKey,
  newMaster: MasterKey,
  limit: number | null,
): Promise<number> {
  const columns = table.key.map(([c]) => quotePg(c));
  const t = `${s}.${quotePg(table.table)}`;
  const rows = (
    await client.query<Record<string, unknown> & { key_version: number; wrapped_key: Buffer }>(
      `select ${columns.join(', ')}, key_version, wrapped_key from ${t}
       where key_id = $1 order by ${columns.join(', ')} limit $2 for update`,
      [oldMaster.id, limit],
    )
  ).rows;
  if (rows.length === 0) return 0;
  const wrapped = rows.map((r) =>
    rewrap(oldMaster, newMaster, table.aad(r), {
      keyId: oldMaster.id,
      keyVersion: r.key_version,
      wrappedKey: r.wrapped_key,
    }),
  );
  const n = table.key.length;
  await client.query(
    `update ${t} t set wrapped_key = u.wrapped_key, key_id = $${n + 2}, key_version = $${n + 3}
     from unnest(${table.key.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ')}, $${n + 1}::bytea[])
       as u (${columns.join(', ')}, wrapped_key)
     where ${columns.map((c) => `t.${c} = u.${c}`).join(' and ')} and t.key_id = $${n + 4}`,
    [
      ...table.key.map(([c]) => rows.map((r) => r[c])),
      wrapped,
      newMaster.id,
      newMaster.version,
      oldMaster.id,
    ],
  );
  return rows.length;
}

/** The `key_id` of every sealed secret, of every table of them. */
function sealedKeyIds(s: string): string {
  return SEALED_TABLES.map((t) => `select key_id from ${s}.${quotePg(t.table)}`).join(' union all ');
}

/**
 * Moves every secret (connectors' `secrets`, reverse-ETL sources' passwords and syncs' write keys in
 * `retl_secrets`: `SEALED_TABLES`) from `oldMaster` to `newMaster`: each data key is unwrapped and wrapped
 * again, in batches, one transaction each; secret ciphertexts and plaintexts are never touched or
 * written. The new key is recorded with the next version, the old one retired once no secret uses it.
 * Safe to run again after an interruption (with both keys) and while Wharf keeps running: set
 * WHARF_MASTER_KEY to the new key and WHARF_MASTER_KEY_PREVIOUS to the old one meanwhile.
 */
export async function rotateMasterKey(
  pool: pg.Pool,
  schema: string,
  oldMaster: MasterKey,
  newMaster: MasterKey,
  onProgress?: (progress: KeyRotationProgress) => void,
): Promise<KeyRotationResult> {
  const s = quotePg(schema);
  if (oldMaster.id === newMaster.id) {
    throw new WharfError('the new master key is the same as the old one', {
      kind: 'usage',
      hint: 'create a new key with `openssl rand -base64 32`',
    });
  }
  const { total, next } = await inTransaction(pool, async (client) => {
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [lockKey(schema)]);
    const foreign = (
      await client.query<{ key_id: string; n: string }>(
        `select key_id, count(*) as n from (${sealedKeyIds(s)}) k
          where key_id <> all($1::text[]) group by key_id order by key_id`,
        [[oldMaster.id, newMaster.id]],
      )
    ).rows;
    if (foreign.length > 0) {
      throw new WharfError(
        `${foreign.map((f) => `${f.n} secret(s) are sealed with master key ${f.key_id}`).join(', ')}, neither the old key (${oldMaster.id}) nor the new one (${newMaster.id})`,
        { kind: 'terminal', hint: 'give the key those secrets were sealed with as the old key' },
      );
    }
    const known = (
      await client.query<KeyRow>(
        `select key_id, version, retired_at from ${s}.master_keys where key_id = $1`,
        [newMaster.id],
      )
    ).rows[0];
    if (known?.retired_at) {
      throw new WharfError(`master key ${newMaster.id} was retired by an earlier rotation`, {
        kind: 'usage',
        hint: 'rotate to a fresh key: `openssl rand -base64 32`',
      });
    }
    let version = known?.version;
    if (version === undefined) {
      version = (
        await client.query<{ version: number }>(
          `insert into ${s}.master_keys (key_id, version)
           select $1, coalesce(max(version), 0) + 1 from ${s}.master_keys returning version`,
          [newMaster.id],
        )
      ).rows[0]!.version;
    }
    const count = await client.query<{ n: string }>(
      `select count(*) as n from (${sealedKeyIds(s)}) k where key_id = $1`,
      [oldMaster.id],
    );
    return { total: Number(count.rows[0]!.n), next: newMaster.withVersion(version) };
  });

  let rewrapped = 0;
  onProgress?.({ rewrapped, total });
  for (const table of SEALED_TABLES) {
    for (;;) {
      const n = await inTransaction(pool, (client) => rewrapBatch(client, s, table, oldMaster, next, BATCH));
      if (n === 0) break;
      rewrapped += n;
      onProgress?.({ rewrapped, total: Math.max(total, rewrapped) });
    }
  }
  // last pass: wait for connectors, sources and syncs being added with the old key, take their secrets too,
  // retire the key
  rewrapped += await inTransaction(pool, async (client) => {
    await client.query(`select 1 from ${s}.master_keys where key_id = $1 for update`, [oldMaster.id]);
    let n = 0;
    for (const table of SEALED_TABLES) n += await rewrapBatch(client, s, table, oldMaster, next, null);
    await client.query(
      `update ${s}.master_keys set retired_at = now() where key_id = $1 and retired_at is null`,
      [oldMaster.id],
    );
    return n;
  });
  return { rewrapped, keyId: next.id, keyVersion: next.version };
}
