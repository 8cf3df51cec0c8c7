import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { WHARF_VERSION } from '../../core/version.js';
import { commonErrors, json } from '../api-schemas.js';
import { bearer, newRouter } from '../route-group.js';

const route = createRoute({
  method: 'get',
  path: '/v1/session',
  tags: ['session'],
  summary: 'Who the token is (admin or one account), and which route groups this server offers',
  security: bearer,
  responses: {
    200: json(
      z
        .object({
          admin: z.boolean(),
          account: z.string().nullable(),
          groups: z.array(z.string()),
          version: z.string(),
        })
        .meta({ id: 'Session' }),
      'the caller',
    ),
    ...commonErrors,
  },
});

/** `GET /v1/session`: the console asks it first (and shows the panels of the groups listed). */
export function sessionRoutes(groups: readonly string[]) {
  const app = newRouter();
  app.openapi(route, (c) => {
    const scope = c.get('scope');
    return c.json(
      { admin: scope.account === null, account: scope.account, groups: [...groups], version: WHARF_VERSION },
      200,
    );
  });
  return app;
}
