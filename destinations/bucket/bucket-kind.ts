import type { StoredSettings } from '../../connectors/connector-store.js';
import { UsageError } from '../../core/errors.js';
import { redactUrls, type Secret } from '../../core/secret.js';
import { checkBucket } from '../../delivery/bucket-check.js';
import { BucketClient } from '../../delivery/bucket-client.js';
import {
  type BucketSettings,
  bucketSettingsSchema,
  parseBucketUrl,
  parseEvery,
} from '../../delivery/bucket-settings.js';
import type { DestinationKind, DestinationTarget } from '../destination-kind.js';

/** A bucket connector's stored settings: the bucket's `BucketSettings` and the kind's name. */
export type StoredBucketSettings = BucketSettings & { readonly engine: 'bucket' };

/** A bucket kind's stored settings as what they are (the kind wrote them). */
export function bucketSettings(settings: StoredSettings): StoredBucketSettings {
  return settings as StoredBucketSettings;
}

function secretKey(target: DestinationTarget): Secret {
  const key = target.secret.secretAccessKey;
  if (!key) {
    throw new UsageError(
      `connector ${target.connectorId} has no secret access key`,
      `set it with \`wharf connectors rotate ${target.connectorId} --secret-access-key-stdin\``,
    );
  }
  return key;
}

/**
 * A customer's bucket (S3 or compatible): the account's rows as new objects under `s3://bucket/prefix`, a manifest
 * per delivery. The secret access key is the connector's secret field `secretAccessKey`.
 */
export const bucketKind: DestinationKind<StoredSettings, BucketClient> = {
  name: 'bucket',
  family: 'bucket',
  parse(request) {
    if (request.password !== undefined) {
      throw new UsageError('a bucket connector takes no password', 'pass --secret-access-key-stdin instead');
    }
    parseBucketUrl(request.url);
    if (request.every !== undefined) parseEvery(request.every);
    if (!request.accessKeyId) throw new UsageError('a bucket connector needs --access-key-id');
    if (!request.secretAccessKey) {
      throw new UsageError(
        'a bucket connector needs its secret key',
        'pass it on standard input with --secret-access-key-stdin',
      );
    }
    const parsed = bucketSettingsSchema.safeParse({
      url: request.url,
      accessKeyId: request.accessKeyId,
      ...(request.s3Endpoint ? { endpoint: request.s3Endpoint } : {}),
      ...(request.s3PathStyle !== undefined ? { pathStyle: request.s3PathStyle } : {}),
      ...(request.s3Region ? { region: request.s3Region } : {}),
      ...(request.every ? { every: request.every } : {}),
    });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UsageError(`invalid bucket setting ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`);
    }
    const settings: StoredBucketSettings = { engine: 'bucket', ...parsed.data };
    return { settings, secret: { secretAccessKey: request.secretAccessKey } };
  },
  describe: (settings) => {
    const s = bucketSettings(settings);
    return s.endpoint ? `${s.url} at ${redactUrls(s.endpoint)}` : s.url;
  },
  check: (t) => checkBucket(bucketSettings(t.settings), secretKey(t)),
  open: async (t) => new BucketClient(bucketSettings(t.settings), secretKey(t)),
};
