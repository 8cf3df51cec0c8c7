import { type ApiToken, ApiTokensTable, type CreatedToken, type TokenScope } from '../control/api-tokens.js';
import type { Runtime } from './runtime.js';

/** The tokens table on the runtime's control database, its schema migrated first. */
async function tokens(
  rt: Runtime,
): Promise<{ table: ApiTokensTable; db: Awaited<ReturnType<Runtime['control']>> }> {
  await rt.connectors(); // migrates the control schema once
  return { table: new ApiTokensTable(rt.settings.controlSchema), db: await rt.control() };
}

/** `tokens create`: a new admin or account token, returned once (only its hash is stored). */
export async function createToken(rt: Runtime, scope: TokenScope, name = ''): Promise<CreatedToken> {
  const { table, db } = await tokens(rt);
  return table.create(db, scope, name);
}

/** `tokens list`: every token (never the token itself). */
export async function listTokens(rt: Runtime): Promise<ApiToken[]> {
  const { table, db } = await tokens(rt);
  return table.list(db);
}

/** `tokens revoke`: the token stops working at once. */
export async function revokeToken(rt: Runtime, id: string): Promise<ApiToken> {
  const { table, db } = await tokens(rt);
  return table.revoke(db, id);
}

/** The scope of a stored, unrevoked token, else undefined. */
export async function verifyToken(
  rt: Runtime,
  token: string,
): Promise<(TokenScope & { readonly id: string }) | undefined> {
  const { table, db } = await tokens(rt);
  return table.verify(db, token);
}
