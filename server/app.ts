import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { z } from 'zod';
import { redactUrls, type Secret } from '../core/secret.js';
import { WHARF_VERSION } from '../core/version.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { ApiEnv, ServerDeps } from './api-env.js';
import { commonErrors, json } from './api-schemas.js';
import { bearerAuth } from './auth.js';
import { loadConsoleAssets } from './console-assets.js';
import { FailedAuthLimiter } from './failed-auth-limiter.js';
import { httpError } from './http-error.js';
import { bearer, newRouter, type RouteGroup } from './route-group.js';
import { routeGroups } from './route-groups.js';
import { consoleRoutes } from './routes/console-routes.js';
import { sessionRoutes } from './routes/session-routes.js';

export interface AppOptions {
  readonly rt: Runtime;
  /** `WHARF_API_TOKEN`: an admin token besides the stored ones. */
  readonly adminToken?: Secret;
  /** Default: 10 failed authentications a minute per address. */
  readonly limiter?: FailedAuthLimiter;
  /** Default: every group of server/route-groups.ts. */
  readonly groups?: readonly RouteGroup[];
}

const openApiRoute = createRoute({
  method: 'get',
  path: '/openapi.json',
  tags: ['session'],
  summary: 'This document: OpenAPI 3.1, generated from the routes and their zod schemas',
  security: bearer,
  responses: { 200: json(z.record(z.string(), z.unknown()), 'the OpenAPI document'), ...commonErrors },
});

/** The OpenAPI 3.1 document of an app built by `createApp`. */
export function openApiDocument(app: OpenAPIHono<ApiEnv>) {
  return app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'Wharf API',
      version: WHARF_VERSION,
      description:
        "Connectors, status, run history and tokens of a Wharf installation. Every route needs `Authorization: Bearer <token>`: an admin token (WHARF_API_TOKEN or `wharf tokens create --admin`) or an account token (`wharf tokens create --account N`), which sees and changes only that account's objects.",
    },
    security: bearer,
  });
}

/**
 * The HTTP API and console over the pipeline: a shell like the CLI, calling the same flows. Every route needs
 * a bearer token; errors are `{error, field?}` with the CLI's one line; secrets never leave.
 */
export function createApp(options: AppOptions): OpenAPIHono<ApiEnv> {
  const deps: ServerDeps = {
    rt: options.rt,
    limiter: options.limiter ?? new FailedAuthLimiter(),
    ...(options.adminToken ? { adminToken: options.adminToken } : {}),
  };
  const groups = options.groups ?? routeGroups;
  const assets = loadConsoleAssets();
  const app = newRouter();
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'an admin or account token (`wharf tokens create`)',
  });
  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      const status = error.status === 413 ? 413 : 400;
      const what = status === 413 ? 'the request body is larger than 1 MiB' : redactUrls(error.message);
      // the rest of a body too large is not read: the connection cannot be used again
      if (status === 413) c.header('connection', 'close');
      return c.json({ error: `${what}; send a JSON body with content-type application/json` }, status);
    }
    const e = httpError(error);
    if (e.status >= 500 && e.status !== 503) {
      options.rt.logger.error(
        { method: c.req.method, path: c.req.path, err: e.body.error },
        'API route failed',
      );
    }
    return c.json(e.body, e.status);
  });
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}; see /openapi.json` }, 404));
  app.use('*', async (c, next) => {
    await next();
    c.header('x-content-type-options', 'nosniff');
    c.header('referrer-policy', 'no-referrer');
    c.header('cache-control', 'no-store');
  });
  app.use('*', bearerAuth(deps, assets));
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: 1024 * 1024,
      onError: () => {
        throw new HTTPException(413);
      },
    }),
  );
  for (const group of groups) app.route('/', group.routes(deps));
  app.route('/', sessionRoutes(groups.map((g) => g.name)));
  app.route('/', consoleRoutes(assets));
  let doc: unknown;
  app.openapi(openApiRoute, (c) => {
    doc ??= openApiDocument(app);
    return c.json(doc as Record<string, unknown>, 200);
  });
  return app;
}
