import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { type Catalog, getStream } from '../catalog/types.js';
import { listDeliveries, pendingDeliveries, plannedThrough } from '../control/deliveries.js';
import { WharfError } from '../core/errors.js';
import type { BucketClient } from '../delivery/bucket-client.js';
import { type DeliverConnectorOptions, deliverConnector } from '../delivery/deliver-connector.js';
import {
  deliveryManifestKey,
  deliveryManifestSchema,
  deliveryObjectKey,
} from '../delivery/delivery-layout.js';
import { planDeliveries } from '../delivery/delivery-plan.js';
import type { FormatName } from '../exporter/writers/file-format.js';
import { initSource } from '../source/source-schema.js';
import { readManifest } from '../staging/manifest.js';
import { stagedParts } from '../staging/staged-part.js';
import { createDatabase } from './helpers/databases.js';
import {
  addBucketConnectorRow,
  committedWindows,
  csvGzRows,
  listKeys,
  migrateDeliveryControl,
  rawS3,
  testBucket,
} from './helpers/delivery.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { startS3, type TestS3 } from './helpers/s3.js';
import { openPlatform, type Platform, runExport, sleep } from './helpers/wharf.js';

// One-second windows and two-second slots, so that rows written now are delivered within seconds.
const EVERY = 2000;
const CONTROL = 'wharf_guarantees';
let p: Platform;
let s3: TestS3;
let raw: S3Client;
const clicks = getStream(trackingCatalog, 'clicks');

beforeAll(async () => {
  p = await openPlatform(await createDatabase('wharf_delivery_guarantees'));
  s3 = await startS3();
  raw = rawS3(s3);
  const c = await p.source.connect();
  try {
    await initSource(c, {});
  } finally {
    c.release();
  }
  for (const account of [1, 2, 3]) await insertAccount(p.source, account);
  await migrateDeliveryControl(p.source, CONTROL);
});

afterAll(async () => {
  raw?.destroy();
  await s3?.stop();
  await p?.close();
});

/** Waits until the rows written so far lie in closed slots, then exports them. */
async function exportClosed(): Promise<void> {
  await sleep(EVERY + 1100);
  await runExport(p);
}

interface Subject {
  readonly id: string;
  readonly bucket: BucketClient;
  readonly prefix: string;
  options(extra?: Partial<DeliverConnectorOptions>): Promise<DeliverConnectorOptions>;
}

async function subject(account: number, format: FormatName, prefix: string): Promise<Subject> {
  const id = await addBucketConnectorRow(p.source, CONTROL, account, format, `s3://${s3.bucket}/${prefix}`);
  const bucket = testBucket(s3, prefix);
  return {
    id,
    bucket,
    prefix,
    options: async (extra = {}) => ({
      control: { pool: p.source, schema: CONTROL },
      staging: { store: p.store, windows: await committedWindows(p.source) },
      bucket,
      catalog: trackingCatalog,
      connector: {
        id,
        account: String(account),
        streams: trackingCatalog.streams.map((s) => s.name),
        format,
        everyMs: EVERY,
      },
      ...extra,
    }),
  };
}

async function get(key: string): Promise<Buffer> {
  const response = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

/** The referrers of every delivered clicks object under a prefix. */
async function deliveredReferrers(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of await listKeys(raw, s3.bucket, `${prefix}/clicks/`)) {
    out.push(...csvGzRows(await get(key)).map((r) => r.referrer!));
  }
  return out.sort();
}

async function deleteAll(prefix: string): Promise<void> {
  for (const key of await listKeys(raw, s3.bucket, `${prefix}/`)) {
    await raw.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
  }
}

describe('delivery state lives on Wharf’s side', () => {
  it('never sends a delivery again after the customer deletes every object; later runs send only new ones', async () => {
    const a = await subject(1, 'csv', 'deleted');
    const quiet = await subject(3, 'json', 'quiet');
    await insertClicks(p.source, 1, 5, 'first');
    await exportClosed();
    const first = await deliverConnector(await a.options());
    expect(first.rows).toBeGreaterThan(5);
    expect(await deliveredReferrers(a.prefix)).toEqual(Array(5).fill('first'));
    const firstKeys = await listKeys(raw, s3.bucket, `${a.prefix}/`);

    // account 3 has its account rows in the first delivery, then nothing: later deliveries write nothing
    const q = await deliverConnector(await quiet.options());
    expect(q.files).toBeGreaterThan(0);
    const quietKeys = await listKeys(raw, s3.bucket, `${quiet.prefix}/`);

    await deleteAll(a.prefix);
    expect(await deliverConnector(await a.options())).toMatchObject({ deliveries: 0, files: 0 });
    expect(await listKeys(raw, s3.bucket, `${a.prefix}/`)).toEqual([]);

    await insertClicks(p.source, 1, 3, 'second');
    await exportClosed();
    const second = await deliverConnector(await a.options());
    expect(second.deliveries).toBeGreaterThan(0);
    expect(await deliveredReferrers(a.prefix)).toEqual(Array(3).fill('second'));
    const keys = await listKeys(raw, s3.bucket, `${a.prefix}/`);
    expect(keys.filter((k) => firstKeys.includes(k))).toEqual([]);

    const later = await deliverConnector(await quiet.options());
    expect(later.deliveries).toBeGreaterThan(0);
    expect(later.files).toBe(0);
    expect(await listKeys(raw, s3.bucket, `${quiet.prefix}/`)).toEqual(quietKeys);
    const recorded = await listDeliveries(p.source, CONTROL, quiet.id, 1000);
    expect(recorded.every((d) => d.status === 'done')).toBe(true);
    expect(recorded.filter((d) => d.outcome.manifestKey === undefined).length).toBeGreaterThan(0);
  });

  it('refuses a foreign object at a key it will write, naming it, unchanged, and completes once it is gone', async () => {
    const b = await subject(2, 'csv', 'foreign');
    await insertClicks(p.source, 2, 4, 'guarded');
    await exportClosed();
    // the key of the first clicks object Wharf will write for account 2
    const options = await b.options();
    const planned = planDeliveries(options.staging.windows, await plannedThrough(p.source, CONTROL, b.id), {
      everyMs: EVERY,
    });
    let target: string | undefined;
    for (const d of planned) {
      for (const id of d.windows) {
        const w = options.staging.windows.find((x) => x.id === id)!;
        if (stagedParts(p.store, id, await readManifest(p.store, w.manifestKey), clicks, '2').length > 0) {
          target ??= deliveryObjectKey(b.prefix, 'clicks', 1, d.id, 0, 'csv');
        }
      }
    }
    expect(target).toBeDefined();
    const foreign = Buffer.from('the customer put this here\n');
    await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: target!, Body: foreign }));

    const error = await deliverConnector(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).kind).toBe('terminal');
    expect((error as WharfError).oneLine()).toContain(
      `s3://${s3.bucket}/${target} already exists with other content`,
    );
    expect(await get(target!)).toEqual(foreign);
    const id = target!.split('/')[3]!;
    expect(await listKeys(raw, s3.bucket, deliveryManifestKey(b.prefix, id))).toEqual([]);
    expect((await pendingDeliveries(p.source, CONTROL, b.id)).map((d) => d.id)).toContain(id);
    // the objects of that delivery written before it (accounts, affiliates, links…) stay
    const before = await listKeys(raw, s3.bucket, `${b.prefix}/`);
    expect(before.length).toBeGreaterThan(1);

    const beforeBytes = await Promise.all(before.map(get));
    await raw.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: target! }));
    const done = await deliverConnector(await b.options());
    expect(done.existing).toBe(before.filter((k) => k.includes(`/${id}/`) && k !== target).length);
    expect(await pendingDeliveries(p.source, CONTROL, b.id)).toEqual([]);
    expect(await deliveredReferrers(b.prefix)).toEqual(Array(4).fill('guarded'));
    for (const [i, key] of before.entries()) {
      if (key !== target) expect(await get(key)).toEqual(beforeBytes[i]);
    }
  });

  it('replays a range under new keys (a revision suffix), never over the old objects', async () => {
    const c = await subject(2, 'parquet', 'replayed');
    const first = await deliverConnector(await c.options());
    expect(first.files).toBeGreaterThan(0);
    const before = await listKeys(raw, s3.bucket, `${c.prefix}/`);
    const bytesBefore = await Promise.all(before.map(get));

    const replay = await deliverConnector(await c.options({ run: { replay: {} } }));
    expect(replay.deliveries).toBe(first.deliveries);
    expect(replay.files).toBe(first.files);
    const after = await listKeys(raw, s3.bucket, `${c.prefix}/`);
    expect(after.length).toBe(before.length * 2);
    for (const [i, key] of before.entries()) expect(await get(key)).toEqual(bytesBefore[i]);
    const fresh = after.filter((k) => !before.includes(k));
    expect(fresh.every((k) => /_r1(\/|\.json$)/.test(k))).toBe(true);
    // the same rows under the new revision
    for (const key of fresh.filter((k) => k.includes('/_manifests/'))) {
      const m = deliveryManifestSchema.parse(JSON.parse((await get(key)).toString()));
      expect(m.revision).toBe(1);
      const original = deliveryManifestSchema.parse(
        JSON.parse((await get(key.replace('_r1.json', '.json'))).toString()),
      );
      expect(m.files.map((f) => [f.stream, f.rows, f.sha256])).toEqual(
        original.files.map((f) => [f.stream, f.rows, f.sha256]),
      );
    }
    // a second replay of part of it: revision 2 of those deliveries only
    const last = (await listDeliveries(p.source, CONTROL, c.id, 1))[0]!;
    const again = await deliverConnector(await c.options({ run: { replay: { from: last.start } } }));
    expect(again.deliveries).toBe(1);
    expect(again.lastDelivery).toBe(`${last.baseId}_r2`);
  });

  it('starts a new schema version when the catalog adds a column: new keys, named in the manifest', async () => {
    const d = await subject(3, 'csv', 'schema');
    // what is staged so far is delivered under v1
    const before = await deliverConnector(await d.options());
    expect(before.files).toBeGreaterThan(0);
    const v2: Catalog = {
      ...trackingCatalog,
      version: 2,
      streams: trackingCatalog.streams.map((s) =>
        s.name === 'clicks'
          ? { ...s, columns: [...s.columns, { name: 'campaign', type: 'text', nullable: true, since: 2 }] }
          : s,
      ),
    };
    await p.source.query('alter table clicks add column campaign text');
    await insertClicks(p.source, 3, 2, 'after the change');
    await p.source.query("update clicks set campaign = 'spring' where referrer = 'after the change'");
    await sleep(EVERY + 1100);
    await runExport(p, { catalog: v2 });
    const after = await deliverConnector(await d.options({ catalog: v2 }));
    expect(after.files).toBeGreaterThan(0);
    const keys = await listKeys(raw, s3.bucket, `${d.prefix}/clicks/`);
    expect(keys.some((k) => k.startsWith(`${d.prefix}/clicks/v1/`))).toBe(false);
    const v2Keys = keys.filter((k) => k.startsWith(`${d.prefix}/clicks/v2/`));
    expect(v2Keys.length).toBeGreaterThan(0);
    const rows = (await Promise.all(v2Keys.map(async (k) => csvGzRows(await get(k))))).flat();
    expect(rows.map((r) => [r.referrer, r.campaign])).toEqual([
      ['after the change', 'spring'],
      ['after the change', 'spring'],
    ]);
    // the older streams keep v1; the manifest names each version with its columns
    const manifestKeys = await listKeys(raw, s3.bucket, `${d.prefix}/_manifests/`);
    const last = deliveryManifestSchema.parse(JSON.parse((await get(manifestKeys.at(-1)!)).toString()));
    const clicksSchema = last.schemas.find((x) => x.stream === 'clicks');
    expect(clicksSchema?.schema_version).toBe(2);
    expect(clicksSchema?.columns.at(-1)).toEqual({ name: 'campaign', type: 'text', nullable: true });
    expect(last.files.filter((f) => f.stream === 'clicks').every((f) => f.schema_version === 2)).toBe(true);
  });
});
