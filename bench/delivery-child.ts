// One bucket delivery (or the raw upload it is compared with) for the benchmark, in its own process so that its
// peak RSS can be read. The job comes as JSON in BENCH_JOB; the last line of stdout is the JSON result.
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import { Secret } from '../core/secret.js';
import { quotePg } from '../db/postgres/quote.js';
import { BucketClient } from '../delivery/bucket-client.js';
import { type DeliverySummary, deliverConnector } from '../delivery/deliver-connector.js';
import type { CommittedWindow } from '../delivery/delivery-plan.js';
import type { FormatName } from '../exporter/writers/file-format.js';
import { openStagingStore } from '../staging/open-store.js';

/** Where the bucket is (s3rver's fixed credentials). */
export interface BenchBucket {
  readonly endpoint: string;
  readonly bucket: string;
  readonly prefix: string;
}

/** A job for the child process. */
export type DeliveryChildJob =
  | {
      readonly kind: 'deliver';
      readonly sourceUrl: string;
      /** The export's control schema (its `windows` table) and the delivery state's. */
      readonly windowsSchema: string;
      readonly controlSchema: string;
      readonly connectorId: string;
      readonly stagingDir: string;
      readonly format: FormatName;
      readonly target: BenchBucket;
    }
  | {
      readonly kind: 'upload';
      readonly target: BenchBucket;
      /** Local files and the keys (under the prefix) they go to. */
      readonly files: readonly { readonly path: string; readonly key: string }[];
    };

/** What the child reports. */
export interface DeliveryChildResult {
  readonly seconds: number;
  readonly maxRssMB: number;
  readonly delivery?: DeliverySummary;
  readonly bytes?: number;
}

const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
/** The bucket client's upload settings, the same for the raw upload. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 4;

function peakRssMB(): number {
  try {
    const hwm = /VmHWM:\s+(\d+)\s*kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

async function windows(pool: pg.Pool, schema: string): Promise<CommittedWindow[]> {
  const { rows } = await pool.query<{
    window_id: string;
    start_at: Date;
    end_at: Date;
    revision: number;
    manifest_key: string;
    rows: string;
  }>(
    `select window_id, start_at, end_at, revision, manifest_key, rows from ${quotePg(schema)}.windows
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

const job = JSON.parse(process.env.BENCH_JOB ?? '{}') as DeliveryChildJob;
const out: Record<string, unknown> = {};
let started = performance.now();

if (job.kind === 'deliver') {
  const pool = new pg.Pool({ connectionString: job.sourceUrl, max: 2, application_name: 'wharf-bench' });
  const committed = await windows(pool, job.windowsSchema);
  const bucket = new BucketClient(
    {
      url: `s3://${job.target.bucket}/${job.target.prefix}`,
      endpoint: job.target.endpoint,
      accessKeyId: CREDENTIALS.accessKeyId,
    },
    new Secret(CREDENTIALS.secretAccessKey),
    { partSize: PART_SIZE, queueSize: QUEUE_SIZE },
  );
  started = performance.now();
  out.delivery = await deliverConnector({
    control: { pool, schema: job.controlSchema },
    staging: { store: openStagingStore(`file://${job.stagingDir}`), windows: committed },
    bucket,
    catalog: { ...trackingCatalog, streams: trackingCatalog.streams.filter((s) => s.name === 'clicks') },
    connector: {
      id: job.connectorId,
      account: '1',
      streams: ['clicks'],
      format: job.format,
      everyMs: 600_000,
    },
  });
  out.seconds = (performance.now() - started) / 1000;
  bucket.close();
  await pool.end();
} else {
  const client = new S3Client({
    endpoint: job.target.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  let bytes = 0;
  for (const file of job.files) {
    bytes += statSync(file.path).size;
    await new Upload({
      client,
      params: {
        Bucket: job.target.bucket,
        Key: `${job.target.prefix}/${file.key}`,
        Body: createReadStream(file.path),
      },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
    }).done();
  }
  out.seconds = (performance.now() - started) / 1000;
  out.bytes = bytes;
  client.destroy();
}
out.maxRssMB = peakRssMB();
process.stdout.write(`${JSON.stringify(out)}\n`);
