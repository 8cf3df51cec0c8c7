import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { trackingCatalog } from '../../catalog/tracking.js';
import { WharfError } from '../../core/errors.js';
import { destinationRequestSchema } from '../../destinations/destination-kind.js';
import { destinationNames } from '../../destinations/registry.js';
import {
  type AddConnectorRequest,
  addConnector,
  connectorView,
  rotateConnector,
  testConnector,
} from '../../pipeline/connector-flows.js';
import { runConnectors } from '../../pipeline/connectors-run.js';
import type { ServerDeps } from '../api-env.js';
import {
  checkResultSchema,
  commonErrors,
  connectorSchema,
  connectorWorkSchema,
  failure,
  idParams,
  json,
  pageQuery,
} from '../api-schemas.js';
import { withJsonSecrets } from '../json-secrets.js';
import { bearer, newRouter, type RouteGroup } from '../route-group.js';
import { canSee, forbidden, visibleConnector } from '../scope.js';

const accountId = z
  .union([z.number().int().positive(), z.string().regex(/^\d{1,18}$/, 'an account id is a whole number')])
  .transform(String)
  .meta({ description: 'the customer account id (an account token: its own account, the default)' });

const streamNames = trackingCatalog.streams.map((s) => s.name) as [string, ...string[]];

/** `POST /v1/connectors`: what `wharf connectors add` takes, with secrets as strings. */
export const addConnectorBody = withJsonSecrets(destinationRequestSchema)
  .extend({
    account: accountId.optional(),
    engine: z.enum(destinationNames as [string, ...string[]]),
    schema: z.string().min(1).default('tracking'),
    streams: z.array(z.enum(streamNames)).min(1).optional().meta({ description: 'default: every stream' }),
    format: z.enum(['csv', 'parquet', 'json']).default('csv'),
    allowUnknownAccount: z
      .boolean()
      .default(false)
      .meta({ description: 'store it even when the account is not in the source yet' }),
  })
  .meta({ id: 'AddConnectorRequest' });

/** `POST /v1/connectors/{id}/rotate`: new credentials (a new URL, new secret fields, or both). */
export const rotateBody = withJsonSecrets(destinationRequestSchema)
  .partial()
  .refine((b) => Object.values(b).some((v) => v !== undefined), {
    message: 'give a new url, password or secretAccessKey',
  })
  .meta({ id: 'RotateConnectorRequest' });

/** `POST /v1/connectors/{id}/replay`: the range to reload from the stored files. */
export const replayBody = z
  .object({
    from: z.iso.datetime({ offset: true }).optional().meta({ description: 'windows ending after this time' }),
    to: z.iso
      .datetime({ offset: true })
      .optional()
      .meta({ description: 'windows starting before this time' }),
  })
  .meta({ id: 'ReplayRequest' });

const jsonBody = <S extends z.ZodType>(schema: S) => ({
  body: { content: { 'application/json': { schema } }, required: true },
});

const routes = {
  list: createRoute({
    method: 'get',
    path: '/v1/connectors',
    tags: ['connectors'],
    summary: 'List connectors (an account token: its own)',
    security: bearer,
    request: {
      query: z.object({
        account: z
          .string()
          .regex(/^\d{1,18}$/)
          .optional(),
        state: z.enum(['active', 'paused', 'failing', 'disabled']).optional(),
        ...pageQuery,
      }),
    },
    responses: {
      200: json(
        z.object({ total: z.number(), connectors: z.array(connectorSchema) }),
        'a page of connectors',
      ),
      400: failure('an invalid query'),
      ...commonErrors,
    },
  }),
  add: createRoute({
    method: 'post',
    path: '/v1/connectors',
    tags: ['connectors'],
    summary: 'Add a connector: check the destination step by step, prepare it, store it',
    security: bearer,
    request: jsonBody(addConnectorBody),
    responses: {
      201: json(
        z.object({ id: z.string(), target: z.string(), checks: z.array(checkResultSchema) }),
        'added; every check step passed',
      ),
      400: failure('an invalid request, or the account already has an active connector'),
      403: failure("an account token adding another account's connector"),
      422: failure('a check failed: `checks` has every step, `error` the first failure and its fix'),
      503: failure('the destination could not be reached now; try again'),
      ...commonErrors,
    },
  }),
  show: createRoute({
    method: 'get',
    path: '/v1/connectors/{id}',
    tags: ['connectors'],
    summary: 'One connector (never its secret)',
    security: bearer,
    request: { params: idParams },
    responses: {
      200: json(connectorSchema, 'the connector'),
      404: failure('no such connector'),
      ...commonErrors,
    },
  }),
  test: createRoute({
    method: 'post',
    path: '/v1/connectors/{id}/test',
    tags: ['connectors'],
    summary: "Test a connector's connection and permissions; a parked connector becomes active",
    security: bearer,
    request: { params: idParams },
    responses: {
      200: json(
        z.object({ id: z.string(), ok: z.literal(true), checks: z.array(checkResultSchema) }),
        'every check passed',
      ),
      404: failure('no such connector'),
      422: failure('a check failed'),
      503: failure('the destination could not be reached now'),
      ...commonErrors,
    },
  }),
  rotate: createRoute({
    method: 'post',
    path: '/v1/connectors/{id}/rotate',
    tags: ['connectors'],
    summary: "Replace a connector's credentials (tested first); its ledger and history go on",
    security: bearer,
    request: { params: idParams, ...jsonBody(rotateBody) },
    responses: {
      200: json(connectorSchema, 'the new credentials are stored'),
      400: failure('an invalid request'),
      404: failure('no such connector'),
      422: failure('a check of the new credentials failed'),
      503: failure('the destination could not be reached now'),
      ...commonErrors,
    },
  }),
  disable: createRoute({
    method: 'post',
    path: '/v1/connectors/{id}/disable',
    tags: ['connectors'],
    summary: 'Disable a connector (its warehouse and ledger are kept)',
    security: bearer,
    request: { params: idParams },
    responses: { 200: json(connectorSchema, 'disabled'), 404: failure('no such connector'), ...commonErrors },
  }),
  load: createRoute({
    method: 'post',
    path: '/v1/connectors/{id}/load',
    tags: ['connectors'],
    summary: 'Load what the connector has not loaded yet, now (what `wharf load --connector` does)',
    security: bearer,
    request: { params: idParams },
    responses: {
      200: json(connectorWorkSchema, 'loaded or delivered (possibly nothing new)'),
      404: failure('no such connector'),
      409: failure('another process is loading it; try again when it finishes'),
      422: failure('the load failed'),
      503: failure('the load failed for a reason that may pass; try again'),
      ...commonErrors,
    },
  }),
  replay: createRoute({
    method: 'post',
    path: '/v1/connectors/{id}/replay',
    tags: ['connectors'],
    summary: "Reload a range of the connector's windows from the stored files (idempotent)",
    security: bearer,
    request: { params: idParams, ...jsonBody(replayBody) },
    responses: {
      200: json(connectorWorkSchema, 'replayed (reloaded, or delivered again as new revisions)'),
      400: failure('an invalid range'),
      404: failure('no such connector'),
      409: failure('another process is loading it'),
      422: failure('the replay failed'),
      503: failure('the replay failed for a reason that may pass'),
      ...commonErrors,
    },
  }),
};

/** A connector's job run now (a warehouse's load, a bucket's deliveries); "skipped" (its lock is held elsewhere) is a 409. */
async function runNow(deps: ServerDeps, id: string, replay?: { from?: Date; to?: Date }) {
  const result = await runConnectors(deps.rt, { connector: id, ...(replay ? { replay } : {}) });
  const load = result.connectors[0];
  if (load) {
    return {
      family: 'warehouse' as const,
      ...load,
      lastWindowEnd: load.lastWindowEnd?.toISOString() ?? null,
    };
  }
  const delivery = result.deliveries[0];
  if (delivery && !delivery.skipped) return { family: 'bucket' as const, ...delivery };
  throw new WharfError(`connector ${id} is being loaded by another process`, {
    code: 'busy',
    hint: 'try again when that load finishes',
  });
}

const view = (c: Parameters<typeof connectorView>[0]) => {
  const v = connectorView(c);
  return { ...v, streams: [...v.streams], createdAt: v.createdAt.toISOString() };
};

/** Connectors: add (each check step's result), list, show, test, rotate, disable, load, replay. */
export const connectorsRoutes: RouteGroup = {
  name: 'connectors',
  routes(deps) {
    const { rt } = deps;
    const app = newRouter();
    app.openapi(routes.list, async (c) => {
      const scope = c.get('scope');
      const q = c.req.valid('query');
      const all = (await (await rt.connectors()).list()).filter(
        (x) =>
          canSee(scope, x.account) &&
          (q.account === undefined || x.account === q.account) &&
          (q.state === undefined || x.state === q.state),
      );
      return c.json(
        { total: all.length, connectors: all.slice(q.offset, q.offset + q.limit).map(view) },
        200,
      );
    });
    app.openapi(routes.add, async (c) => {
      const scope = c.get('scope');
      const body = c.req.valid('json');
      const account = (body.account as string | undefined) ?? scope.account;
      if (account === null || account === undefined) {
        return c.json(
          {
            error:
              "invalid account: an admin token must name the account (an account token: its own); see /openapi.json for the request's shape",
            field: 'account',
          },
          400,
        );
      }
      if (!canSee(scope, account)) throw forbidden("add a connector for another account's");
      const request = {
        ...body,
        account,
        streams: body.streams ?? rt.catalog.streams.map((s) => s.name),
      } as unknown as AddConnectorRequest;
      const result = await addConnector(rt, request);
      return c.json({ id: result.id, target: result.checks.target, checks: [...result.checks.checks] }, 201);
    });
    app.openapi(routes.show, async (c) => {
      return c.json(view(await visibleConnector(rt, c.get('scope'), c.req.valid('param').id)), 200);
    });
    app.openapi(routes.test, async (c) => {
      const connector = await visibleConnector(rt, c.get('scope'), c.req.valid('param').id);
      const report = await testConnector(rt, connector.id);
      return c.json({ id: report.id, ok: true as const, checks: [...report.checks] }, 200);
    });
    app.openapi(routes.rotate, async (c) => {
      const connector = await visibleConnector(rt, c.get('scope'), c.req.valid('param').id);
      const change = c.req.valid('json') as Parameters<typeof rotateConnector>[2];
      return c.json(view(await rotateConnector(rt, connector.id, change)), 200);
    });
    app.openapi(routes.disable, async (c) => {
      const connector = await visibleConnector(rt, c.get('scope'), c.req.valid('param').id);
      return c.json(view(await (await rt.connectors()).disable(connector.id)), 200);
    });
    app.openapi(routes.load, async (c) => {
      const connector = await visibleConnector(rt, c.get('scope'), c.req.valid('param').id);
      return c.json(await runNow(deps, connector.id), 200);
    });
    app.openapi(routes.replay, async (c) => {
      const connector = await visibleConnector(rt, c.get('scope'), c.req.valid('param').id);
      const body = c.req.valid('json');
      const range = {
        ...(body.from ? { from: new Date(body.from) } : {}),
        ...(body.to ? { to: new Date(body.to) } : {}),
      };
      return c.json(await runNow(deps, connector.id, range), 200);
    });
    return app;
  },
};
