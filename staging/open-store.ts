import { UsageError } from '../core/errors.js';
import { redactUrls } from '../core/secret.js';
import { DEFAULT_STAGING_DIR, FileStagingStore } from './file-store.js';
import { S3StagingStore } from './s3-store.js';
import type { StagingStore } from './staging-store.js';

/** S3 settings from the command line (`--s3-endpoint`, `--s3-path-style`). */
export interface StoreOptions {
  /** Overrides `WHARF_S3_ENDPOINT`, `AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL`. */
  s3Endpoint?: string;
  /** Path-style addressing; defaults to true when a custom endpoint is set. */
  s3PathStyle?: boolean;
}

/**
 * Opens the staging store a URL names: `file:///path` or a plain path for a local directory,
 * `s3://bucket/prefix` for a bucket, nothing for `./wharf-data/staging`.
 *
 * @example
 * const store = openStagingStore(process.env.WHARF_STAGING_URL, { s3Endpoint: 'http://127.0.0.1:9000' });
 */
export function openStagingStore(url: string | undefined, options: StoreOptions = {}): StagingStore {
  if (url === undefined || url === '') return new FileStagingStore(DEFAULT_STAGING_DIR);
  // Two letters at least, so a Windows drive (`C:\…`) reads as a path.
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return new FileStagingStore(url);
  if (scheme === 'file') {
    if (!url.startsWith('file:///') && !url.startsWith('file://localhost/')) {
      throw new UsageError(
        `invalid file staging URL ${url}`,
        'use file:///absolute/path (three slashes) or a plain path',
      );
    }
    return new FileStagingStore(url);
  }
  if (scheme === 's3') {
    const endpoint =
      options.s3Endpoint ??
      nonEmpty(process.env.WHARF_S3_ENDPOINT) ??
      nonEmpty(process.env.AWS_ENDPOINT_URL_S3) ??
      nonEmpty(process.env.AWS_ENDPOINT_URL);
    return new S3StagingStore(url, { endpoint, pathStyle: options.s3PathStyle });
  }
  throw new UsageError(
    `unknown staging URL scheme "${scheme}:" in ${redactUrls(url)}; use file:///path or s3://bucket/prefix`,
  );
}

/**
 * Checks cheaply that a store can be used before any work starts: a directory is created if
 * needed and must be writable; a bucket must exist and answer (HeadBucket). Throws the store's
 * clear error otherwise.
 */
export async function checkStagingStore(store: StagingStore): Promise<void> {
  if (store instanceof FileStagingStore || store instanceof S3StagingStore) await store.check();
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
