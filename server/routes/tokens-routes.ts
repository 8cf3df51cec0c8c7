import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import type { ApiToken } from '../../control/api-tokens.js';
import { createToken, listTokens, revokeToken } from '../../pipeline/token-flows.js';
import { apiTokenSchema, commonErrors, failure, idParams, json } from '../api-schemas.js';
import { bearer, newRouter, type RouteGroup } from '../route-group.js';
import { requireAdmin } from '../scope.js';

const createBody = z
  .object({
    account: z
      .union([z.number().int().positive(), z.string().regex(/^\d{1,18}$/)])
      .transform(String)
      .nullable()
      .meta({ description: 'the account the token acts for; null for an admin token' }),
    name: z.string().max(200).default(''),
  })
  .meta({ id: 'CreateTokenRequest' });

const adminOnly = failure('an account token: tokens are managed with an admin token');

const routes = {
  list: createRoute({
    method: 'get',
    path: '/v1/tokens',
    tags: ['tokens'],
    summary: 'List API tokens (never the tokens themselves); admin only',
    security: bearer,
    responses: {
      200: json(z.object({ tokens: z.array(apiTokenSchema) }), 'every token'),
      403: adminOnly,
      ...commonErrors,
    },
  }),
  create: createRoute({
    method: 'post',
    path: '/v1/tokens',
    tags: ['tokens'],
    summary: 'Create a token: shown in this answer only; admin only',
    security: bearer,
    request: { body: { content: { 'application/json': { schema: createBody } }, required: true } },
    responses: {
      201: json(
        z.object({ token: z.string(), id: z.string(), account: z.string().nullable() }),
        'the new token, shown this once',
      ),
      400: failure('an invalid request'),
      403: adminOnly,
      ...commonErrors,
    },
  }),
  revoke: createRoute({
    method: 'delete',
    path: '/v1/tokens/{id}',
    tags: ['tokens'],
    summary: 'Revoke a token (it stops working at once); admin only',
    security: bearer,
    request: { params: idParams },
    responses: {
      200: json(apiTokenSchema, 'revoked'),
      403: adminOnly,
      404: failure('no such token'),
      ...commonErrors,
    },
  }),
};

const view = (t: ApiToken) => ({
  ...t,
  createdAt: t.createdAt.toISOString(),
  lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
  revokedAt: t.revokedAt?.toISOString() ?? null,
});

/** API tokens: create (shown once), list, revoke. Admin tokens only. */
export const tokensRoutes: RouteGroup = {
  name: 'tokens',
  routes({ rt }) {
    const app = newRouter();
    app.openapi(routes.list, async (c) => {
      requireAdmin(c.get('scope'), 'manage tokens');
      return c.json({ tokens: (await listTokens(rt)).map(view) }, 200);
    });
    app.openapi(routes.create, async (c) => {
      requireAdmin(c.get('scope'), 'manage tokens');
      const body = c.req.valid('json');
      const created = await createToken(rt, { account: body.account }, body.name);
      return c.json({ token: created.token.reveal(), id: created.id, account: body.account }, 201);
    });
    app.openapi(routes.revoke, async (c) => {
      requireAdmin(c.get('scope'), 'manage tokens');
      return c.json(view(await revokeToken(rt, c.req.valid('param').id)), 200);
    });
    return app;
  },
};
