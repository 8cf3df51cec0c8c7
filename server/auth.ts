import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { sameToken } from '../control/api-tokens.js';
import { verifyToken } from '../pipeline/token-flows.js';
import type { ApiEnv, ServerDeps } from './api-env.js';
import type { ConsoleAssets } from './console-assets.js';
import type { Scope } from './scope.js';

/** The client's address as the socket gives it (a proxy in front: the proxy's). */
export function clientAddress(c: Context<ApiEnv>): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The scope of a token: `WHARF_API_TOKEN` (compared in constant time), else a stored, unrevoked token. */
async function authenticate(deps: ServerDeps, token: string): Promise<Scope | undefined> {
  if (deps.adminToken && sameToken(token, deps.adminToken.reveal())) return { account: null, tokenId: 'env' };
  const stored = await verifyToken(deps.rt, token);
  return stored ? { account: stored.account, tokenId: stored.id } : undefined;
}

const BEARER = /^Bearer +([\x21-\x7e]{1,512}) *$/;

/**
 * Every route needs `Authorization: Bearer <token>`. A missing or wrong token is a 401 (for `GET /` the answer
 * is the console's sign-in page, which holds nothing of the data); a wrong one also counts against the
 * client's address, which past the limit is refused (429) before any token is checked. Failures are logged
 * with the address and the route, never the token.
 */
export function bearerAuth(deps: ServerDeps, assets: ConsoleAssets): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const address = clientAddress(c);
    const wait = deps.limiter.blockedFor(address);
    if (wait > 0) {
      c.header('retry-after', String(wait));
      return c.json(
        { error: `too many failed authentications from ${address}; try again in ${wait} s` },
        429,
      );
    }
    const m = BEARER.exec(c.req.header('authorization') ?? '');
    const scope = m ? await authenticate(deps, m[1]!) : undefined;
    if (!scope) {
      if (m) {
        deps.limiter.fail(address);
        deps.rt.logger.warn(
          { address, method: c.req.method, path: c.req.path },
          'API authentication failed: the bearer token is not valid (unknown or revoked)',
        );
      }
      c.header('www-authenticate', 'Bearer realm="wharf"');
      if (c.req.method === 'GET' && c.req.path === '/') return assets.shell(c, 401);
      return c.json(
        {
          error: m
            ? 'the bearer token is not valid (unknown or revoked); create one with `wharf tokens create`'
            : 'authentication required: send Authorization: Bearer <token>; create one with `wharf tokens create`',
        },
        401,
      );
    }
    c.set('scope', scope);
    await next();
  };
}
