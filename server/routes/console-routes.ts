import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { commonErrors, failure } from '../api-schemas.js';
import type { ConsoleAssets } from '../console-assets.js';
import { bearer, newRouter } from '../route-group.js';
import { notFound } from '../scope.js';

const text = (description: string, type: string) => ({
  description,
  content: { [type]: { schema: z.string() } },
});

const routes = {
  shell: createRoute({
    method: 'get',
    path: '/',
    tags: ['console'],
    summary: 'The console: a sign-in page that loads the rest with the token (401 without one, same page)',
    security: bearer,
    responses: { 200: text('the console page', 'text/html'), ...commonErrors },
  }),
  file: createRoute({
    method: 'get',
    path: '/console/{file}',
    tags: ['console'],
    summary: "The console's code and styles (fetched by the page with the bearer token)",
    security: bearer,
    request: {
      params: z.object({
        file: z.enum(['console.js', 'console.css']).meta({ param: { name: 'file', in: 'path' } }),
      }),
    },
    responses: {
      200: text('the file', 'text/javascript'),
      404: failure('no such file'),
      ...commonErrors,
    },
  }),
};

/** The operator console: `/` and its two files. */
export function consoleRoutes(assets: ConsoleAssets) {
  const app = newRouter();
  app.openapi(routes.shell, (c) => assets.shell(c, 200));
  app.openapi(routes.file, (c) => {
    const name = c.req.valid('param').file;
    const f = assets.file(name);
    if (!f) throw notFound('console file', name);
    return c.body(f.body, 200, { 'content-type': f.type });
  });
  return app;
}
