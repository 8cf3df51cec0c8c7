import { spawn } from 'node:child_process';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { listDeliveries, pendingDeliveries } from '../control/deliveries.js';
import { deliverConnector } from '../delivery/deliver-connector.js';
import { deliveryManifestSchema } from '../delivery/delivery-layout.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase } from './helpers/databases.js';
import {
  addBucketConnectorRow,
  committedWindows,
  listKeys,
  migrateDeliveryControl,
  rawS3,
  testBucket,
} from './helpers/delivery.js';
import { readDelivered, sorted, sourceRows, type TextRow } from './helpers/delivery-readers.js';
import { startS3, type TestS3 } from './helpers/s3.js';
import { openPlatform, type Platform, runExport } from './helpers/wharf.js';

const TEN_MINUTES = 600_000;
let p: Platform;
let s3: TestS3;
let raw: S3Client;

beforeAll(async () => {
  p = await openPlatform(await createDatabase('wharf_delivery_crash'));
  s3 = await startS3();
  raw = rawS3(s3);
  const c = await p.source.connect();
  try {
    await initSource(c, {});
    const end = new Date(Math.floor(Date.now() / TEN_MINUTES) * TEN_MINUTES - 25 * 60_000);
    await seedSource(c, { accounts: 2, rows: 4000, seed: 4, days: 2, end });
  } finally {
    c.release();
  }
  await runExport(p, { sizes: { fineMs: 60_000, coarseMs: 86_400_000 } });
});

afterAll(async () => {
  raw?.destroy();
  await s3?.stop();
  await p?.close();
});

/** Runs test/helpers/delivery-child.ts, which kills itself at its `count`-th `step`; resolves to its signal. */
function killedDelivery(env: Record<string, string>, step: string, count: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/run-ts.js', 'test/helpers/delivery-child.ts'], {
      env: {
        ...process.env,
        ...env,
        SOURCE_URL: p.sourceUrl,
        STAGING_DIR: p.stagingDir,
        S3_ENDPOINT: s3.endpoint,
        BUCKET: s3.bucket,
        KILL_AT: step,
        KILL_COUNT: String(count),
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve(signal));
  });
}

async function get(key: string): Promise<Buffer> {
  const response = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

describe.each(['csv', 'parquet'] as const)('a %s delivery killed with SIGKILL', (format) => {
  it('between objects and before the manifest: the next run completes it with the same keys and no duplicate', async () => {
    const schema = `wharf_crash_${format}`;
    const prefix = `crash/${format}`;
    await migrateDeliveryControl(p.source, schema);
    const connector = await addBucketConnectorRow(p.source, schema, 1, format, `s3://${s3.bucket}/${prefix}`);
    const env = { SCHEMA: schema, PREFIX: prefix, CONNECTOR: connector, ACCOUNT: '1', FORMAT: format };

    // killed after its 5th object stored: deliveries with objects and no manifest
    expect(await killedDelivery(env, 'object', 5)).toBe('SIGKILL');
    const torn = await listKeys(raw, s3.bucket, `${prefix}/`);
    expect(torn.length).toBeGreaterThanOrEqual(5);
    const tornIds = new Set(torn.filter((k) => !k.includes('/_manifests/')).map((k) => k.split('/')[4]));
    expect([...tornIds].some((id) => !torn.includes(`${prefix}/_manifests/${id}.json`))).toBe(true);
    const pending = await pendingDeliveries(p.source, schema, connector);
    expect(pending.length).toBeGreaterThan(1);

    // killed again, just before the manifest of the delivery it resumed
    expect(await killedDelivery(env, 'manifest', 1)).toBe('SIGKILL');
    expect(await pendingDeliveries(p.source, schema, connector)).toEqual(pending);

    const bucket = testBucket(s3, prefix);
    try {
      const summary = await deliverConnector({
        control: { pool: p.source, schema },
        staging: { store: p.store, windows: await committedWindows(p.source) },
        bucket,
        catalog: trackingCatalog,
        connector: {
          id: connector,
          account: '1',
          streams: trackingCatalog.streams.map((s) => s.name),
          format,
          everyMs: TEN_MINUTES,
        },
        run: { tuning: { partBytes: 6000, rowGroupRows: 100 } },
      });
      expect(summary.existing).toBeGreaterThanOrEqual(5);
      expect(summary.deliveries).toBe(pending.length);
    } finally {
      bucket.close();
    }
    expect(await pendingDeliveries(p.source, schema, connector)).toEqual([]);

    // exactly the manifests' objects, each created once (the torn ones kept, not written again)
    const keys = await listKeys(raw, s3.bucket, `${prefix}/`);
    const manifestKeys = keys.filter((k) => k.startsWith(`${prefix}/_manifests/`));
    const manifests = await Promise.all(
      manifestKeys.map(async (k) => deliveryManifestSchema.parse(JSON.parse((await get(k)).toString()))),
    );
    const expected = [...manifestKeys, ...manifests.flatMap((m) => m.files.map((f) => f.key))].sort();
    expect(keys).toEqual(expected);
    for (const key of torn) expect(keys).toContain(key);
    for (const key of keys) {
      expect(s3.events.filter((e) => e.key === key && e.name.startsWith('ObjectCreated')).length, key).toBe(
        1,
      );
    }
    const done = await listDeliveries(p.source, schema, connector, 10_000);
    expect(
      done
        .filter((d) => d.outcome.manifestKey)
        .map((d) => d.id)
        .sort(),
    ).toEqual(manifests.map((m) => m.delivery_id).sort());

    // and the rows are the account's, each once
    const c = await p.source.connect();
    try {
      for (const stream of trackingCatalog.streams) {
        const rows: TextRow[] = [];
        for (const m of manifests) {
          for (const f of m.files.filter((x) => x.stream === stream.name)) {
            rows.push(...(await readDelivered(format, stream, await get(f.key))));
          }
        }
        expect(sorted(rows), stream.name).toEqual(sorted(await sourceRows(c, stream, '1', format)));
      }
    } finally {
      c.release();
    }
  });
});
