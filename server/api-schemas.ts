import { z } from 'zod';

/** Every error answer. */
export const errorSchema = z
  .object({
    error: z.string().meta({ description: 'one line: what failed, where, what to do (what the CLI prints)' }),
    field: z.string().optional().meta({ description: 'the request field at fault (400)' }),
    checks: z.array(z.unknown()).optional().meta({ description: 'every check step, when checks failed' }),
  })
  .meta({ id: 'Error' });

/** A connector or token id in a path. */
export const idParams = z.object({
  id: z
    .string()
    .regex(/^\d{1,18}$/, 'an id is a whole number')
    .meta({ param: { name: 'id', in: 'path' }, example: '12' }),
});

/** `?limit=&offset=` of a list. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  offset: z.coerce.number().int().min(0).default(0),
};

const time = z.iso.datetime({ offset: true });
const nullableTime = time.nullable();

/** One check step of a destination. */
export const checkResultSchema = z
  .object({
    name: z.string(),
    ok: z.boolean(),
    durationMs: z.number(),
    message: z.string().optional(),
    code: z.string().optional(),
  })
  .meta({ id: 'CheckResult' });

/** A connector as it may be shown: never a secret. */
export const connectorSchema = z
  .object({
    id: z.string(),
    account: z.string(),
    engine: z.string(),
    family: z.string(),
    destination: z
      .string()
      .meta({ description: 'where it goes, never a secret: host:5432/db, s3://bucket/prefix' }),
    schema: z.string(),
    streams: z.array(z.string()),
    format: z.string(),
    state: z.string(),
    stateReason: z.string().nullable(),
    secretVersion: z.number().int(),
    createdAt: time,
  })
  .meta({ id: 'Connector' });

/** A connector's status: what `wharf status` shows. */
export const connectorStatusSchema = z
  .object({
    id: z.string(),
    account: z.string(),
    engine: z.string(),
    state: z.string(),
    stateReason: z.string().nullable(),
    lastWindow: z.string().nullable(),
    lastWindowEnd: nullableTime,
    lagSeconds: z.number().nullable(),
    rows: z.number(),
    windowsLoaded: z.number(),
    windowsBehind: z.number().nullable(),
    error: z.string().nullable(),
    lastError: z.string().nullable(),
    lastErrorAt: nullableTime,
    delivery: z
      .object({
        deliveries: z.number(),
        objects: z.number(),
        bytes: z.number(),
        lastDelivery: z.string().nullable(),
        lastDeliveredAt: nullableTime,
      })
      .optional()
      .meta({ description: "a bucket connector's deliveries done, objects and bytes in all, the last one" }),
    rowsToday: z.number(),
    loadsToday: z.number(),
    skipsToday: z.number(),
    failuresToday: z.number(),
  })
  .meta({ id: 'ConnectorStatus' });

/** One run of a job, from the control `runs` table. */
export const runSchema = z
  .object({
    id: z.string(),
    kind: z.string(),
    connectorId: z.string().nullable(),
    account: z.string().nullable(),
    startedAt: time,
    finishedAt: nullableTime,
    status: z.string(),
    windows: z.number(),
    rows: z.number(),
    error: z.string().nullable(),
  })
  .meta({ id: 'Run' });

/** What a load or replay did. */
export const loadSummarySchema = z
  .object({
    connector: z.string(),
    windows: z.number(),
    transactions: z.number(),
    rowsStaged: z.number(),
    rowsMerged: z.number(),
    quarantined: z.number(),
    seconds: z.number(),
    lastWindow: z.string().nullable(),
    lastWindowEnd: nullableTime,
    seenSeq: z.number(),
  })
  .meta({ id: 'LoadSummary' });

/** What a bucket connector's delivery run did. */
export const deliverySummarySchema = z
  .object({
    connector: z.string(),
    deliveries: z.number(),
    files: z.number(),
    existing: z.number(),
    rows: z.number(),
    bytes: z.number(),
    seconds: z.number(),
    skipped: z.boolean(),
    lastDelivery: z.string().nullable(),
  })
  .meta({ id: 'DeliverySummary' });

/** What a connector's job did now: a warehouse load or a bucket's deliveries. */
export const connectorWorkSchema = z
  .union([
    loadSummarySchema.extend({ family: z.literal('warehouse') }),
    deliverySummarySchema.extend({ family: z.literal('bucket') }),
  ])
  .meta({ id: 'ConnectorWork' });

/** A stored API token: never the token nor its hash. */
export const apiTokenSchema = z
  .object({
    id: z.string(),
    account: z.string().nullable(),
    name: z.string(),
    createdAt: time,
    lastUsedAt: nullableTime,
    revokedAt: nullableTime,
  })
  .meta({ id: 'ApiToken' });

/** The error answers every authenticated route can give, besides its own. */
export const commonErrors = {
  401: {
    description: 'no token, or not a valid one',
    content: { 'application/json': { schema: errorSchema } },
  },
  429: {
    description: 'too many failed authentications from this address',
    content: { 'application/json': { schema: errorSchema } },
  },
} as const;

/** A JSON answer of a schema. */
export function json<S extends z.ZodType>(schema: S, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

/** An error answer. */
export function failure(description: string) {
  return json(errorSchema, description);
}
