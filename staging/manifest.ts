import { z } from 'zod';
import { IntegrityError, WharfError } from '../core/errors.js';
import type { StagingStore } from './staging-store.js';

export const MANIFEST_FORMAT_VERSION = 1;

/** The format connectors read from staging: warehouses COPY it, bucket delivery converts it. */
export const STAGING_FORMAT = 'csv';

const sha = z.string().regex(/^[0-9a-f]{64}$/, 'a hex sha256');

export const manifestFileSchema = z.object({
  key: z.string().min(1),
  stream: z.string().min(1),
  account: z.string().regex(/^-?\d+$/),
  rows: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  sha256: sha,
});

export const windowManifestSchema = z.object({
  manifest_version: z.literal(MANIFEST_FORMAT_VERSION),
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
    z.object({ rows: z.number().int().nonnegative(), checksum: z.string(), columns: z.array(z.string()) }),
  ),
  files: z.array(manifestFileSchema),
});

export type WindowManifest = z.infer<typeof windowManifestSchema>;
export type ManifestFile = z.infer<typeof manifestFileSchema>;

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
