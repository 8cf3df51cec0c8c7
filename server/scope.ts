import type { Connector } from '../connectors/connector-store.js';
import { WharfError } from '../core/errors.js';
import type { Runtime } from '../pipeline/runtime.js';

/** Who is calling: an admin (every account) or one account's token. */
export interface Scope {
  /** Null for an admin token. */
  readonly account: string | null;
  /** The stored token's id; `env` for `WHARF_API_TOKEN`. */
  readonly tokenId: string;
}

/** A 404 that says nothing of whether the object exists for someone else. */
export function notFound(what: string, id: string): WharfError {
  return new WharfError(`there is no ${what} ${id}`, { code: 'not_found' });
}

/** A 403: the token may not do this at all (not about one object). */
export function forbidden(what: string): WharfError {
  return new WharfError(`this token cannot ${what}`, { code: 'forbidden', hint: 'use an admin token' });
}

/** True when the scope may see objects of this account. */
export function canSee(scope: Scope, account: string | number): boolean {
  return scope.account === null || scope.account === String(account);
}

/** Refuses an account token (routes about every account: tokens, the export). */
export function requireAdmin(scope: Scope, what: string): void {
  if (scope.account !== null) throw forbidden(what);
}

/** The connector, when the scope may see it; another account's connector is "not found", like a missing one. */
export async function visibleConnector(rt: Runtime, scope: Scope, id: string): Promise<Connector> {
  let connector: Connector;
  try {
    connector = await (await rt.connectors()).get(id);
  } catch (error) {
    if (error instanceof WharfError && error.code === 'not_found') throw notFound('connector', id);
    throw error;
  }
  if (!canSee(scope, connector.account)) throw notFound('connector', id);
  return connector;
}
