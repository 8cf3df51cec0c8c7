import { z } from 'zod';
import { IntegrityError, WharfError } from '../core/errors.js';
import type { StagingStore } from './staging-store.js';

/**
 * The manifest version this Wharf writes. Version 1 (one object per account and stream) is still read: windows
 * staged before stay loadable. docs/formats.md describes both layouts.
 */
export const MANIFEST_FORMAT_VERSION = 2;

/** The format connectors read from staging: warehouses COPY it, bucket delivery converts it. */
export const STAGING_FORMAT = 'csv';

const sha = z.string().regex(/^[0-9a-f]{64}$/, 'a hex sha256');
const count = z.number().int().nonnegative();

/**
 * One account's rows of one stream: a whole object (version 1), or the bytes `[offset, offset + bytes)` of the
 * stream's object `key` (version 2), each a complete file of the window's format on its own.
 */
export const manifestFileSchema = z.object({
  key: z.string().min(1),
  stream: z.string().min(1),
  account: z.string().regex(/^-?\d+$/),
  rows: count,
  /** Bytes of the part (of the whole object in version 1). */
  bytes: count,
  /** sha256 of the part's bytes. */
  sha256: sha,
  /** Where the part starts in its object (version 2 only). */
  offset: count.optional(),
});

/** One object of a version 2 window: a stream's parts, back to back. */
export const manifestObjectSchema = z.object({
  key: z.string().min(1),
  stream: z.string().min(1),
  rows: count,
  bytes: count,
  /** sha256 of the whole object. */
  sha256: sha,
});

export const windowManifestSchema = z
  .object({
    manifest_version: z.union([z.literal(1), z.literal(MANIFEST_FORMAT_VERSION)]),
    catalog: z.string(),
    catalog_version: z.number().int().positive(),
    format: z.enum(['csv', 'parquet', 'json']),
    window: z.object({
      id: z.string().min(1),
      start: z.string().datetime(),
      end: z.string().datetime(),
      revision: z.number().int().nonnegative(),
    }),
    /** Per stream: rows and an order-independent checksum of (primary key, updated_at). */
    streams: z.record(
      z.string(),
      z.object({ rows: count, checksum: z.string(), columns: z.array(z.string()) }),
    ),
    /** The objects written (version 2 only), in catalog stream order. */
    objects: z.array(manifestObjectSchema).optional(),
    /** Every account's part of every stream. */
    files: z.array(manifestFileSchema),
  })
  .superRefine((manifest, ctx) => {
    const problem = layoutProblem(manifest);
    if (problem) ctx.addIssue({ code: 'custom', message: problem.message, path: problem.path });
  });

export type WindowManifest = z.infer<typeof windowManifestSchema>;
export type ManifestFile = z.infer<typeof manifestFileSchema>;
export type ManifestObject = z.infer<typeof manifestObjectSchema>;

/**
 * What is wrong with the layout of a parsed manifest, if anything: version 1 has neither objects nor offsets;
 * in version 2 every part lies in a listed object of its stream, and the parts of an object tile it exactly.
 */
function layoutProblem(m: {
  manifest_version: number;
  objects?: readonly ManifestObject[] | undefined;
  files: readonly ManifestFile[];
}): { message: string; path: (string | number)[] } | undefined {
  if (m.manifest_version === 1) {
    if (m.objects !== undefined) return { message: 'version 1 has no objects', path: ['objects'] };
    const i = m.files.findIndex((f) => f.offset !== undefined);
    return i < 0 ? undefined : { message: 'version 1 files have no offset', path: ['files', i, 'offset'] };
  }
  if (m.objects === undefined) return { message: 'required in version 2', path: ['objects'] };
  const objects = new Map(m.objects.map((o) => [o.key, { object: o, covered: 0, rows: 0 }]));
  if (objects.size !== m.objects.length) return { message: 'an object is listed twice', path: ['objects'] };
  const parts = m.files.map((f, i) => ({ f, i })).sort((a, b) => (a.f.offset ?? 0) - (b.f.offset ?? 0));
  for (const { f, i } of parts) {
    const entry = objects.get(f.key);
    if (entry === undefined || entry.object.stream !== f.stream) {
      return { message: `not an object of stream ${f.stream}`, path: ['files', i, 'key'] };
    }
    if (f.offset !== entry.covered) {
      return { message: `parts of ${f.key} must follow each other from 0`, path: ['files', i, 'offset'] };
    }
    entry.covered += f.bytes;
    entry.rows += f.rows;
  }
  for (const [i, o] of m.objects.entries()) {
    const entry = objects.get(o.key)!;
    if (entry.covered !== o.bytes || entry.rows !== o.rows) {
      return { message: 'bytes and rows must be those of its parts', path: ['objects', i] };
    }
  }
  return undefined;
}

/** Every key a window's manifest names (its objects, or its files in version 1), each once. */
export function manifestKeys(manifest: WindowManifest): string[] {
  return [...new Set([...(manifest.objects ?? []).map((o) => o.key), ...manifest.files.map((f) => f.key)])];
}

/** Parses and validates a manifest's JSON text. */
export function parseManifest(text: string, key: string): WindowManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new IntegrityError('manifest is not valid JSON', {
      context: { key },
      cause: error,
      hint: 'the window must be exported again under a new revision',
    });
  }
  const parsed = windowManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IntegrityError(
      `manifest is invalid: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'unknown problem'}`,
      { context: { key }, hint: 'was it written by a newer Wharf? upgrade Wharf or export the window again' },
    );
  }
  return parsed.data;
}

/** Deterministic JSON text of a manifest (stable key order, trailing newline). */
export function serializeManifest(manifest: WindowManifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

export async function readManifest(store: StagingStore, key: string): Promise<WindowManifest> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await store.get(key);
  } catch (error) {
    if (error instanceof WharfError) throw error;
    throw new WharfError('cannot read manifest', { context: { key }, cause: error, kind: 'transient' });
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return parseManifest(Buffer.concat(chunks).toString('utf8'), key);
}
