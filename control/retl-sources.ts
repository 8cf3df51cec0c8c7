import type pg from 'pg';
import type { ConnectionSettings, WarehouseEngine } from '../connectors/connection-url.js';
import type { MasterKeyring } from '../connectors/master-key.js';
import { UsageError, WharfError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';
import { RetlSecrets } from './retl-secrets.js';

export type RetlSourceState = 'active' | 'disabled';

/** A customer's warehouse that reverse-ETL syncs read from. Never holds the password. */
export interface RetlSource {
  readonly id: string;
  readonly account: string;
  readonly engine: WarehouseEngine;
  readonly settings: ConnectionSettings;
  readonly state: RetlSourceState;
  /** 1, then +1 on every rotation; 0 without a password. */
  readonly secretVersion: number;
  readonly createdAt: Date;
}

/** A source's settings and its decrypted password. */
export interface RetlSourceCredentials {
  readonly settings: ConnectionSettings;
  readonly password: Secret | undefined;
}

interface SourceRow {
  id: string;
  account_id: string;
  engine: WarehouseEngine;
  settings: ConnectionSettings;
  state: RetlSourceState;
  secret_version: number | null;
  created_at: Date;
}

/** A whole number id, or a usage error naming what it is. */
export function retlId(id: string | number, what: string): string {
  const text = String(id).trim();
  if (!/^\d{1,18}$/.test(text)) throw new UsageError(`${what} must be a whole number, not "${text}"`);
  return text;
}

/**
 * Reverse-ETL sources in the control database (`retl_sources`), their passwords sealed in `retl_secrets`:
 * the only code that writes SQL against `retl_sources`.
 */
export class RetlSourceStore {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #secrets: RetlSecrets;

  constructor(pool: pg.Pool, keys: MasterKeyring, schema: string) {
    this.#pool = pool;
    this.#schema = schema;
    this.#secrets = new RetlSecrets(pool, keys, schema);
  }

  /** Adds a source and its password (version 1) in one transaction. */
  async add(input: {
    readonly account: string | number;
    readonly settings: ConnectionSettings;
    readonly password?: Secret;
  }): Promise<RetlSource> {
    const account = retlId(input.account, 'the account');
    const s = quotePg(this.#schema);
    const id = await inTransaction(this.#pool, async (c) => {
      const row = await c.query<{ id: string }>(
        `insert into ${s}.retl_sources (account_id, engine, settings) values ($1, $2, $3) returning id::text`,
        [account, input.settings.engine, JSON.stringify(input.settings)],
      );
      const created = row.rows[0]!.id;
      if (input.password !== undefined)
        await this.#secrets.seal(c, 'source', created, { password: input.password });
      return created;
    });
    return this.get(id);
  }

  async get(id: string | number): Promise<RetlSource> {
    const sourceId = retlId(id, 'a source id');
    const found = (await this.#select('where r.id = $1', [sourceId]))[0];
    if (found === undefined) {
      throw new WharfError(`there is no reverse-ETL source ${sourceId}`, {
        kind: 'usage',
        code: 'not_found',
        hint: 'see `wharf retl sources list`',
      });
    }
    return found;
  }

  /** Every source, by id. */
  list(): Promise<RetlSource[]> {
    return this.#select('', []);
  }

  async credentials(id: string | number): Promise<RetlSourceCredentials> {
    const source = await this.get(id);
    const fields = await this.#secrets.open('source', source.id);
    return { settings: source.settings, password: fields.password };
  }

  /** New settings, a new password, or both (tested by the caller first); the id and the syncs stay. */
  async rotate(
    id: string | number,
    change: { readonly settings?: ConnectionSettings; readonly password?: Secret },
  ): Promise<RetlSource> {
    const source = await this.get(id);
    const kept = await this.#secrets.open('source', source.id);
    const s = quotePg(this.#schema);
    await inTransaction(this.#pool, async (c) => {
      if (change.settings !== undefined) {
        await c.query(`update ${s}.retl_sources set settings = $2, updated_at = now() where id = $1`, [
          source.id,
          JSON.stringify(change.settings),
        ]);
      }
      const password = change.password ?? kept.password;
      if (password !== undefined) await this.#secrets.seal(c, 'source', source.id, { password });
    });
    return this.get(source.id);
  }

  async #select(where: string, values: unknown[]): Promise<RetlSource[]> {
    const s = quotePg(this.#schema);
    const rows = await this.#pool.query<SourceRow>(
      `select r.id::text, r.account_id::text, r.engine, r.settings, r.state, r.created_at,
              (select max(version) from ${s}.retl_secrets x
                where x.owner_kind = 'source' and x.owner_id = r.id and x.retired_at is null) as secret_version
         from ${s}.retl_sources r ${where} order by r.id`,
      values,
    );
    return rows.rows.map((r) => ({
      id: r.id,
      account: r.account_id,
      engine: r.engine,
      settings: r.settings,
      state: r.state,
      secretVersion: r.secret_version ?? 0,
      createdAt: r.created_at,
    }));
  }
}
