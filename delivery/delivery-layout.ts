import { z } from 'zod';
import type { Stream } from '../catalog/types.js';
import type { FormatName } from '../exporter/writers/file-format.js';

/**
 * Where a delivery's objects go in the customer's bucket, and what its manifest says. Keys and bytes depend on
 * the delivery only, so a retry writes the same objects:
 *
 *   <prefix>/<stream>/v<schema version>/<delivery id>/part-00000.<ext>
 *   <prefix>/_manifests/<delivery id>.json   (written last)
 */

export const DELIVERY_MANIFEST_VERSION = 1;

/** File name extension of each format. */
export const DELIVERY_EXTENSIONS: Readonly<Record<FormatName, string>> = {
  csv: 'csv.gz',
  parquet: 'parquet',
  json: 'ndjson.gz',
};

/** Content-Type of each format's objects (never Content-Encoding: the object is the .gz file itself). */
export const DELIVERY_CONTENT_TYPES: Readonly<Record<FormatName, string>> = {
  csv: 'application/gzip',
  parquet: 'application/vnd.apache.parquet',
  json: 'application/gzip',
};

/**
 * A stream's schema version: the catalog version that last changed its columns (the stream's `since` and its
 * columns' `since`). A new column starts a new version, and so new keys: a reader of `v1` never meets it.
 */
export function schemaVersion(stream: Stream): number {
  let version = stream.since;
  for (const c of stream.columns) version = Math.max(version, c.since ?? 1);
  return version;
}

const joinKey = (prefix: string, rest: string): string => (prefix ? `${prefix}/${rest}` : rest);

/** The key (relative to the bucket) of part `part` of a stream's rows in a delivery. */
export function deliveryObjectKey(
  prefix: string,
  stream: string,
  version: number,
  deliveryId: string,
  part: number,
  format: FormatName,
): string {
  const name = `part-${String(part).padStart(5, '0')}.${DELIVERY_EXTENSIONS[format]}`;
  return joinKey(prefix, `${stream}/v${version}/${deliveryId}/${name}`);
}

/** The key (relative to the bucket) of a delivery's manifest. */
export function deliveryManifestKey(prefix: string, deliveryId: string): string {
  return joinKey(prefix, `_manifests/${deliveryId}.json`);
}

const sha = z.string().regex(/^[0-9a-f]{64}$/);

export const deliveredFileSchema = z.object({
  key: z.string().min(1),
  stream: z.string().min(1),
  rows: z.number().int().positive(),
  bytes: z.number().int().positive(),
  sha256: sha,
  format: z.enum(['csv', 'parquet', 'json']),
  schema_version: z.number().int().positive(),
});

export const deliveryManifestSchema = z.object({
  manifest_version: z.literal(DELIVERY_MANIFEST_VERSION),
  delivery_id: z.string().min(1),
  /** The delivery's time range `[start, end)` of `updated_at`, and its revision (0, then 1, 2… for replays). */
  start: z.string().datetime(),
  end: z.string().datetime(),
  revision: z.number().int().nonnegative(),
  account: z.string(),
  catalog: z.string(),
  format: z.enum(['csv', 'parquet', 'json']),
  /** Ids of the staged windows whose rows the delivery holds, in order. */
  windows: z.array(z.string().min(1)),
  /** Each (stream, schema version) present: its columns in file order. */
  schemas: z.array(
    z.object({
      stream: z.string(),
      schema_version: z.number().int().positive(),
      columns: z.array(z.object({ name: z.string(), type: z.string(), nullable: z.boolean() })),
    }),
  ),
  files: z.array(deliveredFileSchema),
});

export type DeliveredFile = z.infer<typeof deliveredFileSchema>;
export type DeliveryManifest = z.infer<typeof deliveryManifestSchema>;

/** Deterministic JSON text of a delivery manifest (fixed key order, trailing newline). */
export function serializeDeliveryManifest(manifest: DeliveryManifest): string {
  return `${JSON.stringify(deliveryManifestSchema.parse(manifest), null, 2)}\n`;
}
