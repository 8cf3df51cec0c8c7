import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { listDeliveries } from '../control/deliveries.js';
import type { BucketClient } from '../delivery/bucket-client.js';
import { deliverConnector } from '../delivery/deliver-connector.js';
import { type DeliveryManifest, deliveryManifestSchema } from '../delivery/delivery-layout.js';
import type { FormatName } from '../exporter/writers/file-format.js';
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
import {
  insertAwkwardRows,
  readDelivered,
  sorted,
  sourceRows,
  type TextRow,
} from './helpers/delivery-readers.js';
import { startS3, type TestS3 } from './helpers/s3.js';
import { openPlatform, type Platform, runExport } from './helpers/wharf.js';

const TEN_MINUTES = 600_000;
const ACCOUNT = 2;
let p: Platform;
let s3: TestS3;
let raw: S3Client;

beforeAll(async () => {
  p = await openPlatform(await createDatabase('wharf_delivery_roundtrip'));
  s3 = await startS3();
  raw = rawS3(s3);
  const c = await p.source.connect();
  try {
    await initSource(c, {});
    // all rows lie well before the last closed 10-minute slot
    const end = new Date(Math.floor(Date.now() / TEN_MINUTES) * TEN_MINUTES - 25 * 60_000);
    await seedSource(c, { accounts: 3, rows: 3000, seed: 11, days: 1, end });
    for (const account of [1, 2, 3]) await insertAwkwardRows(c, account, new Date(end.getTime() + 60_000));
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

async function get(key: string): Promise<Buffer> {
  const response = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Delivers the account's streams in `format` under its own control schema and prefix. */
async function deliverAll(format: FormatName, bucket: BucketClient, schema: string) {
  await migrateDeliveryControl(p.source, schema);
  const id = await addBucketConnectorRow(
    p.source,
    schema,
    ACCOUNT,
    format,
    `s3://${s3.bucket}/acme/${format}`,
  );
  const options = {
    control: { pool: p.source, schema },
    staging: { store: p.store, windows: await committedWindows(p.source) },
    bucket,
    catalog: trackingCatalog,
    connector: {
      id,
      account: String(ACCOUNT),
      streams: trackingCatalog.streams.map((s) => s.name),
      format,
      everyMs: TEN_MINUTES,
    },
    // small parts and row groups, so that streams are split
    run: { tuning: { partBytes: 6_000, rowGroupRows: 100 } },
  };
  return { id, options, summary: await deliverConnector(options) };
}

describe.each(['csv', 'parquet', 'json'] as const)('delivery in %s', (format) => {
  let bucket: BucketClient;
  let manifests: DeliveryManifest[];
  let delivered: Awaited<ReturnType<typeof deliverAll>>;

  beforeAll(async () => {
    bucket = testBucket(s3, `acme/${format}`);
    delivered = await deliverAll(format, bucket, `wharf_${format}`);
    const keys = await listKeys(raw, s3.bucket, `acme/${format}/_manifests/`);
    manifests = [];
    for (const key of keys)
      manifests.push(deliveryManifestSchema.parse(JSON.parse((await get(key)).toString())));
  });

  afterAll(() => bucket?.close());

  it('writes objects per stream and delivery, and a manifest per delivery with rows, last', async () => {
    const { summary } = delivered;
    expect(summary.deliveries).toBeGreaterThanOrEqual(3);
    expect(summary.files).toBeGreaterThan(trackingCatalog.streams.length);
    const all = await listKeys(raw, s3.bucket, `acme/${format}/`);
    const listed = manifests.flatMap((m) => [
      ...m.files.map((f) => f.key),
      `acme/${format}/_manifests/${m.delivery_id}.json`,
    ]);
    expect(all).toEqual([...listed].sort());
    for (const m of manifests) {
      for (const f of m.files) {
        expect(Object.keys(f).slice(0, 6)).toEqual(['key', 'stream', 'rows', 'bytes', 'sha256', 'format']);
        expect(f.key).toContain(`/${f.stream}/`);
        expect(f.key).toContain(`/${m.delivery_id}/`);
        expect(
          f.key.startsWith(`acme/${format}/${f.stream}/v${f.schema_version}/${m.delivery_id}/part-`),
        ).toBe(true);
        expect(f.format).toBe(format);
        const bytes = await get(f.key);
        expect(bytes.length).toBe(f.bytes);
        expect(sha256(bytes)).toBe(f.sha256);
      }
      expect(m.windows.length).toBeGreaterThan(0);
      // the manifest was written after every object of its delivery
      const order = s3.events.map((e) => e.key);
      const manifestAt = order.lastIndexOf(`acme/${format}/_manifests/${m.delivery_id}.json`);
      for (const f of m.files) expect(order.lastIndexOf(f.key)).toBeLessThan(manifestAt);
    }
    // some streams are split into several parts
    expect(
      manifests.some((m) =>
        m.files.some((f) => f.key.endsWith('part-00001.' + f.key.split('.').slice(1).join('.'))),
      ),
    ).toBe(true);
    // every delivery is recorded done, those without rows too; none has a manifest without files
    const recorded = await listDeliveries(p.source, `wharf_${format}`, delivered.id, 10_000);
    expect(recorded.every((d) => d.status === 'done')).toBe(true);
    expect(
      recorded
        .filter((d) => d.outcome.manifestKey !== undefined)
        .map((d) => d.id)
        .sort(),
    ).toEqual(manifests.map((m) => m.delivery_id).sort());
  });

  it("holds the account's rows value for value, awkward ones included, and no other account's", async () => {
    const c = await p.source.connect();
    try {
      for (const stream of trackingCatalog.streams) {
        const rows: TextRow[] = [];
        for (const m of manifests) {
          for (const f of m.files.filter((x) => x.stream === stream.name)) {
            const got = await readDelivered(format, stream, await get(f.key));
            expect(got, f.key).toHaveLength(f.rows);
            rows.push(...got);
          }
        }
        expect(
          rows.every((r) => r[0] === String(ACCOUNT)),
          stream.name,
        ).toBe(true);
        const expected = await sourceRows(c, stream, String(ACCOUNT), format);
        expect(expected.length, stream.name).toBeGreaterThan(0);
        expect(sorted(rows), stream.name).toEqual(sorted(expected));
      }
      // the awkward values really are there
      const affiliates = sorted(await sourceRows(c, trackingCatalog.streams[2]!, String(ACCOUNT), 'csv'));
      const emails = affiliates.map((r) => r[4]);
      expect(emails).toContain(null);
      expect(emails).toContain('');
      expect(emails).toContain('\\N');
      expect(emails).toContain('😀 𝄞 Zoë "quoted", comma\r\nnew line');
    } finally {
      c.release();
    }
  });

  it('delivers nothing more when run again on the same windows', async () => {
    const again = await deliverConnector(delivered.options);
    expect(again).toMatchObject({ deliveries: 0, files: 0, rows: 0 });
  });
});

// the csv deliveries made above, loaded the way docs/bucket-delivery.md shows for PostgreSQL
describe('the PostgreSQL ingestion SQL of docs/bucket-delivery.md', () => {
  it("folds the csv deliveries into the account's clicks, loaded twice", async () => {
    const manifests: DeliveryManifest[] = [];
    for (const key of await listKeys(raw, s3.bucket, 'acme/csv/_manifests/')) {
      manifests.push(deliveryManifestSchema.parse(JSON.parse((await get(key)).toString())));
    }
    expect(manifests.length).toBeGreaterThan(0);

    const c = await p.source.connect();
    try {
      await c.query(`create schema if not exists ingest;
          create table if not exists ingest.clicks (
            account_id bigint not null, event_id uuid primary key, updated_at timestamptz not null,
            link_id bigint not null, affiliate_id bigint not null, traffic_source_id bigint, occurred_at timestamptz not null,
            ip text, user_agent text, referrer text, country char(2), device text, is_unique boolean not null)`);
      for (let round = 0; round < 2; round++) {
        for (const m of manifests) {
          await c.query('begin');
          await c.query(
            'create temp table landing_clicks (like ingest.clicks including defaults) on commit drop',
          );
          for (const f of m.files.filter((x) => x.stream === 'clicks')) {
            await pipeline(
              Readable.from([gunzipSync(await get(f.key))]),
              c.query(copyFrom('copy landing_clicks from stdin with (format csv, header match)')),
            );
          }
          await c.query(`insert into ingest.clicks
              select distinct on (event_id) * from landing_clicks order by event_id, updated_at desc
              on conflict (event_id) do update set
                (account_id, updated_at, link_id, affiliate_id, traffic_source_id, occurred_at, ip, user_agent, referrer,
                 country, device, is_unique) =
                (excluded.account_id, excluded.updated_at, excluded.link_id, excluded.affiliate_id, excluded.traffic_source_id,
                 excluded.occurred_at, excluded.ip, excluded.user_agent, excluded.referrer, excluded.country, excluded.device,
                 excluded.is_unique)
              where ingest.clicks.updated_at <= excluded.updated_at`);
          await c.query('commit');
        }
      }
      const diff = await c.query<{ n: string }>(
        `select (select count(*) from (select * from clicks where account_id = $1 except all select * from ingest.clicks) a)
                + (select count(*) from (select * from ingest.clicks except all select * from clicks where account_id = $1) b) as n`,
        [ACCOUNT],
      );
      expect(Number(diff.rows[0]!.n)).toBe(0);
      const n = await c.query<{ n: string }>('select count(*) as n from ingest.clicks');
      expect(Number(n.rows[0]!.n)).toBeGreaterThan(100);
    } finally {
      c.release();
    }
  });
});
