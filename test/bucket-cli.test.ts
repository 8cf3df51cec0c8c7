import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wharf } from './helpers/cli.js';
import { createDatabase, query } from './helpers/databases.js';
import { S3RVER_CREDENTIALS, startS3, type TestS3 } from './helpers/s3.js';
import { tempDir } from './helpers/wharf.js';

let s3: TestS3;
let raw: S3Client;
let sourceUrl: string;
let env: Record<string, string>;
let id: string;
const SECRET = S3RVER_CREDENTIALS.secretAccessKey.reveal();

async function keys(prefix: string): Promise<string[]> {
  const out = await raw.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function text(key: string): Promise<string> {
  const got = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await got.Body!.transformToByteArray()).toString('utf8');
}

const add = (
  account: number,
  extra: string[] = [],
  input = `${SECRET}\n`,
  keyId = S3RVER_CREDENTIALS.accessKeyId,
) =>
  wharf(
    [
      'connectors',
      'add',
      '--account',
      String(account),
      '--engine',
      'bucket',
      '--url',
      `s3://${s3.bucket}/customer-${account}`,
      '--s3-endpoint',
      s3.endpoint,
      '--s3-path-style',
      '--access-key-id',
      keyId,
      '--secret-access-key-stdin',
      '--json',
      ...extra,
    ],
    env,
    input,
  );

beforeAll(async () => {
  s3 = await startS3();
  raw = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_CREDENTIALS.accessKeyId, secretAccessKey: SECRET },
  });
  sourceUrl = await createDatabase('wharf_bucket_cli_src');
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-bucket-cli-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1m',
    WHARF_SETTLE: '0s',
    WHARF_LOG_LEVEL: 'warn',
  };
  expect((await wharf(['seed', '--accounts', '2', '--rows', '400', '--seed', '9'], env)).code).toBe(0);
});

afterAll(async () => {
  raw?.destroy();
  await s3?.stop();
});

describe('bucket connectors through the CLI', () => {
  it('`connectors add --engine bucket` checks the bucket, keeps the secret key secret, and prints its id', async () => {
    const r = await add(1, ['--format', 'csv', '--every', '10m']);
    expect(r.code, r.stderr).toBe(0);
    id = (JSON.parse(r.stdout) as { id: string }).id;
    const shown = await wharf(['connectors', 'show', id, '--json'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ engine: 'bucket', family: 'bucket', format: 'csv' });
    for (const out of [r.stdout, r.stderr, shown.stdout]) expect(out).not.toContain(SECRET);
    // the probe is gone: nothing but what Wharf delivers will be under the prefix
    expect(await keys('customer-1/')).toEqual([]);
    const stored = await query<{ t: string }>(sourceUrl, 'select t::text from wharf.secrets t');
    expect(stored.map((x) => x.t).join('\n')).not.toContain(SECRET);
  });

  it('a second bucket connector for the account is refused; a warehouse one is not blocked by it', async () => {
    const again = await add(1);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`wharf connectors disable ${id}`);
    const warehouseUrl = await createDatabase('wharf_bucket_cli_wh');
    const wh = await wharf(
      [
        'connectors',
        'add',
        '--account',
        '1',
        '--engine',
        'postgres',
        '--url',
        `${warehouseUrl}?sslmode=disable`,
      ],
      env,
    );
    expect(wh.code, wh.stderr).toBe(0);
  });

  it('`connectors rotate` takes a new secret key for a bucket, tested first, never shown', async () => {
    const r = await wharf(
      ['connectors', 'rotate', id, '--secret-access-key-stdin', '--json'],
      env,
      `${SECRET}\n`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id, secretVersion: 2 });
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });

  it('a key the bucket does not know fails the check in one line and stores nothing', async () => {
    const before = await query<{ n: string }>(sourceUrl, 'select count(*) as n from wharf.connectors');
    const r = await add(2, [], 'not-the-key\n', 'NOSUCHKEY');
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toContain('not-the-key');
    const after = await query<{ n: string }>(sourceUrl, 'select count(*) as n from wharf.connectors');
    expect(after[0]!.n).toBe(before[0]!.n);
  });

  it("`wharf sync` delivers the account's rows with a manifest per delivery; status shows the deliveries", async () => {
    const sync = await wharf(['sync', '--json'], env);
    expect(sync.code, sync.stderr).toBe(0);
    const result = JSON.parse(sync.stdout) as {
      load: { deliveries: { connector: string; files: number }[] };
    };
    const mine = result.load.deliveries.find((d) => d.connector === id)!;
    expect(mine.files).toBeGreaterThan(0);
    const all = await keys('customer-1/');
    const manifests = all.filter((k) => k.startsWith('customer-1/_manifests/'));
    expect(manifests.length).toBeGreaterThan(0);
    const manifest = JSON.parse(await text(manifests[0]!)) as {
      delivery_id: string;
      windows: string[];
      files: { key: string; stream: string; rows: number; format: string }[];
    };
    expect(manifest.windows.length).toBeGreaterThan(0);
    for (const f of manifest.files) {
      expect(f.key).toContain(f.stream);
      expect(f.key).toContain(manifest.delivery_id);
      expect(all).toContain(f.key);
    }
    // only account 1's clicks, and all of them
    const clicks = all.filter((k) => k.includes('/clicks/') && k.endsWith('.csv.gz'));
    let delivered = 0;
    for (const key of clicks) {
      const got = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
      const rows = parse(gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString('utf8'), {
        columns: true,
      }) as { account_id: string }[];
      for (const row of rows) expect(row.account_id).toBe('1');
      delivered += rows.length;
    }
    const source = await query<{ n: string }>(
      sourceUrl,
      'select count(*) as n from clicks where account_id = 1',
    );
    expect(delivered).toBe(Number(source[0]!.n));

    const status = await wharf(['status', '--json'], env);
    const st = JSON.parse(status.stdout) as {
      connectors: { id: string; delivery?: { deliveries: number } }[];
    };
    expect(st.connectors.find((c) => c.id === id)?.delivery?.deliveries).toBeGreaterThan(0);
    const runs = await query<{ kind: string; status: string }>(
      sourceUrl,
      'select kind, status from wharf.runs where connector_id = $1',
      [id],
    );
    expect(runs).toContainEqual({ kind: 'deliver', status: 'ok' });
  });

  it('the customer deletes every object: later syncs send nothing again', async () => {
    for (const key of await keys('customer-1/')) {
      await raw.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
    }
    const sync = await wharf(['sync', '--json'], env);
    expect(sync.code, sync.stderr).toBe(0);
    expect(await keys('customer-1/')).toEqual([]);
  });

  it('`wharf replay` re-delivers under new keys (a revision), never over the old ones', async () => {
    const r = await wharf(['replay', '--connector', id, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const after = await keys('customer-1/');
    expect(after.some((k) => /_r1\.json$/.test(k))).toBe(true);
  });
});
