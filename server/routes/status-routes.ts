import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import type { Runtime } from '../../pipeline/runtime.js';
import { type ConnectorStatus, statusReport } from '../../pipeline/status.js';
import { commonErrors, connectorStatusSchema, failure, idParams, json, pageQuery } from '../api-schemas.js';
import { bearer, newRouter, type RouteGroup } from '../route-group.js';
import { canSee, type Scope, visibleConnector } from '../scope.js';

const SORTS = ['lag', 'id', 'account', 'state', 'rowsToday', 'failuresToday'] as const;
type Sort = (typeof SORTS)[number];

const statusQuery = z.object({
  q: z
    .string()
    .max(200)
    .optional()
    .meta({ description: 'keeps connectors whose id, account, engine, state or error contains it' }),
  state: z.enum(['active', 'paused', 'failing', 'disabled']).optional(),
  sort: z.enum(SORTS).default('lag'),
  order: z.enum(['asc', 'desc']).default('desc'),
  ...pageQuery,
});

const streamStatusSchema = z
  .object({
    stream: z.string(),
    lastWindow: z.string().nullable(),
    lastWindowEnd: z.string().nullable(),
    lagSeconds: z.number().nullable(),
  })
  .meta({ id: 'StreamStatus' });

const routes = {
  all: createRoute({
    method: 'get',
    path: '/v1/status',
    tags: ['status'],
    summary: 'Status of every connector (an account token: its own), filtered, sorted and paged',
    security: bearer,
    request: { query: statusQuery },
    responses: {
      200: json(
        z
          .object({
            exportedWindows: z.number(),
            exportedUpTo: z.string().nullable(),
            total: z.number().meta({ description: 'connectors that match, before paging' }),
            states: z
              .record(z.string(), z.number())
              .meta({ description: 'connectors per state (all, unfiltered)' }),
            connectors: z.array(connectorStatusSchema),
          })
          .meta({ id: 'StatusPage' }),
        'a page of connector statuses',
      ),
      400: failure('an invalid query'),
      ...commonErrors,
    },
  }),
  one: createRoute({
    method: 'get',
    path: '/v1/connectors/{id}/status',
    tags: ['status'],
    summary: "One connector's status, and per stream (a window loads every stream in one transaction)",
    security: bearer,
    request: { params: idParams },
    responses: {
      200: json(
        connectorStatusSchema
          .extend({ streams: z.array(streamStatusSchema) })
          .meta({ id: 'ConnectorStatusDetail' }),
        "the connector's status",
      ),
      404: failure('no such connector'),
      ...commonErrors,
    },
  }),
};

/** Sort key: the most behind first under `lag` desc; a connector that never loaded is the most behind of all. */
function key(s: ConnectorStatus, sort: Sort): number | string {
  switch (sort) {
    case 'lag':
      return s.state === 'disabled' ? -1 : (s.lagSeconds ?? Number.POSITIVE_INFINITY);
    case 'id':
      return Number(s.id);
    case 'account':
      return Number(s.account);
    case 'state':
      return s.state;
    default:
      return s[sort];
  }
}

function matches(s: ConnectorStatus, q: string): boolean {
  const needle = q.toLowerCase();
  return [s.id, s.account, s.engine, s.state, s.lastError ?? '', s.error ?? '', s.stateReason ?? ''].some(
    (v) => v.toLowerCase().includes(needle),
  );
}

/** The statuses the scope may see, from the control database only (no warehouse is opened). */
async function visibleStatuses(rt: Runtime, scope: Scope) {
  const report = await statusReport(rt, { warehouses: false });
  return { report, connectors: report.connectors.filter((s) => canSee(scope, s.account)) };
}

/** Status per connector (paged, filtered, sorted by lag) and per stream. */
export const statusRoutes: RouteGroup = {
  name: 'status',
  routes({ rt }) {
    const app = newRouter();
    app.openapi(routes.all, async (c) => {
      const q = c.req.valid('query');
      const { report, connectors } = await visibleStatuses(rt, c.get('scope'));
      const states: Record<string, number> = {};
      for (const s of connectors) states[s.state] = (states[s.state] ?? 0) + 1;
      const kept = connectors.filter((s) => (!q.state || s.state === q.state) && (!q.q || matches(s, q.q)));
      const sign = q.order === 'asc' ? 1 : -1;
      kept.sort((a, b) => {
        const x = key(a, q.sort);
        const y = key(b, q.sort);
        return (x < y ? -sign : x > y ? sign : 0) || Number(a.id) - Number(b.id);
      });
      return c.json(
        {
          exportedWindows: report.exportedWindows,
          exportedUpTo: report.exportedUpTo,
          total: kept.length,
          states,
          connectors: kept.slice(q.offset, q.offset + q.limit),
        },
        200,
      );
    });
    app.openapi(routes.one, async (c) => {
      const scope = c.get('scope');
      const connector = await visibleConnector(rt, scope, c.req.valid('param').id);
      const { connectors } = await visibleStatuses(rt, scope);
      const s = connectors.find((x) => x.id === String(connector.id))!;
      const streams = connector.streams.map((stream) => ({
        stream,
        lastWindow: s.lastWindow,
        lastWindowEnd: s.lastWindowEnd,
        lagSeconds: s.lagSeconds,
      }));
      return c.json({ ...s, streams }, 200);
    });
    return app;
  },
};
