import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBucket } from '../delivery/bucket-check.js';
import type { BucketEndpoint } from '../delivery/bucket-settings.js';
import { checkFailure } from '../destinations/check-report.js';
import { listKeys, rawS3 } from './helpers/delivery.js';
import { type DeniedOperation, type DenyProxy, startDenyProxy } from './helpers/deny-proxy.js';
import { S3RVER_CREDENTIALS, startS3, type TestS3 } from './helpers/s3.js';

let s3: TestS3;
let proxy: DenyProxy;
const secret = S3RVER_CREDENTIALS.secretAccessKey;

beforeAll(async () => {
  s3 = await startS3();
  proxy = await startDenyProxy(s3.endpoint);
});

afterAll(async () => {
  await proxy?.stop();
  await s3?.stop();
});

const settings = (overrides: Partial<BucketEndpoint> = {}): BucketEndpoint => ({
  url: `s3://${s3.bucket}/acme/wharf`,
  endpoint: s3.endpoint,
  accessKeyId: S3RVER_CREDENTIALS.accessKeyId,
  ...overrides,
});

const STEPS = ['reach', 'authenticate', 'bucket', 'write probe', 'read probe', 'delete probe'];

describe('bucket connector checks', () => {
  it('pass in order on a bucket that works, and leave no probe behind', async () => {
    const report = await checkBucket(settings(), secret);
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual(STEPS.map((s) => [s, true]));
    expect(report.ok).toBe(true);
    expect(report.target).toBe(`s3://${s3.bucket}/acme/wharf at ${s3.endpoint}`);
    const raw = rawS3(s3);
    try {
      expect(await listKeys(raw, s3.bucket, 'acme/')).toEqual([]);
    } finally {
      raw.destroy();
    }
    // the probe was written under the prefix, then deleted
    expect(
      s3.events.some((e) => e.name === 'ObjectCreated:Put' && e.key.startsWith('acme/wharf/_wharf_check/')),
    ).toBe(true);
  });

  it('stop at the endpoint that cannot be reached', async () => {
    const report = await checkBucket(settings({ endpoint: 'http://127.0.0.1:9' }), secret, {
      timeoutMs: 2000,
    });
    expect(report.ok).toBe(false);
    expect(report.checks).toHaveLength(1);
    expect(report.checks[0]).toMatchObject({ name: 'reach', ok: false, code: 'ECONNREFUSED' });
    expect(report.checks[0]!.message).toMatch(
      /cannot reach http:\/\/127\.0\.0\.1:9: connection refused; check --s3-endpoint/,
    );
  });

  it('name an access key the store does not know', async () => {
    const report = await checkBucket(settings({ accessKeyId: 'NOSUCHKEY' }), secret);
    const failed = report.checks.find((c) => !c.ok)!;
    expect(failed).toMatchObject({ name: 'authenticate', code: 'InvalidAccessKeyId' });
    expect(failed.message).toMatch(/refuses the access key \(InvalidAccessKeyId\); check --access-key-id/);
  });

  it('name a bucket that does not exist', async () => {
    const report = await checkBucket(settings({ url: 's3://no-such-bucket-here/x' }), secret);
    const failed = report.checks.find((c) => !c.ok)!;
    expect(failed.name).toBe('bucket');
    expect(failed.message).toMatch(
      /bucket no-such-bucket-here does not exist at http:\/\/127\.0\.0\.1:\d+; create the bucket/,
    );
    expect(report.checks.map((c) => c.name)).toEqual(['reach', 'authenticate', 'bucket']);
    // the one-line error the CLI prints
    expect(checkFailure(report, '7')!.oneLine()).toMatch(
      /check "bucket" failed .*connector 7.*create the bucket/,
    );
  });

  const denials: [DeniedOperation, string, string][] = [
    ['ListObjectsV2', 'bucket', 'grant s3:ListBucket on arn:aws:s3:::BUCKET to the access key'],
    [
      'HeadObject',
      'write probe',
      'grant s3:GetObject and s3:ListBucket on arn:aws:s3:::BUCKET/acme/wharf/_wharf_check/*',
    ],
    ['PutObject', 'write probe', 'grant s3:PutObject on arn:aws:s3:::BUCKET/acme/wharf/_wharf_check/*'],
    ['GetObject', 'read probe', 'grant s3:GetObject on arn:aws:s3:::BUCKET/acme/wharf/_wharf_check/*'],
    [
      'DeleteObject',
      'delete probe',
      'grant s3:DeleteObject on arn:aws:s3:::BUCKET/acme/wharf/_wharf_check/*',
    ],
  ];
  for (const [operation, step, fix] of denials) {
    it(`name the missing permission when ${operation} is denied (step "${step}")`, async () => {
      proxy.deny = new Set([operation]);
      try {
        const report = await checkBucket(settings({ endpoint: proxy.endpoint }), secret);
        const failed = report.checks.find((c) => !c.ok)!;
        expect(failed.name).toBe(step);
        expect(failed.message).toContain(fix.replace('BUCKET', s3.bucket));
        expect(failed.message).not.toContain('S3RVER');
        expect(report.checks.map((c) => c.name)).toEqual(STEPS.slice(0, STEPS.indexOf(step) + 1));
        if (operation === 'DeleteObject') expect(failed.message).toMatch(/the probe is left behind/);
      } finally {
        proxy.deny = new Set();
      }
    });
  }
});
