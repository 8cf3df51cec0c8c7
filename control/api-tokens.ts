import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import { UsageError, WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { quotePg } from '../db/postgres/quote.js';

type Db = pg.Pool | pg.ClientBase;

/** Who a token speaks for: every account (admin), or one account. */
export interface TokenScope {
  /** Null for an admin token. */
  readonly account: string | null;
}

/** A stored token as it may be shown: never the token nor its hash. */
export interface ApiToken extends TokenScope {
  readonly id: string;
  readonly name: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
}

/** A new token: shown once, then only its hash is kept. */
export interface CreatedToken {
  readonly id: string;
  readonly token: Secret;
}

interface TokenRow {
  id: string;
  account_id: string | null;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const PREFIX = 'wharf_';
const TOKEN_SHAPE = /^wharf_(\d{1,18})_([A-Za-z0-9_-]{43})$/;

/** The sha256 of a token's text (what is stored, and what is compared). */
export function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** True when both texts are the same, in a time that does not depend on where they differ. */
export function sameToken(given: string, expected: string): boolean {
  return timingSafeEqual(tokenHash(given), tokenHash(expected));
}

function toToken(r: TokenRow): ApiToken {
  return {
    id: String(r.id),
    account: r.account_id === null ? null : String(r.account_id),
    name: r.name,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    revokedAt: r.revoked_at,
  };
}

/**
 * The control `api_tokens` table: the only module with SQL against it. A token is `wharf_<id>_<secret>`; the
 * table keeps its sha256 only, so a token is shown once, when it is created.
 */
export class ApiTokensTable {
  readonly #t: string;

  constructor(controlSchema: string) {
    this.#t = `${quotePg(controlSchema)}.api_tokens`;
  }

  /** A new token for one account, or an admin token (`account` null). */
  async create(db: Db, scope: TokenScope, name = ''): Promise<CreatedToken> {
    if (scope.account !== null && !/^\d{1,18}$/.test(scope.account)) {
      throw new UsageError(`an account id must be a whole number, not "${scope.account}"`);
    }
    const random = randomBytes(32).toString('base64url');
    // the id is needed in the token and the token's hash in the row: insert, then set the hash
    const { rows } = await db.query<{ id: string }>(
      `insert into ${this.#t} (account_id, name, sha256) values ($1, $2, '\\x'::bytea) returning id`,
      [scope.account, name],
    );
    const id = String(rows[0]!.id);
    const token = `${PREFIX}${id}_${random}`;
    await db.query(`update ${this.#t} set sha256 = $2 where id = $1`, [id, tokenHash(token)]);
    return { id, token: new Secret(token) };
  }

  async list(db: Db): Promise<ApiToken[]> {
    const { rows } = await db.query<TokenRow>(
      `select id, account_id, name, created_at, last_used_at, revoked_at from ${this.#t} order by id`,
    );
    return rows.map(toToken);
  }

  /** Revokes a token at once; revoking it again changes nothing. */
  async revoke(db: Db, id: string): Promise<ApiToken> {
    if (!/^\d{1,18}$/.test(id)) throw new UsageError(`a token id must be a whole number, not "${id}"`);
    const { rows } = await db.query<TokenRow>(
      `update ${this.#t} set revoked_at = coalesce(revoked_at, now()) where id = $1
       returning id, account_id, name, created_at, last_used_at, revoked_at`,
      [id],
    );
    if (!rows[0]) {
      throw new WharfError(`there is no API token ${id}`, {
        kind: 'usage',
        code: 'not_found',
        hint: 'see `wharf tokens list`',
      });
    }
    return toToken(rows[0]);
  }

  /**
   * The scope of a token that is stored and not revoked, else undefined. The row is found by the id in the
   * token; its hash is compared in constant time.
   */
  async verify(db: Db, token: string): Promise<(TokenScope & { readonly id: string }) | undefined> {
    const m = TOKEN_SHAPE.exec(token);
    if (!m) return undefined;
    const { rows } = await db.query<{ account_id: string | null; sha256: Buffer; stale: boolean }>(
      `select account_id, sha256, coalesce(last_used_at < now() - interval '1 minute', true) as stale
         from ${this.#t} where id = $1 and revoked_at is null`,
      [m[1]],
    );
    const row = rows[0];
    if (!row) return undefined;
    if (row.sha256.length !== 32 || !timingSafeEqual(row.sha256, tokenHash(token))) return undefined;
    // when it was last used, to the minute (not a write per request)
    if (row.stale) await db.query(`update ${this.#t} set last_used_at = now() where id = $1`, [m[1]]);
    return { id: m[1]!, account: row.account_id === null ? null : String(row.account_id) };
  }
}
