import { gunzipSync } from 'node:zlib';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import type pg from 'pg';
import { migrateControl } from '../../control/control-schema.js';
import { deliveryStateMigration } from '../../control/deliveries.js';
import { quotePg } from '../../db/postgres/quote.js';
import { BucketClient, type BucketUploadTuning } from '../../delivery/bucket-client.js';
import type { CommittedWindow } from '../../delivery/delivery-plan.js';
import { S3RVER_CREDENTIALS, type TestS3 } from './s3.js';

/** The control schema with the delivery tables (what the integrator's migration will add). */
export async function migrateDeliveryControl(pool: pg.Pool, schema: string): Promise<void> {
  const client = await pool.connect();
  try {
    await migrateControl(client, schema);
    await client.query(deliveryStateMigration.sql(quotePg(schema)));
  } finally {
    client.release();
  }
}

/** Adds a bucket connector row (disabling the account's others); returns its id. */
export async function addBucketConnectorRow(
  pool: pg.Pool,
  schema: string,
  account: number,
  format: string,
  url: string,
): Promise<string> {
  // one active connector per account: the ones before are disabled
  await pool.query(`update ${quotePg(schema)}.connectors set state = 'disabled' where account_id = $1`, [
    account,
  ]);
  const { rows } = await pool.query<{ id: string }>(
    `insert into ${quotePg(schema)}.connectors (account_id, engine, settings, streams, format)
     values ($1, 'bucket', $2, $3, $4) returning id`,
    [account, { url, accessKeyId: S3RVER_CREDENTIALS.accessKeyId }, [], format],
  );
  return rows[0]!.id;
}

/** Every committed window of the csv staging (all revisions), as the loader reads them. */
export async function committedWindows(pool: pg.Pool, controlSchema = 'wharf'): Promise<CommittedWindow[]> {
  const { rows } = await pool.query<{
    window_id: string;
    start_at: Date;
    end_at: Date;
    revision: number;
    manifest_key: string;
    rows: string;
  }>(
    `select window_id, start_at, end_at, revision, manifest_key, rows from ${quotePg(controlSchema)}.windows
      where format = 'csv' order by start_at, revision`,
  );
  return rows.map((r) => ({
    id: r.window_id,
    start: r.start_at,
    end: r.end_at,
    revision: r.revision,
    manifestKey: r.manifest_key,
    rows: Number(r.rows),
  }));
}

/** A client of the test bucket under `prefix`, with s3rver's credentials. */
export function testBucket(
  s3: Pick<TestS3, 'endpoint' | 'bucket'>,
  prefix: string,
  tuning: BucketUploadTuning = {},
): BucketClient {
  return new BucketClient(
    {
      url: `s3://${s3.bucket}/${prefix}`,
      endpoint: s3.endpoint,
      accessKeyId: S3RVER_CREDENTIALS.accessKeyId,
    },
    S3RVER_CREDENTIALS.secretAccessKey,
    tuning,
  );
}

/** A plain SDK client on the test server (an independent reader). */
export function rawS3(s3: TestS3): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: S3RVER_CREDENTIALS.accessKeyId,
      secretAccessKey: S3RVER_CREDENTIALS.secretAccessKey.reveal(),
    },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
}

/** Every key under a prefix, by ListObjectsV2 on a plain SDK client. */
export async function listKeys(raw: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await raw.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const item of page.Contents ?? []) out.push(item.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out.sort();
}

/** The rows of a delivered csv.gz object (null for an unquoted empty field, '' for `""`). */
export function csvGzRows(bytes: Buffer): Record<string, string | null>[] {
  return parse(gunzipSync(bytes).toString('utf8'), {
    columns: true,
    cast: (value: string, context: { quoting: boolean }) => (value === '' && !context.quoting ? null : value),
  }) as Record<string, string | null>[];
}

/** The rows of a delivered ndjson.gz object, one JSON.parse per line. */
export function ndjsonGzRows(bytes: Buffer): Record<string, unknown>[] {
  const lines = gunzipSync(bytes).toString('utf8').split('\n');
  if (lines.pop() !== '') throw new Error('ndjson.gz does not end with a newline');
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
}
