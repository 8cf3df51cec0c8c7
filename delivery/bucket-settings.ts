import { z } from 'zod';
import { parseDuration } from '../core/duration.js';
import { UsageError } from '../core/errors.js';
import { redactUrls } from '../core/secret.js';

/**
 * A bucket connector's settings as stored (`connectors.settings`): where the bucket is and who writes to it.
 * The secret access key is not here: it is the connector's secret.
 */
export const bucketSettingsSchema = z.object({
  /** `s3://bucket/prefix` (the prefix may be empty). */
  url: z.string().regex(/^s3:\/\/[^/?#]+(\/[^?#]*)?$/, 'an s3://bucket/prefix URL'),
  /** A custom endpoint (MinIO, R2, …); AWS S3 when absent. */
  endpoint: z.string().url().optional(),
  /** Path-style addressing; defaults to true with a custom endpoint. */
  pathStyle: z.boolean().optional(),
  /** The bucket's region (default us-east-1). */
  region: z.string().min(1).optional(),
  accessKeyId: z.string().min(1),
  /** One delivery per slot of this length, aligned to the clock (`--every`, default 10m). */
  every: z.string().default('10m'),
});

export type BucketSettings = z.infer<typeof bucketSettingsSchema>;

/** Where a bucket is and which key writes to it: what the client needs besides the secret. */
export type BucketEndpoint = Pick<
  BucketSettings,
  'url' | 'endpoint' | 'pathStyle' | 'region' | 'accessKeyId'
>;

const DAY = 86_400_000;

/** Checks and parses `--every`: whole minutes from 1m to 1d that divide a day, so slots align to the clock. */
export function parseEvery(text: string): number {
  const ms = parseDuration(text, '--every');
  if (ms < 60_000 || ms > DAY || ms % 60_000 !== 0 || DAY % ms !== 0) {
    throw new UsageError(
      `--every ${text} does not cut the day into whole slots`,
      'use a number of minutes or hours that divides a day: 1m, 5m, 10m, 15m, 30m, 1h, 6h, 1d',
    );
  }
  return ms;
}

/** Splits `s3://bucket/prefix` into the bucket and the prefix (no leading or trailing `/`). */
export function parseBucketUrl(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/?#]+)\/?([^?#]*)$/.exec(url);
  const bucket = match?.[1];
  if (bucket === undefined || match === null || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UsageError(`invalid bucket URL ${redactUrls(url)}`, 'use s3://bucket/prefix');
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((part) => part === '' || part === '.' || part === '..') && prefix !== '') {
    throw new UsageError(
      `invalid prefix "${prefix}" in ${url}`,
      'use s3://bucket/some/prefix without empty parts',
    );
  }
  return { bucket, prefix };
}
