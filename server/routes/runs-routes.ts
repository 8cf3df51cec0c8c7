import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { type RunEntry, RunHistory } from '../../control/run-history.js';
import { lagHistory } from '../../pipeline/lag-history.js';
import { commonErrors, failure, idParams, json, runSchema } from '../api-schemas.js';
import { bearer, newRouter, type RouteGroup } from '../route-group.js';
import { visibleConnector } from '../scope.js';

const runsQuery = z.object({
  status: z.enum(['ok', 'failed', 'skipped', 'running']).optional(),
  kind: z.string().min(1).max(40).optional(),
  before: z
    .string()
    .regex(/^\d{1,18}$/)
    .optional()
    .meta({ description: 'the `next` of the previous page: runs older than this run' }),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

const runsPage = z
  .object({
    runs: z.array(runSchema),
    next: z.string().nullable().meta({ description: 'pass as `before` for the next page; null at the end' }),
  })
  .meta({ id: 'RunsPage' });

const routes = {
  all: createRoute({
    method: 'get',
    path: '/v1/runs',
    tags: ['runs'],
    summary: "Run history with errors, newest first (an account token: its connectors' runs)",
    security: bearer,
    request: {
      query: runsQuery.extend({
        connector: z
          .string()
          .regex(/^\d{1,18}$/)
          .optional(),
      }),
    },
    responses: { 200: json(runsPage, 'a page of runs'), 400: failure('an invalid query'), ...commonErrors },
  }),
  connector: createRoute({
    method: 'get',
    path: '/v1/connectors/{id}/runs',
    tags: ['runs'],
    summary: "A connector's runs, newest first",
    security: bearer,
    request: { params: idParams, query: runsQuery },
    responses: { 200: json(runsPage, 'a page of runs'), 404: failure('no such connector'), ...commonErrors },
  }),
  lag: createRoute({
    method: 'get',
    path: '/v1/connectors/{id}/lag',
    tags: ['runs'],
    summary: "A connector's lag at each load (or delivery) run over the last hours (the console's chart)",
    security: bearer,
    request: {
      params: idParams,
      query: z.object({ hours: z.coerce.number().min(0.1).max(168).default(6) }),
    },
    responses: {
      200: json(
        z
          .object({
            connector: z.string(),
            hours: z.number(),
            points: z.array(
              z.object({ at: z.string(), lagSeconds: z.number().nullable(), status: z.string() }),
            ),
          })
          .meta({ id: 'LagHistory' }),
        'one point per load run',
      ),
      404: failure('no such connector'),
      ...commonErrors,
    },
  }),
};

const entry = (r: RunEntry) => ({
  ...r,
  startedAt: r.startedAt.toISOString(),
  finishedAt: r.finishedAt?.toISOString() ?? null,
});

const page = (runs: RunEntry[], limit: number) => ({
  runs: runs.map(entry),
  next: runs.length === limit ? runs[runs.length - 1]!.id : null,
});

/** Run history (with each failure's one line) and lag history. */
export const runsRoutes: RouteGroup = {
  name: 'runs',
  routes({ rt }) {
    const app = newRouter();
    const history = new RunHistory(rt.settings.controlSchema);
    app.openapi(routes.all, async (c) => {
      const scope = c.get('scope');
      const q = c.req.valid('query');
      if (q.connector) await visibleConnector(rt, scope, q.connector);
      const runs = await history.list(await rt.control(), {
        ...(q.connector ? { connectorId: q.connector } : {}),
        ...(scope.account !== null ? { account: scope.account } : {}),
        ...(q.status ? { status: q.status } : {}),
        ...(q.kind ? { kind: q.kind } : {}),
        ...(q.before ? { before: q.before } : {}),
        limit: q.limit,
      });
      return c.json(page(runs, q.limit), 200);
    });
    app.openapi(routes.connector, async (c) => {
      const connector = await visibleConnector(rt, c.get('scope'), c.req.valid('param').id);
      const q = c.req.valid('query');
      const runs = await history.list(await rt.control(), {
        connectorId: String(connector.id),
        ...(q.status ? { status: q.status } : {}),
        ...(q.kind ? { kind: q.kind } : {}),
        ...(q.before ? { before: q.before } : {}),
        limit: q.limit,
      });
      return c.json(page(runs, q.limit), 200);
    });
    app.openapi(routes.lag, async (c) => {
      const connector = await visibleConnector(rt, c.get('scope'), c.req.valid('param').id);
      const { hours } = c.req.valid('query');
      const points = await lagHistory(rt, connector, hours);
      return c.json(
        {
          connector: String(connector.id),
          hours,
          points: points.map((p) => ({ ...p, at: p.at.toISOString() })),
        },
        200,
      );
    });
    return app;
  },
};
