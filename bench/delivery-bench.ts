import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { migrateControl } from '../control/control-schema.js';
import { deliveryStateMigration } from '../control/deliveries.js';
import { quotePg } from '../db/postgres/quote.js';
import type { FormatName } from '../exporter/writers/file-format.js';
import { startS3, type TestS3 } from '../test/helpers/s3.js';
import { type BenchContext, median, prepareBigSource, round } from './bench-context.js';
import { runWharfChild } from './bench-shell.js';
import type { BenchBucket, DeliveryChildJob, DeliveryChildResult } from './delivery-child.js';

const RSS_GOAL_MB = 300;
const CSV_GOAL = 0.7;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const FORMATS: readonly FormatName[] = ['csv', 'parquet', 'json'];

/**
 * How the clicks are staged: in day windows (the exporter's default history windows: a delivery per day, each one
 * staged file that goes up as it is), or in hour windows (24 staged files a day, re-encoded into one object).
 */
interface Layout {
  readonly name: string;
  readonly slug: string;
  readonly coarseMs: number;
  readonly maxWindows: number;
  /** Whether the csv ratio goal applies. */
  readonly ratioGoal: boolean;
  /** What the case measures, in the note. */
  readonly note: string;
}

const LAYOUTS: readonly Layout[] = [
  {
    name: 'daily staged windows',
    slug: 'daily',
    coarseMs: DAY,
    maxWindows: 9,
    ratioGoal: true,
    note: 'csv: each staged file goes up as it is',
  },
  {
    name: 'hourly staged windows',
    slug: 'hourly',
    coarseMs: HOUR,
    maxWindows: 7 * 24 + 2,
    ratioGoal: false,
    note: 'csv: 24 staged files a day re-encoded (gunzip, gzip) into one object',
  },
];

function runChild(job: DeliveryChildJob): Promise<DeliveryChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/run-ts.js', 'bench/delivery-child.ts'], {
      env: { ...process.env, BENCH_JOB: JSON.stringify(job) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        reject(new Error(`delivery ${job.kind} job failed (${code}):\n${stderr.slice(-3000)}`));
        return;
      }
      resolve(JSON.parse(last) as DeliveryChildResult);
    });
  });
}

/** A delivery state schema with one bucket connector for account 1; returns the connector id. */
async function prepareState(
  url: string,
  schema: string,
  format: FormatName,
  target: BenchBucket,
): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await migrateControl(client, schema);
    await client.query(deliveryStateMigration.sql(quotePg(schema)));
    const { rows } = await client.query<{ id: string }>(
      `insert into ${quotePg(schema)}.connectors (account_id, engine, settings, streams, format)
       values (1, 'bucket', $1, '{clicks}', $2) returning id`,
      [{ url: `s3://${target.bucket}/${target.prefix}`, accessKeyId: 'S3RVER' }, format],
    );
    return rows[0]!.id;
  } finally {
    await client.end();
  }
}

/** Downloads every object under a prefix into `dir`; returns the files and their keys relative to the prefix. */
async function download(s3: TestS3, prefix: string, dir: string): Promise<{ path: string; key: string }[]> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  const out: { path: string; key: string }[] = [];
  try {
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: s3.bucket,
          Prefix: `${prefix}/`,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const item of page.Contents ?? []) {
        const key = item.Key!.slice(prefix.length + 1);
        const response = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: item.Key! }));
        const path = join(dir, key.replaceAll('/', '__'));
        writeFileSync(path, Buffer.from(await response.Body!.transformToByteArray()));
        out.push({ path, key });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } finally {
    client.destroy();
  }
  return out;
}

/**
 * Bucket delivery: 1M clicks staged as csv.gz (day windows, then hour windows), delivered to s3rver in each format,
 * beside uploading the very bytes delivered through `@aws-sdk/lib-storage` alone (same part size and queue).
 * Rows/s, MB/s (of the objects written), the ratio to the raw upload, and the delivering process's peak RSS.
 */
export async function deliveryBench(ctx: BenchContext): Promise<void> {
  const source = await prepareBigSource(ctx);
  const rows = source.rowsByStream.clicks ?? ctx.clicks;
  const s3 = await startS3();
  const runs = Math.min(ctx.options.exportRuns, 3);
  const details: Record<string, unknown> = {};
  try {
    for (const layout of LAYOUTS) {
      const windowsSchema = `bench_delivery_${layout.slug}`;
      const stagingDir = join(ctx.workDir, `delivery-staging-${layout.slug}`);
      ctx.log(`delivery: staging ${rows} clicks as csv.gz, ${layout.name}`);
      const staged = await runWharfChild({
        kind: 'export',
        format: 'csv',
        sourceUrl: source.url,
        streams: ['clicks'],
        sizes: { fineMs: 60_000, coarseMs: layout.coarseMs },
        settleMs: 0,
        maxWindows: layout.maxWindows,
        controlSchema: windowsSchema,
        stagingDir,
      });
      if (staged.export!.rows !== rows) {
        throw new Error(`expected ${rows} clicks staged, got ${JSON.stringify(staged.export)}`);
      }
      for (const format of FORMATS) {
        const wharf: number[] = [];
        const raw: number[] = [];
        let rss = 0;
        let delivered: DeliveryChildResult['delivery'];
        let files: { path: string; key: string }[] = [];
        for (let r = 1; r <= runs; r++) {
          const target = {
            endpoint: s3.endpoint,
            bucket: s3.bucket,
            prefix: `wharf/${layout.slug}/${format}/${r}`,
          };
          const controlSchema = `bench_delivery_${layout.slug}_${format}_${r}`;
          const connectorId = await prepareState(source.url, controlSchema, format, target);
          ctx.log(`delivery round ${r}/${runs}: ${format}, ${layout.name}`);
          const result = await runChild({
            kind: 'deliver',
            sourceUrl: source.url,
            windowsSchema,
            controlSchema,
            connectorId,
            stagingDir,
            format,
            target,
          });
          delivered = result.delivery!;
          if (delivered.rows !== rows)
            throw new Error(`delivered ${delivered.rows} clicks, expected ${rows}`);
          wharf.push(result.seconds);
          rss = Math.max(rss, result.maxRssMB);
          if (r === 1) {
            const dir = join(ctx.workDir, `delivered-${layout.slug}-${format}`);
            mkdirSync(dir, { recursive: true });
            files = await download(s3, target.prefix, dir);
          }
          ctx.log(`delivery round ${r}/${runs}: lib-storage upload of the same ${format} bytes`);
          const upload = await runChild({
            kind: 'upload',
            target: { ...target, prefix: `raw/${layout.slug}/${format}/${r}` },
            files,
          });
          raw.push(upload.seconds);
        }
        const seconds = median(wharf);
        const rawSeconds = median(raw);
        const mb = delivered!.bytes / 1_048_576;
        const ratio = rawSeconds / seconds;
        const each = (list: number[]) =>
          list.length > 1 ? `; runs ${list.map((t) => round(t)).join(' / ')} s` : '';
        // the ratio goal is for csv delivered from the default (daily) history windows
        const ratioGoal = format === 'csv' && layout.ratioGoal;
        const goal = ratioGoal
          ? `≥ ${CSV_GOAL}× lib-storage upload; RSS < ${RSS_GOAL_MB} MB`
          : `RSS < ${RSS_GOAL_MB} MB`;
        ctx.rows.push(
          {
            section: 'delivery',
            name: `Wharf delivery ${format} (${layout.name})`,
            seconds: round(seconds),
            rows,
            rowsPerSecond: Math.round(rows / seconds),
            mbPerSecond: round(mb / seconds),
            rssMB: round(rss, 0),
            ratio: round(ratio),
            goal,
            met: (!ratioGoal || ratio >= CSV_GOAL) && rss < RSS_GOAL_MB,
            note: `${delivered!.deliveries} deliveries, ${delivered!.files} objects, ${round(mb)} MB${format === 'csv' ? `; ${layout.note}` : ''}${each(wharf)}`,
          },
          {
            section: 'delivery',
            name: `lib-storage upload of the same ${format} bytes (${layout.name})`,
            seconds: round(rawSeconds),
            rows,
            rowsPerSecond: Math.round(rows / rawSeconds),
            mbPerSecond: round(mb / rawSeconds),
            note: `${files.length} objects${each(raw)}`,
          },
        );
        details[`${layout.slug}_${format}`] = { wharf, raw, rssMB: rss, delivered };
      }
    }
  } finally {
    await s3.stop();
  }
  ctx.extra.delivery = details;
}
