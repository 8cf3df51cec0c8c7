import { z } from 'zod';
import {
  type ConnectionSettings,
  describeConnection,
  parseConnectionUrl,
} from '../connectors/connection-url.js';
import type { RetlSource } from '../control/retl-sources.js';
import type { RetlSync } from '../control/retl-syncs.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { UsageError, type WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { checkFailure } from '../destinations/check-report.js';
import { mssqlConnection } from '../loaders/mssql/mssql-url.js';
import { parseDeliverTo } from '../reverse-etl/batch-sender.js';
import { parseQueryTemplate } from '../reverse-etl/query-template.js';
import { CALL_TYPES } from '../reverse-etl/row-to-call.js';
import type { SourceCheckReport } from '../reverse-etl/source-checks.js';
import { defaultQueryTimeoutMs, isoMicros, previewSync, type SyncPreview } from '../reverse-etl/sync-run.js';
import { checkSource, type RetlStores, retlStores, sourceReader } from './retl-context.js';
import type { Runtime } from './runtime.js';

/** The shortest time between two runs of a sync. */
export const MIN_SYNC_EVERY_MS = 60_000;

const id = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^\d{1,18}$/, 'must be a whole number'),
]);
const secret = z.instanceof(Secret);
const duration = (what: string) =>
  z.string().superRefine((value, ctx) => {
    try {
      parseDuration(value, what);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as WharfError).oneLine() });
    }
  });

/** What `retl sources add` (and the API) asks for. */
export const addSourceRequestSchema = z.object({
  account: id,
  engine: z.enum(['postgres', 'mssql']),
  /** `postgres://user@host:5432/db?sslmode=…` (Redshift too) or `mssql://…` / `sqlserver://…`. */
  url: z.string().min(1),
  /** Replaces a password in the URL (`--password-stdin`). */
  password: secret.optional(),
});
export type AddSourceRequest = z.infer<typeof addSourceRequestSchema>;

/** What `retl sources rotate` asks for: a new URL, a new password, or both. */
export const rotateSourceRequestSchema = z
  .object({ url: z.string().min(1).optional(), password: secret.optional() })
  .refine(
    (r) => r.url !== undefined || r.password !== undefined,
    'give a new --url, a new password, or both',
  );
export type RotateSourceRequest = z.infer<typeof rotateSourceRequestSchema>;

/** What `retl syncs add` (and the API) asks for. */
export const addSyncRequestSchema = z.object({
  source: id,
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  type: z.enum(CALL_TYPES),
  /** The query, with `{{last_sync_time}}`. */
  query: z.string().min(1),
  /** How often it runs; at least `1m`. */
  every: duration('frequency').default('1m'),
  /**
   * The schedule's start (an ISO-8601 instant): the sync is not due before it. Default now. Its first run still
   * binds `last_sync_time` = 0 (every row).
   */
  startAt: z.iso.datetime({ offset: true }).optional(),
  /** Re-read this much before `last_sync_time` on every run; default none. */
  lookback: duration('lookback').optional(),
  /** The statement timeout; default 80 % of the frequency. */
  timeout: duration('timeout').optional(),
  /** `https://WRITE_KEY@host/path` of a Segment-compatible batch endpoint. */
  deliverTo: z.string().min(1),
  /** Replaces a write key in `deliverTo`. */
  writeKey: secret.optional(),
});
export type AddSyncRequest = z.input<typeof addSyncRequestSchema>;

/** What `retl preview` asks for: a saved sync, or a source, a type and a query. */
export const previewRequestSchema = z.union([
  z.object({ sync: id, limit: z.number().int().positive().max(10_000).default(100) }),
  z.object({
    source: id,
    type: z.enum(CALL_TYPES),
    query: z.string().min(1),
    limit: z.number().int().positive().max(10_000).default(100),
  }),
]);
export type PreviewRequest = z.input<typeof previewRequestSchema>;

/** Checks a request with its schema; the first problem is a usage error naming the field. */
export function parseRequest<S extends z.ZodType>(schema: S, request: unknown, flags = true): z.infer<S> {
  const parsed = schema.safeParse(request);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.map(String).join('.') ?? '';
  const name = flags ? `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : field;
  throw new UsageError(
    `invalid ${name || 'request'}: ${issue?.message ?? 'invalid'}`,
    'see `wharf retl --help`',
  );
}

/** A source as it may be shown anywhere: never its password. */
export interface SourceView {
  readonly id: string;
  readonly account: string;
  readonly engine: string;
  /** The URL without the password. */
  readonly url: string;
  readonly state: string;
  readonly secretVersion: number;
  readonly createdAt: Date;
}

export function sourceView(s: RetlSource): SourceView {
  return {
    id: s.id,
    account: s.account,
    engine: s.engine,
    url: describeConnection(s.settings),
    state: s.state,
    secretVersion: s.secretVersion,
    createdAt: s.createdAt,
  };
}

/** A sync as it may be shown anywhere: never its write key. */
export interface SyncView {
  readonly id: string;
  readonly source: string;
  readonly name: string;
  readonly description: string | null;
  readonly type: string;
  readonly query: string;
  readonly every: string;
  readonly lookback: string;
  readonly timeout: string;
  /** The schedule's start: the sync is not due before it. */
  readonly startAt: string;
  /** The endpoint without its write key. */
  readonly deliverTo: string;
  readonly state: string;
  readonly stateReason: string | null;
  readonly createdAt: Date;
}

export function syncView(s: RetlSync): SyncView {
  return {
    id: s.id,
    source: s.sourceId,
    name: s.name,
    description: s.description,
    type: s.type,
    query: s.query,
    every: formatDuration(s.everyMs),
    lookback: s.lookbackMs === 0 ? '0s' : formatDuration(s.lookbackMs),
    timeout: formatDuration(s.timeoutMs),
    startAt: isoMicros(s.startAtMicros),
    deliverTo: s.deliverTo,
    state: s.state,
    stateReason: s.stateReason,
    createdAt: s.createdAt,
  };
}

/**
 * A source URL parsed for its engine: the password apart, and `sslmode=verify-full` when a PostgreSQL URL
 * names none (a plain connection must be asked for: `sslmode=disable`). SQL Server options are checked
 * (TLS is on and verified unless the URL says otherwise).
 */
export function parseSourceUrl(
  url: string,
  engine: 'postgres' | 'mssql',
  password?: Secret,
): { readonly settings: ConnectionSettings; readonly password: Secret | undefined } {
  const parsed = parseConnectionUrl(url, password);
  if (parsed.settings.engine !== engine) {
    throw new UsageError(
      `--engine ${engine} does not match the URL scheme (a ${parsed.settings.engine} URL)`,
      'use postgres:// for postgres (and Redshift), mssql:// or sqlserver:// for mssql',
    );
  }
  let settings = parsed.settings;
  if (engine === 'postgres' && (settings.options.sslmode ?? '') === '') {
    settings = { ...settings, options: { ...settings.options, sslmode: 'verify-full' } };
  }
  if (engine === 'mssql') mssqlConnection(settings);
  return { settings, password: parsed.password };
}

/** Runs a source's checks; throws the first failure as one clear error. */
async function checked(
  settings: ConnectionSettings,
  password: Secret | undefined,
  source?: string,
): Promise<SourceCheckReport> {
  const report = await checkSource(settings, password);
  const failure = checkFailure(report, undefined, source === undefined ? 'source' : `source ${source}`);
  if (failure) throw failure;
  return report;
}

/**
 * `retl sources add`: checks the warehouse in order (reach, TLS, authenticate, `select 1`; a user that can
 * write is a warning), and only then stores the source with its encrypted password.
 */
export async function addSource(
  rt: Runtime,
  request: AddSourceRequest,
): Promise<{ readonly id: string; readonly report: SourceCheckReport }> {
  const r = parseRequest(addSourceRequestSchema, request);
  const { settings, password } = parseSourceUrl(r.url, r.engine, r.password);
  const stores = await retlStores(rt);
  const report = await checked(settings, password);
  const source = await stores.sources.add({
    account: r.account,
    settings,
    ...(password ? { password } : {}),
  });
  return { id: source.id, report };
}

/** `retl sources test`: the checks again, with the stored credentials. */
export async function testSource(rt: Runtime, sourceId: string): Promise<SourceCheckReport> {
  const stores = await retlStores(rt);
  const source = await stores.sources.get(sourceId);
  const { settings, password } = await stores.sources.credentials(source.id);
  return checked(settings, password, source.id);
}

/** `retl sources rotate`: new credentials, checked before they are stored; the source keeps its id and syncs. */
export async function rotateSource(
  rt: Runtime,
  sourceId: string,
  request: RotateSourceRequest,
): Promise<{ readonly source: SourceView; readonly report: SourceCheckReport }> {
  const r = parseRequest(rotateSourceRequestSchema, request);
  const stores = await retlStores(rt);
  const source = await stores.sources.get(sourceId);
  const current = await stores.sources.credentials(source.id);
  // a new URL may bring its own password; without one, the stored password is kept
  const next =
    r.url === undefined
      ? { settings: current.settings, password: r.password }
      : parseSourceUrl(r.url, source.engine, r.password);
  const password = next.password ?? current.password;
  const report = await checked(next.settings, password, source.id);
  const updated = await stores.sources.rotate(source.id, {
    ...(r.url === undefined ? {} : { settings: next.settings }),
    ...(next.password === undefined ? {} : { password: next.password }),
  });
  return { source: sourceView(updated), report };
}

export async function listSources(rt: Runtime): Promise<SourceView[]> {
  return (await (await retlStores(rt)).sources.list()).map(sourceView);
}

export async function showSource(rt: Runtime, sourceId: string): Promise<SourceView> {
  return sourceView(await (await retlStores(rt)).sources.get(sourceId));
}

/**
 * `retl syncs add`: checks every argument (the query parsed for the source's engine, the frequency at least
 * 1m, the endpoint and its write key) before anything is stored; stores the sync with its encrypted write key.
 */
export async function addSync(rt: Runtime, request: AddSyncRequest): Promise<{ readonly id: string }> {
  const r = parseRequest(addSyncRequestSchema, request);
  const everyMs = parseDuration(r.every, 'frequency');
  if (everyMs < MIN_SYNC_EVERY_MS) {
    throw new UsageError(`invalid --every ${r.every}: a sync runs at most once a minute`, 'use 1m or more');
  }
  const endpoint = parseDeliverTo(r.deliverTo, r.writeKey);
  const stores = await retlStores(rt);
  const source = await stores.sources.get(r.source).catch((error: unknown) => {
    throw new UsageError((error as WharfError).message, 'see `wharf retl sources list`');
  });
  parseQueryTemplate(r.query, source.engine);
  const sync = await stores.syncs.add({
    sourceId: source.id,
    name: r.name,
    description: r.description ?? null,
    type: r.type,
    query: r.query,
    everyMs,
    timeoutMs: r.timeout === undefined ? defaultQueryTimeoutMs(everyMs) : parseDuration(r.timeout, 'timeout'),
    lookbackMs: r.lookback === undefined ? 0 : parseDuration(r.lookback, 'lookback'),
    ...(r.startAt === undefined ? {} : { startAtMicros: Math.max(0, Date.parse(r.startAt) * 1000) }),
    deliverTo: endpoint.url,
    writeKey: endpoint.writeKey,
  });
  return { id: sync.id };
}

export async function listSyncs(rt: Runtime): Promise<SyncView[]> {
  return (await (await retlStores(rt)).syncs.list()).map(syncView);
}

/** A sync, its state and its latest runs. */
export async function showSync(
  rt: Runtime,
  syncId: string,
): Promise<SyncView & { readonly runs: Awaited<ReturnType<RetlStores['progress']['recentRuns']>> }> {
  const stores = await retlStores(rt);
  const sync = await stores.syncs.get(syncId);
  return { ...syncView(sync), runs: await stores.progress.recentRuns(sync.id) };
}

/** `retl syncs enable`: active again (a parked sync too); `disable`: no longer run. */
export async function setSyncEnabled(rt: Runtime, syncId: string, enabled: boolean): Promise<SyncView> {
  const stores = await retlStores(rt);
  const sync = await stores.syncs.get(syncId);
  return syncView(await stores.syncs.setState(sync.id, enabled ? 'active' : 'disabled'));
}

/**
 * `retl preview`: runs the query the way the next run would (the same read-only path, the value the next run
 * binds), for at most `limit` rows; returns the SQL as sent, the parameter and its value, the rows, the calls
 * as they would be sent and each rejected row with its reason. Sends nothing and records nothing.
 */
export async function previewFlow(rt: Runtime, request: PreviewRequest): Promise<SyncPreview> {
  const r = parseRequest(previewRequestSchema, request);
  const stores = await retlStores(rt);
  if ('sync' in r) {
    const sync = await stores.syncs.get(r.sync);
    const source = await stores.sources.get(sync.sourceId);
    const state = await stores.progress.state(sync.id);
    return previewSync(await sourceReader(stores, source), {
      syncId: sync.id,
      type: sync.type as (typeof CALL_TYPES)[number],
      query: parseQueryTemplate(sync.query, source.engine),
      lastSyncTimeMicros: state.lastSyncTimeMicros,
      lookbackMs: sync.lookbackMs,
      timeoutMs: sync.timeoutMs,
      limit: r.limit,
    });
  }
  const source = await stores.sources.get(r.source);
  return previewSync(await sourceReader(stores, source), {
    syncId: 'preview',
    type: r.type,
    query: parseQueryTemplate(r.query, source.engine),
    lastSyncTimeMicros: 0,
    timeoutMs: defaultQueryTimeoutMs(MIN_SYNC_EVERY_MS),
    limit: r.limit,
  });
}
