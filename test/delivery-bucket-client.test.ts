import { createHash, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { BucketClient } from '../delivery/bucket-client.js';
import { bucketError, OPERATION_PERMISSIONS } from '../delivery/bucket-errors.js';
import { listKeys, rawS3, testBucket } from './helpers/delivery.js';
import { startS3, type TestS3 } from './helpers/s3.js';

let s3: TestS3;
let raw: S3Client;
let bucket: BucketClient;

beforeAll(async () => {
  s3 = await startS3();
  raw = rawS3(s3);
  bucket = testBucket(s3, 'client', { partSize: 5 * 1024 * 1024 });
});

afterAll(async () => {
  bucket?.close();
  raw?.destroy();
  await s3?.stop();
});

/** Writes `bytes` to `key` in pieces of 64 KiB through a create-only writer. */
async function write(key: string, bytes: Buffer) {
  const writer = await bucket.createObject(key, 'application/octet-stream');
  for (let i = 0; i < bytes.length; i += 65536) {
    if (!writer.out.write(bytes.subarray(i, i + 65536))) {
      await new Promise((resolve) => writer.out.once('drain', resolve));
    }
  }
  writer.out.end();
  return writer.done();
}

async function read(key: string): Promise<Buffer> {
  const response = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the bucket client writes create-only', () => {
  it('creates an object, small or multipart, and reports its bytes and sha256', async () => {
    const small = Buffer.from('a small object\n');
    expect(await write('client/small.txt', small)).toEqual({
      key: 'client/small.txt',
      bytes: small.length,
      sha256: sha(small),
      outcome: 'created',
    });
    const big = randomBytes(12 * 1024 * 1024 + 17);
    const result = await write('client/big.bin', big);
    expect(result).toMatchObject({ bytes: big.length, sha256: sha(big), outcome: 'created' });
    expect(sha(await read('client/big.bin'))).toBe(sha(big));
    // went up as a multipart upload (s3rver reports its completion as a Post), the small one in one Put
    expect(s3.events.filter((e) => e.key === 'client/big.bin').map((e) => e.name)).toEqual([
      'ObjectCreated:Post',
    ]);
    expect(s3.events.filter((e) => e.key === 'client/small.txt').map((e) => e.name)).toEqual([
      'ObjectCreated:Put',
    ]);
  });

  it('counts an object already there with the same bytes as written, and never rewrites it', async () => {
    const bytes = randomBytes(6 * 1024 * 1024);
    await write('client/again.bin', bytes);
    const before = s3.events.filter((e) => e.key === 'client/again.bin').length;
    expect(await write('client/again.bin', bytes)).toMatchObject({ outcome: 'existing', sha256: sha(bytes) });
    expect(s3.events.filter((e) => e.key === 'client/again.bin').length).toBe(before);
  });

  it('refuses a key that holds other bytes, naming it, and leaves the object as it was', async () => {
    const foreign = Buffer.from('not written by wharf\n');
    await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'client/foreign.txt', Body: foreign }));
    const error = await write('client/foreign.txt', Buffer.from('wharf bytes\n')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).kind).toBe('terminal');
    expect((error as WharfError).oneLine()).toMatch(
      new RegExp(`s3://${s3.bucket}/client/foreign.txt already exists with other content.*never overwrites`),
    );
    // same size, other bytes: refused too
    const same = Buffer.from('not written by wharX\n');
    await expect(write('client/foreign.txt', same)).rejects.toThrow(/already exists with other content/);
    expect(await read('client/foreign.txt')).toEqual(foreign);
  });

  it('leaves nothing behind when the writer gives up, and lists keys', async () => {
    const writer = await bucket.createObject('client/aborted.bin', 'application/octet-stream');
    writer.out.write(randomBytes(7 * 1024 * 1024));
    writer.abort(new Error('the producer failed'));
    await new Promise((r) => setTimeout(r, 200));
    expect(await bucket.head('client/aborted.bin')).toBeUndefined();
    const keys: string[] = [];
    for await (const key of bucket.list('client/')) keys.push(key);
    expect(keys).toEqual(await listKeys(raw, s3.bucket, 'client/'));
    expect(keys).not.toContain('client/aborted.bin');
  });

  it('names the store when it cannot be reached, as a transient error', async () => {
    const nowhere = new BucketClient(
      { url: `s3://${s3.bucket}/x`, endpoint: 'http://127.0.0.1:9', accessKeyId: 'S3RVER' },
      new Secret('S3RVER'),
      { maxAttempts: 1 },
    );
    try {
      const error = (await nowhere.head('x/y').catch((e: unknown) => e)) as WharfError;
      expect(error.kind).toBe('transient');
      expect(error.oneLine()).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/);
    } finally {
      nowhere.close();
    }
  });

  it('never shows the secret key', () => {
    const client = new BucketClient(
      { url: `s3://${s3.bucket}/x`, endpoint: s3.endpoint, accessKeyId: 'AKIAEXAMPLE' },
      new Secret('super-secret-key'),
    );
    try {
      expect(JSON.stringify(client)).not.toContain('super-secret-key');
      expect(inspect(client, { depth: 6 })).not.toContain('super-secret-key');
    } finally {
      client.close();
    }
  });
});

describe('S3 errors as one line with the fix', () => {
  const denied = (status: number, name = 'AccessDenied') =>
    Object.assign(new Error('Access Denied'), { name, $metadata: { httpStatusCode: status } });

  it('names the permission each operation needs when access is denied', () => {
    const place = { bucket: 'acme', key: 'wharf/clicks/v1/x/part-00000.parquet', endpoint: 'https://s3' };
    for (const [operation, permission] of Object.entries(OPERATION_PERMISSIONS)) {
      const error = bucketError(denied(403), 'cannot do it', {
        ...place,
        operation: operation as 'PutObject',
      });
      expect(error.oneLine(), operation).toContain(`needs ${permission}`);
      expect(error.hint, operation).toContain(`grant ${permission} on arn:aws:s3:::acme`);
      expect(error.kind).toBe('terminal');
    }
    // HeadObject answers 403 without a body (no error code)
    const head = bucketError(denied(403, 'Forbidden'), 'cannot check', { ...place, operation: 'HeadObject' });
    expect(head.oneLine()).toContain('s3:GetObject and s3:ListBucket');
    expect(
      bucketError(denied(403), 'cannot list', {
        bucket: 'acme',
        endpoint: 'https://s3',
        operation: 'ListObjectsV2',
      }).hint,
    ).toBe('grant s3:ListBucket on arn:aws:s3:::acme to the access key');
  });

  it('tells refused credentials, a missing bucket, a wrong region and a busy store apart', () => {
    const place = { bucket: 'acme', endpoint: 'https://s3', operation: 'PutObject' as const };
    expect(bucketError(denied(403, 'InvalidAccessKeyId'), 'x', place).oneLine()).toMatch(
      /refuses the access key/,
    );
    expect(bucketError(denied(404, 'NoSuchBucket'), 'x', place).oneLine()).toMatch(
      /bucket acme does not exist/,
    );
    expect(bucketError(denied(301, 'PermanentRedirect'), 'x', place).hint).toMatch(/--s3-region/);
    expect(bucketError(denied(503, 'SlowDown'), 'x', place).kind).toBe('transient');
    expect(bucketError(denied(400, 'InvalidArgument'), 'x', place).kind).toBe('terminal');
  });
});
