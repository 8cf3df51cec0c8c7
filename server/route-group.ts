import { OpenAPIHono } from '@hono/zod-openapi';
import type { ApiEnv, ServerDeps } from './api-env.js';
import { validationError } from './http-error.js';

/**
 * A group of routes (connectors, status, runs, tokens, syncs, deliveries): one file under server/routes/ and
 * one line in server/route-groups.ts. Its routes are declared with their zod schemas, so the OpenAPI document
 * follows from them.
 */
export interface RouteGroup {
  /** Listed in `GET /v1/session`, so that the console shows the panels the server offers. */
  readonly name: string;
  routes(deps: ServerDeps): OpenAPIHono<ApiEnv>;
}

/** A router whose invalid requests are answered 400 naming the field (the same for every group). */
export function newRouter(): OpenAPIHono<ApiEnv> {
  return new OpenAPIHono<ApiEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const e = validationError(result.error, result.target);
        return c.json(e.body, e.status);
      }
      return undefined;
    },
  });
}

/** `security` of every authenticated route in the document. */
export const bearer = [{ bearer: [] }];
