import type pg from 'pg';
import { openSecret, type SealedSecret, sealSecret } from '../connectors/envelope.js';
import { currentMasterKey } from '../connectors/keys.js';
import type { MasterKeyring } from '../connectors/master-key.js';
import { retlSecretAad } from '../connectors/sealed-tables.js';
import { WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { quotePg } from '../db/postgres/quote.js';

/** Whose secret: a source's (`password`) or a sync's (`write_key`). */
export type RetlSecretOwner = 'source' | 'sync';

/** A secret's fields, decrypted. */
export type RetlSecretFields = Readonly<Record<string, Secret>>;

interface SecretRow {
  version: number;
  key_id: string;
  key_version: number;
  wrapped_key: Buffer;
  ciphertext: Buffer;
}

/** What a sealed reverse-ETL secret is bound to (its additional authenticated data). */
const aad = retlSecretAad;

/**
 * The `retl_secrets` table: a source's or a sync's secret fields as JSON, sealed in the envelope of
 * connectors' secrets (a fresh data key per version, wrapped by the master key; bound to the owner and
 * version, so a ciphertext moved to another row does not open). Versioned: sealing again retires the last.
 * `wharf keys rotate` re-wraps its data keys with connectors' (`RETL_SECRETS` in connectors/sealed-tables.ts).
 */
export class RetlSecrets {
  readonly #pool: pg.Pool;
  readonly #keys: MasterKeyring;
  readonly #schema: string;

  constructor(pool: pg.Pool, keys: MasterKeyring, schema: string) {
    this.#pool = pool;
    this.#keys = keys;
    this.#schema = schema;
  }

  /** Seals `fields` as the owner's next version (in `client`'s transaction) and retires the one before. */
  async seal(
    client: pg.ClientBase,
    owner: RetlSecretOwner,
    id: string,
    fields: RetlSecretFields,
  ): Promise<number> {
    const s = quotePg(this.#schema);
    const master = await currentMasterKey(client, this.#schema, this.#keys.current);
    const last = await client.query<{ version: number | null }>(
      `select max(version) as version from ${s}.retl_secrets where owner_kind = $1 and owner_id = $2`,
      [owner, id],
    );
    const version = (last.rows[0]?.version ?? 0) + 1;
    const payload = JSON.stringify(
      Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.reveal()])),
    );
    const sealed = sealSecret(master, aad(owner, id, version), new Secret(payload));
    await client.query(
      `update ${s}.retl_secrets set retired_at = now() where owner_kind = $1 and owner_id = $2 and retired_at is null`,
      [owner, id],
    );
    await client.query(
      `insert into ${s}.retl_secrets (owner_kind, owner_id, version, key_id, key_version, wrapped_key, ciphertext)
       values ($1, $2, $3, $4, $5, $6, $7)`,
      [owner, id, version, sealed.keyId, sealed.keyVersion, sealed.wrappedKey, sealed.ciphertext],
    );
    return version;
  }

  /** The owner's current secret fields (none when it has no secret). */
  async open(owner: RetlSecretOwner, id: string): Promise<RetlSecretFields> {
    const row = (
      await this.#pool.query<SecretRow>(
        `select version, key_id, key_version, wrapped_key, ciphertext from ${quotePg(this.#schema)}.retl_secrets
         where owner_kind = $1 and owner_id = $2 and retired_at is null order by version desc limit 1`,
        [owner, id],
      )
    ).rows[0];
    if (row === undefined) return {};
    const { current, previous } = this.#keys;
    const master = [current, previous].find((k) => k?.id === row.key_id) ?? current;
    const sealed: SealedSecret = {
      keyId: row.key_id,
      keyVersion: row.key_version,
      wrappedKey: row.wrapped_key,
      ciphertext: row.ciphertext,
    };
    try {
      const payload = JSON.parse(openSecret(master, aad(owner, id, row.version), sealed).reveal()) as Record<
        string,
        string
      >;
      return Object.fromEntries(Object.entries(payload).map(([k, v]) => [k, new Secret(v)]));
    } catch (error) {
      throw new WharfError(`cannot decrypt the secret of ${owner} ${id}: wrong master key or tampered data`, {
        kind: 'terminal',
        code: 'WHARF_SECRET_UNREADABLE',
        cause: error,
        hint:
          master.id === row.key_id
            ? `set WHARF_MASTER_KEY to the key it was sealed with${owner === 'source' ? `, or enter the password again: wharf retl sources rotate ${id}` : ''}`
            : `it was sealed with master key ${row.key_id}; set WHARF_MASTER_KEY (or WHARF_MASTER_KEY_PREVIOUS during a rotation) to that key`,
      });
    }
  }
}
