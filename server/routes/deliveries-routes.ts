import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { type DeliveryRecord, listDeliveries } from '../../control/deliveries.js';
import { UsageError } from '../../core/errors.js';
import { commonErrors, failure, idParams, json } from '../api-schemas.js';
import { bearer, newRouter, type RouteGroup } from '../route-group.js';
import { visibleConnector } from '../scope.js';

const deliverySchema = z
  .object({
    id: z.string(),
    baseId: z
      .string()
      .meta({ description: 'the id without its revision: the same for a delivery and its replays' }),
    revision: z.number(),
    start: z.string(),
    end: z.string(),
    windows: z.array(z.string()),
    status: z.enum(['pending', 'done']),
    manifestKey: z
      .string()
      .nullable()
      .meta({ description: 'null when the delivery had no rows (nothing written)' }),
    files: z.number(),
    rows: z.number(),
    bytes: z.number(),
  })
  .meta({ id: 'Delivery' });

const route = createRoute({
  method: 'get',
  path: '/v1/connectors/{id}/deliveries',
  tags: ['deliveries'],
  summary: "A bucket connector's deliveries, newest first (what was written to the customer's bucket)",
  security: bearer,
  request: {
    params: idParams,
    query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) }),
  },
  responses: {
    200: json(z.object({ deliveries: z.array(deliverySchema) }).meta({ id: 'Deliveries' }), 'its deliveries'),
    400: failure('a warehouse connector (it loads windows; see its runs)'),
    404: failure('no such connector'),
    ...commonErrors,
  },
});

const view = (d: DeliveryRecord) => ({
  id: d.id,
  baseId: d.baseId,
  revision: d.revision,
  start: d.start.toISOString(),
  end: d.end.toISOString(),
  windows: [...d.windows],
  status: d.status,
  manifestKey: d.outcome.manifestKey ?? null,
  files: d.outcome.files,
  rows: d.outcome.rows,
  bytes: d.outcome.bytes,
});

/** Bucket deliveries: each delivery's windows, objects, rows and bytes, and whether it is done. */
export const deliveriesRoutes: RouteGroup = {
  name: 'deliveries',
  routes({ rt }) {
    const app = newRouter();
    app.openapi(route, async (c) => {
      const connector = await visibleConnector(rt, c.get('scope'), c.req.valid('param').id);
      if (connector.family !== 'bucket') {
        throw new UsageError(
          `connector ${connector.id} is a warehouse connector: it has loads, not deliveries`,
          `see /v1/connectors/${connector.id}/runs`,
        );
      }
      const records = await listDeliveries(
        await rt.control(),
        rt.settings.controlSchema,
        String(connector.id),
        c.req.valid('query').limit,
      );
      return c.json({ deliveries: records.map(view) }, 200);
    });
    return app;
  },
};
