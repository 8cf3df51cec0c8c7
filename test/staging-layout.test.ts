// The staged layout of manifest version 2: one object per stream and window, each account's rows a part of it,
// read by byte range; windows staged in version 1 (one object per account) still load.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { getStream } from '../catalog/types.js';
import { IntegrityError } from '../core/errors.js';
import { deliverConnector } from '../delivery/deliver-connector.js';
import { type DeliveredFile, deliveryManifestSchema } from '../delivery/delivery-layout.js';
import { copySql } from '../exporter/export.js';
import { countAccounts, inTableOrder, readOrderFor } from '../exporter/read-order.js';
import { writeStreamObject } from '../exporter/stream-object.js';
import { formatByName } from '../exporter/writers/formats.js';
import { seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import {
  MANIFEST_FORMAT_VERSION,
  manifestKeys,
  parseManifest,
  serializeManifest,
  type WindowManifest,
} from '../staging/manifest.js';
import { openStagingStore } from '../staging/open-store.js';
import { S3StagingStore } from '../staging/s3-store.js';
import { stagedParts } from '../staging/staged-part.js';
import type { StagingStore } from '../staging/staging-store.js';
import { createDatabase } from './helpers/databases.js';
import {
  addBucketConnectorRow,
  committedWindows,
  listKeys,
  migrateDeliveryControl,
  rawS3,
  testBucket,
} from './helpers/delivery.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';
import { compareWithSource, load } from './helpers/load-harness.js';
import { S3RVER_CREDENTIALS, startS3, type TestS3 } from './helpers/s3.js';
import {
  manifests,
  openPlatform,
  type Platform,
  readAll,
  readPart,
  runExport,
  tempDir,
} from './helpers/wharf.js';

const sizes = { fineMs: 60_000, coarseMs: 86_400_000 };
const ACCOUNTS = 24;
const csv = formatByName('csv');

let p: Platform;
let s3: TestS3;

beforeAll(async () => {
  p = await openPlatform(await createDatabase('wharf_layout'));
  const c = await p.source.connect();
  await initSource(c, {});
  // more accounts than a read in table order takes: the big windows are read sorted by account
  await seedSource(c, { accounts: ACCOUNTS, rows: 6000, seed: 3, days: 2 });
  c.release();
  await runExport(p, { sizes });
  s3 = await startS3();
});

afterAll(async () => {
  await s3?.stop();
  await p?.close();
});

/** The primary keys of an account's rows of a stream in a window, from the source. */
async function sourceKeys(m: WindowManifest, stream: string, account: string): Promise<string[]> {
  const s = getStream(trackingCatalog, stream);
  const pk = s.primaryKey[0]!;
  const { rows } = await p.source.query<{ k: string }>(
    `select ${pk}::text as k from ${stream} where ${s.tenantColumn} = $1 and updated_at >= $2 and updated_at < $3`,
    [account, m.window.start, m.window.end],
  );
  return rows.map((r) => r.k).sort();
}

/** A part of clicks that is not the first of its object. */
const laterClicksPart = (f: WindowManifest['files'][number]) => f.stream === 'clicks' && (f.offset ?? 0) > 0;

describe('manifest version 2', () => {
  it('stages one object per stream and window; each account is one part of it, a csv.gz file of its own', async () => {
    const all = await manifests(p);
    expect(all.length).toBeGreaterThan(2);
    let manyAccounts = 0;
    for (const m of all) {
      expect(m.manifest_version).toBe(MANIFEST_FORMAT_VERSION);
      const objects = m.objects ?? [];
      const withRows = trackingCatalog.streams.filter((s) => (m.streams[s.name]?.rows ?? 0) > 0);
      expect(objects.map((o) => o.key)).toEqual(withRows.map((s) => `csv/${m.window.id}/${s.name}.csv.gz`));
      // nothing else in the window's folder but its manifest
      const listed: string[] = [];
      for await (const key of p.store.list(`csv/${m.window.id}/`)) listed.push(key);
      expect(listed.sort()).toEqual([...manifestKeys(m), `csv/${m.window.id}/_manifest.json`].sort());

      for (const object of objects) {
        const stream = getStream(trackingCatalog, object.stream);
        const whole = await readAll(p.store, object.key);
        expect(createHash('sha256').update(whole).digest('hex')).toBe(object.sha256);
        const parts = m.files.filter((f) => f.key === object.key);
        const accounts = parts.map((f) => f.account);
        // parts in account order, one per account
        expect(accounts).toEqual([...new Set(accounts)].sort((a, b) => Number(a) - Number(b)));
        if (accounts.length > 16) manyAccounts++;
        const header = `${stream.columns.map((c) => c.name).join(',')}\n`;
        // the whole object is a multi-member gzip file: every part's header, then its rows
        expect(gunzipSync(whole).toString('utf8').split(header).length - 1).toBe(parts.length);
        for (const account of accounts) {
          const mine = stagedParts(p.store, m.window.id, m, stream, account);
          expect(mine).toHaveLength(1);
          const rows = await readPart(mine[0]!);
          expect(rows).toHaveLength(mine[0]!.rows);
          expect(new Set(rows.map((r) => r[stream.tenantColumn]))).toEqual(new Set([account]));
          const pk = stream.primaryKey[0]!;
          expect(rows.map((r) => r[pk]).sort(), `${m.window.id} ${stream.name} ${account}`).toEqual(
            await sourceKeys(m, stream.name, account),
          );
        }
      }
    }
    expect(manyAccounts).toBeGreaterThan(0);
  });

  it('gives the same objects and manifests exported again into S3, and parts come back by ranged GETs', async () => {
    const store = new S3StagingStore(`s3://${s3.bucket}/layout`, {
      endpoint: s3.endpoint,
      credentials: S3RVER_CREDENTIALS,
    });
    const first = await manifests(p);
    await runExport(p, { sizes, store, controlSchema: 'wharf_s3', maxWindows: first.length });
    const { rows } = await p.source.query<{ manifest_key: string }>(
      "select manifest_key from wharf_s3.windows where format = 'csv' order by start_at",
    );
    const again: WindowManifest[] = [];
    for (const r of rows) {
      again.push(parseManifest((await readAll(store, r.manifest_key)).toString('utf8'), r.manifest_key));
    }
    expect(again).toEqual(first);
    const m = again.find((x) => x.files.some(laterClicksPart))!;
    const clicks = getStream(trackingCatalog, 'clicks');
    const account = m.files.find(laterClicksPart)!.account;
    const [part] = stagedParts(store, m.window.id, m, clicks, account);
    const viaS3 = await readPart(part!);
    expect(viaS3.map((r) => r.event_id).sort()).toEqual(await sourceKeys(m, 'clicks', account));
    store.close();
  });

  it('fails the read of a part whose bytes were changed, naming the range and the object', async () => {
    const m = (await manifests(p)).find((x) => x.files.some(laterClicksPart))!;
    const f = m.files.find(laterClicksPart)!;
    const dir = tempDir();
    const copy = openStagingStore(`file://${dir}`);
    const whole = await readAll(p.store, f.key);
    whole[f.offset! + 20] = (whole[f.offset! + 20] ?? 0) ^ 0xff;
    await writeFile(join(dir, 'x'), whole);
    await copy.putFile(f.key, join(dir, 'x'), { sha256: '0'.repeat(64) });
    const [part] = stagedParts(copy, m.window.id, m, getStream(trackingCatalog, 'clicks'), f.account);
    const error = await readPart(part!).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).message).toContain(`bytes ${f.offset}-${f.offset! + f.bytes - 1}`);
    expect((error as IntegrityError).message).toContain(f.key);
  });

  it('refuses manifests whose parts do not tile their objects, and version 1 manifests with offsets', async () => {
    const m = (await manifests(p)).find((x) => x.files.length > 20)!;
    const text = (edit: (json: Record<string, unknown> & WindowManifest) => void) => {
      const json = JSON.parse(serializeManifest(m));
      edit(json);
      return JSON.stringify(json);
    };
    const cases: [string, string][] = [
      ['a gap', text((j) => (j.files[1]!.offset = j.files[1]!.offset! + 1))],
      ['an overlap', text((j) => (j.files[1]!.offset = j.files[1]!.offset! - 1))],
      ['a part of another stream', text((j) => (j.files[0]!.stream = 'payouts'))],
      ['no objects', text((j) => delete j.objects)],
      ['rows that do not add up', text((j) => (j.objects![0]!.rows += 1))],
      [
        'a version 1 manifest with offsets',
        text((j) => ((j as { manifest_version: number }).manifest_version = 1)),
      ],
      ['an unknown version', text((j) => ((j as { manifest_version: number }).manifest_version = 3))],
    ];
    for (const [name, bad] of cases) {
      expect(() => parseManifest(bad, 'csv/w/_manifest.json'), name).toThrow(IntegrityError);
    }
    expect(parseManifest(serializeManifest(m), 'k')).toEqual(m);
  });
});

describe('read order', () => {
  let url: string;
  let client: pg.Client;
  const clicks = getStream(trackingCatalog, 'clicks');

  beforeAll(async () => {
    url = await createDatabase('wharf_order');
    client = new pg.Client({ connectionString: url });
    await client.connect();
    await initSource(client, {});
    for (const a of [2, 9, 10]) await insertAccount(client, a);
    // stored interleaved: account 10, then 2, then 9, then 10 again
    await insertClicks(client, 10, 400);
    await insertClicks(client, 2, 3);
    await insertClicks(client, 9, 250);
    await insertClicks(client, 10, 100);
    await client.query("set timezone = 'UTC'; set datestyle = 'ISO, YMD'");
  });

  afterAll(async () => {
    await client?.end();
  });

  async function object(order: 'account' | 'table', spoolDir: string) {
    const start = new Date(0);
    const end = new Date('2200-01-01');
    await client.query('begin isolation level repeatable read read only');
    try {
      const read = () =>
        writeStreamObject(client.query(copyTo(copySql(clicks, csv, 'public', start, end, order))), {
          stream: clicks,
          format: csv,
          order,
          spoolDir,
        });
      return await (order === 'table' ? inTableOrder(client, read) : read());
    } finally {
      await client.query('commit');
    }
  }

  it('counts the accounts of a window and reads a few in table order, many sorted', async () => {
    expect(await countAccounts(client, clicks, 'public', new Date(0), new Date('2200-01-01'))).toBe(3);
    expect(await countAccounts(client, clicks, 'public', new Date(0), new Date(1))).toBe(0);
    expect(readOrderFor(3)).toBe('table');
    expect(readOrderFor(16)).toBe('table');
    expect(readOrderFor(17)).toBe('account');
  });

  it('writes the same parts in either order: accounts in numeric order, the same rows, the same checksum', async () => {
    const dir = tempDir();
    const sorted = await object('account', dir);
    const table = await object('table', dir);
    expect(table.parts.map((x) => x.account)).toEqual(['2', '9', '10']);
    expect(sorted.parts.map((x) => [x.account, x.rows])).toEqual(table.parts.map((x) => [x.account, x.rows]));
    expect(table.parts.map((x) => x.rows)).toEqual([3, 250, 500]);
    expect(table.checksum).toBe(sorted.checksum);
    const linesOf = (o: typeof table, i: number) => {
      const whole = readFileSync(o.spooled!.path);
      const part = o.parts[i]!;
      return gunzipSync(whole.subarray(part.offset, part.offset + part.bytes))
        .toString('utf8')
        .split('\n')
        .slice(1, -1);
    };
    for (let i = 0; i < 3; i++) expect(linesOf(table, i).sort()).toEqual(linesOf(sorted, i).sort());
    // table order keeps the order rows are stored in: account 10's first 400 clicks, then its last 100
    const stamps = linesOf(table, 2).map((line) => line.split(',')[2]);
    expect(new Set(stamps.slice(0, 400)).size).toBe(1);
    expect(new Set(stamps.slice(400)).size).toBe(1);
    expect(stamps[400]! > stamps[0]!).toBe(true);
    // account order sorts by primary key
    const keys = linesOf(sorted, 2).map((line) => line.split(',')[1]!);
    expect(keys).toEqual([...keys].sort());
    // and reading in table order again gives the same bytes
    const again = await object('table', dir);
    expect(again.spooled!.sha256).toBe(table.spooled!.sha256);
  });
});

describe('a window staged in manifest version 1', () => {
  /** Rewrites every window of `p.store` into `to` as version 1: each part its own object, a v1 manifest. */
  async function asVersion1(to: StagingStore, dir: string): Promise<void> {
    const { rows } = await p.source.query<{ manifest_key: string }>(
      "select manifest_key from wharf.windows where format = 'csv'",
    );
    for (const { manifest_key } of rows) {
      const m = parseManifest((await readAll(p.store, manifest_key)).toString('utf8'), manifest_key);
      const files: WindowManifest['files'] = [];
      for (const f of m.files) {
        const bytes: Buffer[] = [];
        for await (const c of await p.store.get(f.key, {
          range: { offset: f.offset!, length: f.bytes },
          sha256: f.sha256,
        })) {
          bytes.push(c as Buffer);
        }
        const key = `csv/${m.window.id}/${f.stream}/${f.account}.csv.gz`;
        const local = join(dir, 'part');
        await writeFile(local, Buffer.concat(bytes));
        await to.putFile(key, local, { sha256: f.sha256 });
        files.push({
          key,
          stream: f.stream,
          account: f.account,
          rows: f.rows,
          bytes: f.bytes,
          sha256: f.sha256,
        });
      }
      const v1: WindowManifest = { ...m, manifest_version: 1, files };
      delete v1.objects;
      const text = serializeManifest(v1);
      await writeFile(join(dir, 'manifest'), text);
      await to.putFile(manifest_key, join(dir, 'manifest'), {
        sha256: createHash('sha256').update(text).digest('hex'),
      });
    }
  }

  let v1: StagingStore;

  beforeAll(async () => {
    const dir = tempDir();
    v1 = openStagingStore(`file://${dir}/staging`);
    await asVersion1(v1, dir);
  });

  it('still loads, the same as the same windows in version 2', async () => {
    const anyManifest = (
      await p.source.query<{ k: string }>('select manifest_key as k from wharf.windows limit 1')
    ).rows[0]!.k;
    expect(JSON.parse((await readAll(v1, anyManifest)).toString('utf8')).manifest_version).toBe(1);

    const warehouseUrl = await createDatabase('wharf_layout_wh');
    for (const [store, schema] of [
      [v1, 'from_v1'],
      [p.store, 'from_v2'],
    ] as const) {
      const target = { warehouseUrl, schema, account: 7, connectorId: `c-${schema}` };
      const summary = await load(p.source, store, target);
      expect(summary.rowsStaged).toBeGreaterThan(0);
      const cmp = await compareWithSource(p.source, target);
      for (const [stream, v] of Object.entries(cmp))
        expect(v.warehouse, `${schema} ${stream}`).toEqual(v.source);
    }
  });

  it('is delivered to a bucket with the same objects as the same windows in version 2', async () => {
    const raw = rawS3(s3);
    const delivered: { files: Omit<DeliveredFile, 'key'>[]; keys: string[] }[] = [];
    for (const [store, name] of [
      [v1, 'from-v1'],
      [p.store, 'from-v2'],
    ] as const) {
      const schema = `wharf_${name.replace('-', '_')}`;
      await migrateDeliveryControl(p.source, schema);
      const id = await addBucketConnectorRow(p.source, schema, 7, 'csv', `s3://${s3.bucket}/${name}`);
      const bucket = testBucket(s3, name);
      try {
        const summary = await deliverConnector({
          control: { pool: p.source, schema },
          staging: { store, windows: await committedWindows(p.source) },
          bucket,
          catalog: trackingCatalog,
          connector: {
            id,
            account: '7',
            streams: trackingCatalog.streams.map((x) => x.name),
            format: 'csv',
            everyMs: 600_000,
          },
        });
        expect(summary.files, name).toBeGreaterThan(0);
      } finally {
        bucket.close();
      }
      const files: Omit<DeliveredFile, 'key'>[] = [];
      const keys: string[] = [];
      for (const key of await listKeys(raw, s3.bucket, `${name}/_manifests/`)) {
        const response = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
        const m = deliveryManifestSchema.parse(JSON.parse(await response.Body!.transformToString()));
        for (const { key: fileKey, ...rest } of m.files) {
          keys.push(fileKey.slice(name.length));
          files.push(rest);
        }
      }
      delivered.push({ files, keys });
    }
    raw.destroy();
    expect(delivered[0]!.files.length).toBeGreaterThan(0);
    expect(delivered[0]).toEqual(delivered[1]);
  });
});
