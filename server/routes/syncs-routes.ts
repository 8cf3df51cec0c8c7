import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { WharfError } from '../../core/errors.js';
import {
  addSource,
  addSourceRequestSchema,
  addSync,
  addSyncRequestSchema,
  listSources,
  listSyncs,
  previewFlow,
  rotateSource,
  rotateSourceRequestSchema,
  type SourceView,
  type SyncView,
  setSyncEnabled,
  showSource,
  showSync,
  testSource,
} from '../../pipeline/retl-flows.js';
import type { Runtime } from '../../pipeline/runtime.js';
import { runSyncJob } from '../../pipeline/sync-job.js';
import { CALL_TYPES } from '../../reverse-etl/row-to-call.js';
import { checkResultSchema, commonErrors, failure, idParams, json } from '../api-schemas.js';
import { withJsonSecrets } from '../json-secrets.js';
import { bearer, newRouter, type RouteGroup } from '../route-group.js';
import { canSee, forbidden, notFound, type Scope } from '../scope.js';

const time = z.iso.datetime({ offset: true });

const sourceSchema = z
  .object({
    id: z.string(),
    account: z.string(),
    engine: z.string(),
    url: z.string().meta({ description: 'the URL without its password' }),
    state: z.string(),
    secretVersion: z.number(),
    createdAt: time,
  })
  .meta({ id: 'RetlSource' });

const syncSchema = z
  .object({
    id: z.string(),
    source: z.string(),
    account: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    type: z.string(),
    query: z.string(),
    every: z.string(),
    lookback: z.string(),
    timeout: z.string(),
    startAt: z.string(),
    deliverTo: z.string().meta({ description: 'the endpoint without its write key' }),
    state: z.string(),
    stateReason: z.string().nullable(),
    createdAt: time,
  })
  .meta({ id: 'RetlSync' });

const checksSchema = z.object({
  id: z.string(),
  checks: z.array(checkResultSchema),
  warnings: z.array(z.string()),
});

const previewSchema = z
  .object({
    sql: z.string().meta({ description: 'the SQL as sent, with its placeholder ($1 or @p1)' }),
    parameter: z
      .object({ type: z.string(), kind: z.string(), value: z.string() })
      .nullable()
      .meta({ description: 'what {{last_sync_time}} is bound to; null when the query has none' }),
    sinceMicros: z.number(),
    columns: z.array(z.object({ name: z.string(), type: z.string() })),
    rows: z.array(z.record(z.string(), z.unknown())),
    calls: z.array(z.record(z.string(), z.unknown())),
    rejected: z.array(z.object({ row: z.number(), reason: z.string() })),
  })
  .meta({ id: 'SyncPreview' });

const account = z
  .union([z.number().int().positive(), z.string().regex(/^\d{1,18}$/)])
  .transform(String)
  .optional()
  .meta({ description: 'the customer account (an account token: its own, the default)' });

const addSourceBody = withJsonSecrets(addSourceRequestSchema)
  .extend({ account })
  .meta({ id: 'AddSourceRequest' });
const rotateSourceBody = withJsonSecrets(rotateSourceRequestSchema).meta({ id: 'RotateSourceRequest' });
const addSyncBody = withJsonSecrets(addSyncRequestSchema).meta({ id: 'AddSyncRequest' });
const limitBody = z.object({ limit: z.number().int().positive().max(10_000).default(10) });
const adHocPreviewBody = z
  .object({
    source: z.union([z.number().int().nonnegative(), z.string().regex(/^\d{1,18}$/)]).transform(String),
    type: z.enum(CALL_TYPES),
    query: z.string().min(1),
    limit: z.number().int().positive().max(10_000).default(10),
  })
  .meta({ id: 'PreviewRequest' });

const body = <S extends z.ZodType>(schema: S) => ({
  body: { content: { 'application/json': { schema } }, required: true },
});
const tags = ['reverse ETL'];
const r404 = failure('no such source or sync');

const routes = {
  sources: createRoute({
    method: 'get',
    path: '/v1/sources',
    tags,
    summary: 'Reverse-ETL sources (an account token: its own)',
    security: bearer,
    responses: { 200: json(z.object({ sources: z.array(sourceSchema) }), 'the sources'), ...commonErrors },
  }),
  addSource: createRoute({
    method: 'post',
    path: '/v1/sources',
    tags,
    summary: "Add a source: a customer's warehouse to read from, checked step by step first",
    security: bearer,
    request: body(addSourceBody),
    responses: {
      201: json(checksSchema, 'added; every check passed (a user that can write is a warning)'),
      400: failure('an invalid request'),
      403: failure("an account token adding another account's source"),
      422: failure('a check failed'),
      503: failure('the warehouse could not be reached now'),
      ...commonErrors,
    },
  }),
  source: createRoute({
    method: 'get',
    path: '/v1/sources/{id}',
    tags,
    summary: 'One source (never its password)',
    security: bearer,
    request: { params: idParams },
    responses: { 200: json(sourceSchema, 'the source'), 404: r404, ...commonErrors },
  }),
  testSource: createRoute({
    method: 'post',
    path: '/v1/sources/{id}/test',
    tags,
    summary: "Check a source's connection and permissions again",
    security: bearer,
    request: { params: idParams },
    responses: {
      200: json(checksSchema, 'every check passed'),
      404: r404,
      422: failure('a check failed'),
      ...commonErrors,
    },
  }),
  rotateSource: createRoute({
    method: 'post',
    path: '/v1/sources/{id}/rotate',
    tags,
    summary: "Replace a source's credentials (checked first); its syncs go on",
    security: bearer,
    request: { params: idParams, ...body(rotateSourceBody) },
    responses: {
      200: json(sourceSchema, 'the new credentials are stored'),
      400: failure('an invalid request'),
      404: r404,
      422: failure('a check failed'),
      ...commonErrors,
    },
  }),
  syncs: createRoute({
    method: 'get',
    path: '/v1/syncs',
    tags,
    summary: 'Reverse-ETL syncs (an account token: those of its sources)',
    security: bearer,
    responses: { 200: json(z.object({ syncs: z.array(syncSchema) }), 'the syncs'), ...commonErrors },
  }),
  addSync: createRoute({
    method: 'post',
    path: '/v1/syncs',
    tags,
    summary: 'Add a sync: a query with {{last_sync_time}}, its call type, frequency and endpoint',
    security: bearer,
    request: body(addSyncBody),
    responses: {
      201: json(z.object({ id: z.string() }), 'added'),
      400: failure('an invalid request'),
      404: r404,
      ...commonErrors,
    },
  }),
  sync: createRoute({
    method: 'get',
    path: '/v1/syncs/{id}',
    tags,
    summary: 'One sync, its state and its latest runs (never its write key)',
    security: bearer,
    request: { params: idParams },
    responses: {
      200: json(syncSchema.extend({ runs: z.array(z.record(z.string(), z.unknown())) }), 'the sync'),
      404: r404,
      ...commonErrors,
    },
  }),
  enable: createRoute({
    method: 'post',
    path: '/v1/syncs/{id}/enable',
    tags,
    summary: 'Enable a sync (a parked one too)',
    security: bearer,
    request: { params: idParams },
    responses: { 200: json(syncSchema, 'enabled'), 404: r404, ...commonErrors },
  }),
  disable: createRoute({
    method: 'post',
    path: '/v1/syncs/{id}/disable',
    tags,
    summary: 'Disable a sync (it no longer runs)',
    security: bearer,
    request: { params: idParams },
    responses: { 200: json(syncSchema, 'disabled'), 404: r404, ...commonErrors },
  }),
  run: createRoute({
    method: 'post',
    path: '/v1/syncs/{id}/run',
    tags,
    summary: 'Run a sync now: read, map, stage and deliver (what `wharf retl run SYNC` does)',
    security: bearer,
    request: { params: idParams },
    responses: {
      200: json(z.record(z.string(), z.unknown()).meta({ id: 'SyncRunSummary' }), 'the run'),
      400: failure('the sync is disabled'),
      404: r404,
      409: failure('another process is running it'),
      422: failure('the run failed'),
      503: failure('the run failed for a reason that may pass'),
      ...commonErrors,
    },
  }),
  preview: createRoute({
    method: 'post',
    path: '/v1/syncs/{id}/preview',
    tags,
    summary: "Run Query: a sync's query as its next run would run it, sending nothing",
    security: bearer,
    request: { params: idParams, ...body(limitBody) },
    responses: {
      200: json(previewSchema, 'the SQL, its bound value, the rows, the calls, the rejected rows'),
      404: r404,
      422: failure('the query failed'),
      ...commonErrors,
    },
  }),
  adHoc: createRoute({
    method: 'post',
    path: '/v1/preview',
    tags,
    summary: 'Run Query for a query not saved yet: a source, a call type and the query',
    security: bearer,
    request: body(adHocPreviewBody),
    responses: {
      200: json(previewSchema, 'the SQL, its bound value, the rows, the calls, the rejected rows'),
      400: failure('an invalid request'),
      404: r404,
      422: failure('the query failed'),
      ...commonErrors,
    },
  }),
};

/** The source, when the scope may see it; another account's is "not found", like a missing one. */
async function visibleSource(rt: Runtime, scope: Scope, id: string): Promise<SourceView> {
  const source = await showSource(rt, id).catch((error: unknown) => {
    throw error instanceof WharfError && error.code === 'not_found' ? notFound('source', id) : error;
  });
  if (!canSee(scope, source.account)) throw notFound('source', id);
  return source;
}

/** The sync with the account of its source, when the scope may see it. */
async function visibleSync(rt: Runtime, scope: Scope, id: string) {
  const sync = await showSync(rt, id).catch((error: unknown) => {
    throw error instanceof WharfError && error.code === 'not_found' ? notFound('sync', id) : error;
  });
  const source = await showSource(rt, sync.source);
  if (!canSee(scope, source.account)) throw notFound('sync', id);
  return { ...sync, account: source.account };
}

const sourceJson = (s: SourceView) => ({ ...s, createdAt: s.createdAt.toISOString() });
const syncJson = (s: SyncView, account: string) => ({ ...s, account, createdAt: s.createdAt.toISOString() });

/** Reverse ETL: sources and syncs (add, list, show, enable, disable, run) and Run Query. */
export const syncsRoutes: RouteGroup = {
  name: 'syncs',
  routes({ rt }) {
    const app = newRouter();
    app.openapi(routes.sources, async (c) => {
      const scope = c.get('scope');
      const all = (await listSources(rt)).filter((s) => canSee(scope, s.account));
      return c.json({ sources: all.map(sourceJson) }, 200);
    });
    app.openapi(routes.addSource, async (c) => {
      const scope = c.get('scope');
      const b = c.req.valid('json');
      const owner = (b.account as string | undefined) ?? scope.account;
      if (owner === null) {
        return c.json(
          { error: 'invalid account: an admin token must name the account', field: 'account' },
          400,
        );
      }
      if (!canSee(scope, owner)) throw forbidden("add a source for another account's");
      const added = await addSource(rt, { ...b, account: owner } as Parameters<typeof addSource>[1]);
      return c.json(
        { id: added.id, checks: [...added.report.checks], warnings: [...added.report.warnings] },
        201,
      );
    });
    app.openapi(routes.source, async (c) =>
      c.json(sourceJson(await visibleSource(rt, c.get('scope'), c.req.valid('param').id)), 200),
    );
    app.openapi(routes.testSource, async (c) => {
      const source = await visibleSource(rt, c.get('scope'), c.req.valid('param').id);
      const report = await testSource(rt, source.id);
      return c.json({ id: source.id, checks: [...report.checks], warnings: [...report.warnings] }, 200);
    });
    app.openapi(routes.rotateSource, async (c) => {
      const source = await visibleSource(rt, c.get('scope'), c.req.valid('param').id);
      const change = c.req.valid('json') as Parameters<typeof rotateSource>[2];
      return c.json(sourceJson((await rotateSource(rt, source.id, change)).source), 200);
    });
    app.openapi(routes.syncs, async (c) => {
      const scope = c.get('scope');
      const owners = new Map((await listSources(rt)).map((s) => [s.id, s.account]));
      const all = (await listSyncs(rt))
        .map((s) => syncJson(s, owners.get(s.source) ?? ''))
        .filter((s) => canSee(scope, s.account));
      return c.json({ syncs: all }, 200);
    });
    app.openapi(routes.addSync, async (c) => {
      const b = c.req.valid('json');
      await visibleSource(rt, c.get('scope'), String(b.source));
      return c.json(await addSync(rt, b as Parameters<typeof addSync>[1]), 201);
    });
    app.openapi(routes.sync, async (c) => {
      const s = await visibleSync(rt, c.get('scope'), c.req.valid('param').id);
      return c.json(
        { ...s, createdAt: s.createdAt.toISOString(), runs: JSON.parse(JSON.stringify(s.runs)) },
        200,
      );
    });
    for (const [route, enabled] of [
      [routes.enable, true],
      [routes.disable, false],
    ] as const) {
      app.openapi(route, async (c) => {
        const s = await visibleSync(rt, c.get('scope'), c.req.valid('param').id);
        return c.json(syncJson(await setSyncEnabled(rt, s.id, enabled), s.account), 200);
      });
    }
    app.openapi(routes.run, async (c) => {
      const s = await visibleSync(rt, c.get('scope'), c.req.valid('param').id);
      const result = await runSyncJob(rt, s.id);
      if (result.status === 'skipped') {
        throw new WharfError(`sync ${s.id} is being run by another process`, {
          code: 'busy',
          hint: 'try again when that run finishes',
        });
      }
      return c.json(JSON.parse(JSON.stringify(result.summary)) as Record<string, unknown>, 200);
    });
    app.openapi(routes.preview, async (c) => {
      const s = await visibleSync(rt, c.get('scope'), c.req.valid('param').id);
      const p = await previewFlow(rt, { sync: s.id, limit: c.req.valid('json').limit });
      return c.json(JSON.parse(JSON.stringify(p)) as z.infer<typeof previewSchema>, 200);
    });
    app.openapi(routes.adHoc, async (c) => {
      const b = c.req.valid('json');
      await visibleSource(rt, c.get('scope'), b.source);
      const p = await previewFlow(rt, { source: b.source, type: b.type, query: b.query, limit: b.limit });
      return c.json(JSON.parse(JSON.stringify(p)) as z.infer<typeof previewSchema>, 200);
    });
    return app;
  },
};
