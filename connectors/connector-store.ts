import type pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import { UsageError, WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';
import type { ConnectionSettings } from './connection-url.js';
import { cannotDecrypt, openSecret, type SealedSecret, sealSecret } from './envelope.js';
import { currentMasterKey } from './keys.js';
import type { MasterKey, MasterKeyring } from './master-key.js';

export type ConnectorState = 'active' | 'paused' | 'failing' | 'disabled';
export type ConnectorFormat = 'csv' | 'parquet' | 'json';

/** Warehouses (PostgreSQL, SQL Server) and buckets: an account has at most one active connector of each. */
export type ConnectorFamily = 'warehouse' | 'bucket';

/**
 * A kind's settings as stored (JSON in the control database): where the destination is, never a secret.
 * Every kind's settings name the kind in `engine`; the rest is the kind's own (see destinations/).
 */
// biome-ignore lint/suspicious/noExplicitAny: the shape is the destination kind's own; its code reads it
export type StoredSettings = Readonly<Record<string, any>> & { readonly engine: string };

/** A connector's secret fields (a warehouse password, a bucket's secret key), decrypted. */
export type SecretFields = Readonly<Record<string, Secret>>;

/** A connector as stored: one customer account → one destination. Never holds a secret. */
export interface Connector {
  readonly id: string;
  readonly account: string;
  /** The destination kind: `postgres`, `mssql`, `bucket`. */
  readonly engine: string;
  readonly family: ConnectorFamily;
  readonly settings: StoredSettings;
  readonly streams: readonly string[];
  readonly format: ConnectorFormat;
  readonly state: ConnectorState;
  readonly stateReason: string | undefined;
  /** The warehouse schema the streams are loaded into (default `tracking`). */
  readonly schema: string;
  /** The secret version in use (1, then +1 on every `rotate`). */
  readonly secretVersion: number;
  readonly createdAt: Date;
}

export interface AddConnectorInput {
  readonly account: string | number;
  readonly settings: StoredSettings | ConnectionSettings;
  /** Default `warehouse`. */
  readonly family?: ConnectorFamily;
  /** The secret fields; `password` is a shorthand for `{ password }`. */
  readonly secret?: SecretFields;
  readonly password?: Secret;
  /** Warehouse schema; default `tracking`. */
  readonly schema?: string;
  /** Streams to load; default every stream of the catalog. */
  readonly streams?: readonly string[];
  readonly format?: ConnectorFormat;
}

/** What `rotate` changes: new settings (from a new URL), new secret fields, or both. */
export interface RotateInput {
  readonly settings?: StoredSettings | ConnectionSettings;
  /** Replaces these secret fields; the others are kept. */
  readonly secret?: SecretFields;
  readonly password?: Secret;
}

/** What a connector needs to connect: its settings and secret fields (`password` is `secret.password`). */
export interface Credentials {
  readonly settings: StoredSettings;
  readonly secret: SecretFields;
  readonly password?: Secret;
}

interface ConnectorRow {
  id: string;
  account_id: string;
  engine: string;
  family: ConnectorFamily;
  settings: StoredSettings;
  streams: string[];
  format: ConnectorFormat;
  state: ConnectorState;
  state_reason: string | null;
  schema: string;
  secret_version: number | null;
  created_at: Date;
}

interface SecretRow {
  version: number;
  key_id: string;
  key_version: number;
  wrapped_key: Buffer;
  ciphertext: Buffer;
}

/** The sealed payload: JSON of the secret fields (`{"password": …}`, `{"secretAccessKey": …}`). */
type SecretPayload = Record<string, string>;

const FAMILIES: readonly ConnectorFamily[] = ['warehouse', 'bucket'];

function secretFields(payload: SecretPayload): SecretFields {
  return Object.fromEntries(Object.entries(payload).map(([k, v]) => [k, new Secret(v)]));
}

function toCredentials(settings: StoredSettings, secret: SecretFields): Credentials {
  return secret.password === undefined
    ? { settings, secret }
    : { settings, secret, password: secret.password };
}

const STATES: readonly ConnectorState[] = ['active', 'paused', 'failing', 'disabled'];
const FORMATS: readonly ConnectorFormat[] = ['csv', 'parquet', 'json'];

function toConnector(row: ConnectorRow): Connector {
  return {
    id: row.id,
    account: row.account_id,
    engine: row.engine,
    family: row.family,
    settings: row.settings,
    streams: row.streams,
    format: row.format,
    state: row.state,
    stateReason: row.state_reason ?? undefined,
    schema: row.schema,
    secretVersion: row.secret_version ?? 0,
    createdAt: row.created_at,
  };
}

function noSuchConnector(id: string): WharfError {
  return new WharfError(`there is no connector ${id}`, {
    kind: 'usage',
    code: 'not_found',
    context: { connector: id },
    hint: 'see `wharf connectors list`',
  });
}

function checkId(id: string | number, what: string): string {
  const text = String(id).trim();
  if (!/^\d{1,18}$/.test(text)) throw new UsageError(`${what} must be a whole number, not "${text}"`);
  return text;
}

/**
 * Connectors and their encrypted secrets in the control database (schema `wharf` by default).
 * Secrets are sealed with the current master key and never leave this class except as a `Secret`.
 */
export class ConnectorStore {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #keys: MasterKeyring;

  constructor(pool: pg.Pool, keys: MasterKeyring | MasterKey, schema = 'wharf') {
    this.#pool = pool;
    this.#keys = 'current' in keys ? keys : { current: keys };
    this.#schema = schema;
  }

  get #s(): string {
    return quotePg(this.#schema);
  }

  /**
   * Adds a connector and its secret (version 1) in one transaction. One active connector per
   * account: a second one fails with the command that disables the first.
   */
  async add(input: AddConnectorInput): Promise<Connector> {
    const account = checkId(input.account, 'the account');
    const streams = input.streams ?? trackingCatalog.streams.map((s) => s.name);
    const known = new Set(trackingCatalog.streams.map((s) => s.name));
    const unknown = streams.filter((s) => !known.has(s));
    if (unknown.length > 0 || streams.length === 0) {
      throw new UsageError(
        unknown.length > 0
          ? `unknown stream(s): ${unknown.join(', ')}`
          : 'a connector needs at least one stream',
        `choose from ${[...known].join(', ')}`,
      );
    }
    const format = input.format ?? 'csv';
    if (!FORMATS.includes(format))
      throw new UsageError(`unknown format "${format}"`, `use ${FORMATS.join(', ')}`);
    const schema = input.schema ?? 'tracking';
    if (schema.trim() === '') throw new UsageError('the warehouse schema name is empty');
    const family = input.family ?? 'warehouse';
    if (!FAMILIES.includes(family)) throw new UsageError(`unknown connector family "${family}"`);
    const secret: SecretFields = { ...(input.password ? { password: input.password } : {}), ...input.secret };
    const s = this.#s;
    return inTransaction(this.#pool, async (client) => {
      const master = await currentMasterKey(client, this.#schema, this.#keys.current);
      let id: string;
      await client.query('savepoint add_connector');
      try {
        const inserted = await client.query<{ id: string }>(
          `insert into ${s}.connectors (account_id, engine, family, settings, streams, format, schema)
           values ($1, $2, $3, $4, $5, $6, $7) returning id`,
          [account, input.settings.engine, family, JSON.stringify(input.settings), streams, format, schema],
        );
        id = inserted.rows[0]!.id;
      } catch (error) {
        if ((error as { code?: string }).code !== '23505') throw error;
        await client.query('rollback to savepoint add_connector');
        throw await this.#duplicate(client, account, family);
      }
      await this.#insertSecret(client, id, 1, master, secret);
      return this.#read(client, id);
    });
  }

  async #duplicate(
    client: pg.ClientBase | pg.Pool,
    account: string,
    family: ConnectorFamily,
  ): Promise<WharfError> {
    const existing = await client.query<{ id: string }>(
      `select id from ${this.#s}.connectors where account_id = $1 and family = $2 and state <> 'disabled' order by id limit 1`,
      [account, family],
    );
    const other = existing.rows[0]?.id ?? '?';
    const what = family === 'warehouse' ? 'connector' : `${family} connector`;
    return new WharfError(`account ${account} already has active ${what} ${other}`, {
      kind: 'terminal',
      code: '23505',
      context: { account },
      hint: `disable it first: wharf connectors disable ${other}`,
    });
  }

  async #insertSecret(
    client: pg.ClientBase,
    connectorId: string,
    version: number,
    master: MasterKey,
    secret: SecretFields,
  ): Promise<void> {
    const payload: SecretPayload = Object.fromEntries(
      Object.entries(secret).map(([k, v]) => [k, v.reveal()]),
    );
    const sealed = sealSecret(master, { connectorId, version }, new Secret(JSON.stringify(payload)));
    await client.query(
      `insert into ${this.#s}.secrets (connector_id, version, key_id, key_version, wrapped_key, ciphertext)
       values ($1, $2, $3, $4, $5, $6)`,
      [connectorId, version, sealed.keyId, sealed.keyVersion, sealed.wrappedKey, sealed.ciphertext],
    );
  }

  async #read(client: pg.ClientBase | pg.Pool, id: string): Promise<Connector> {
    const rows = await this.#select(client, 'where c.id = $1', [id]);
    if (!rows[0]) throw noSuchConnector(id);
    return rows[0];
  }

  async #select(client: pg.ClientBase | pg.Pool, where: string, values: unknown[]): Promise<Connector[]> {
    const s = this.#s;
    const result = await client.query<ConnectorRow>(
      `select c.id, c.account_id, c.engine, c.family, c.settings, c.streams, c.format, c.state, c.state_reason, c.schema,
              c.created_at,
              (select max(version) from ${s}.secrets x where x.connector_id = c.id and x.retired_at is null) as secret_version
       from ${s}.connectors c ${where} order by c.id`,
      values,
    );
    return result.rows.map(toConnector);
  }

  /** One connector; a missing id is a clear error. */
  async get(id: string | number): Promise<Connector> {
    return this.#read(this.#pool, checkId(id, 'a connector id'));
  }

  /** Every connector (disabled ones too), by id. */
  async list(): Promise<Connector[]> {
    return this.#select(this.#pool, '', []);
  }

  /** Settings and the decrypted secret fields of the connector's current secret version. */
  async credentials(id: string | number): Promise<Credentials> {
    const connectorId = checkId(id, 'a connector id');
    const connector = await this.get(connectorId);
    const result = await this.#pool.query<SecretRow>(
      `select version, key_id, key_version, wrapped_key, ciphertext from ${this.#s}.secrets
       where connector_id = $1 and retired_at is null order by version desc limit 1`,
      [connectorId],
    );
    const row = result.rows[0];
    if (!row) {
      throw new WharfError(`connector ${connectorId} has no current secret`, {
        context: { connector: connectorId },
        hint: `set one with \`wharf connectors rotate ${connectorId}\``,
      });
    }
    return toCredentials(connector.settings, secretFields(this.#open(connectorId, row)));
  }

  #open(connectorId: string, row: SecretRow): SecretPayload {
    const { current, previous } = this.#keys;
    const master = [current, previous].find((k) => k?.id === row.key_id) ?? current;
    const sealed: SealedSecret = {
      keyId: row.key_id,
      keyVersion: row.key_version,
      wrappedKey: row.wrapped_key,
      ciphertext: row.ciphertext,
    };
    const secret = openSecret(master, { connectorId, version: row.version }, sealed);
    try {
      return JSON.parse(secret.reveal()) as SecretPayload;
    } catch {
      throw cannotDecrypt(connectorId);
    }
  }

  /**
   * Replaces the connector's secret (new version n+1, the old one retired) and, when given, its
   * settings. The connector keeps its id, so its warehouse ledger and run history carry on.
   * Secret fields not given are kept (e.g. a new host, the same password).
   */
  async rotate(id: string | number, change: RotateInput): Promise<Connector> {
    const connectorId = checkId(id, 'a connector id');
    const s = this.#s;
    return inTransaction(this.#pool, async (client) => {
      const locked = await client.query<{ engine: string }>(
        `select engine from ${s}.connectors where id = $1 for update`,
        [connectorId],
      );
      const engine = locked.rows[0]?.engine;
      if (engine === undefined) throw noSuchConnector(connectorId);
      if (change.settings && change.settings.engine !== engine) {
        throw new UsageError(
          `connector ${connectorId} loads into ${engine}, not ${change.settings.engine}`,
          'add a new connector for another engine (disable this one first)',
        );
      }
      const current = await client.query<SecretRow>(
        `select version, key_id, key_version, wrapped_key, ciphertext from ${s}.secrets
         where connector_id = $1 order by version desc limit 1`,
        [connectorId],
      );
      const last = current.rows[0];
      const kept = last && last.ciphertext.length > 0 ? secretFields(this.#open(connectorId, last)) : {};
      const secret: SecretFields = {
        ...kept,
        ...change.secret,
        ...(change.password ? { password: change.password } : {}),
      };
      const master = await currentMasterKey(client, this.#schema, this.#keys.current);
      const version = (last?.version ?? 0) + 1;
      await client.query(
        `update ${s}.secrets set retired_at = now() where connector_id = $1 and retired_at is null`,
        [connectorId],
      );
      await this.#insertSecret(client, connectorId, version, master, secret);
      await client.query(
        `update ${s}.connectors set settings = coalesce($2::jsonb, settings), updated_at = now() where id = $1`,
        [connectorId, change.settings ? JSON.stringify(change.settings) : null],
      );
      return this.#read(client, connectorId);
    });
  }

  /** Disables a connector: it is no longer loaded, and its account may get a new connector. */
  async disable(id: string | number, reason?: string): Promise<Connector> {
    return this.setState(id, 'disabled', reason);
  }

  /** Sets a connector's state (and the reason, shown by `connectors show` and `status`). */
  async setState(id: string | number, state: ConnectorState, reason?: string): Promise<Connector> {
    const connectorId = checkId(id, 'a connector id');
    if (!STATES.includes(state))
      throw new UsageError(`unknown connector state "${state}"`, `use ${STATES.join(', ')}`);
    try {
      const updated = await this.#pool.query<{ account_id: string }>(
        `update ${this.#s}.connectors set state = $2, state_reason = $3, updated_at = now() where id = $1 returning account_id`,
        [connectorId, state, reason ?? null],
      );
      if (updated.rowCount === 0) throw noSuchConnector(connectorId);
    } catch (error) {
      if ((error as { code?: string }).code !== '23505') throw error;
      const row = (
        await this.#pool.query<{ account_id: string; family: ConnectorFamily }>(
          `select account_id, family from ${this.#s}.connectors where id = $1`,
          [connectorId],
        )
      ).rows[0];
      throw await this.#duplicate(this.#pool, row?.account_id ?? '?', row?.family ?? 'warehouse');
    }
    return this.get(connectorId);
  }
}
