import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { UsageError, WharfError } from '../core/errors.js';
import { FileStagingStore } from '../staging/file-store.js';
import { checkStagingStore, openStagingStore } from '../staging/open-store.js';
import { S3StagingStore } from '../staging/s3-store.js';
import { S3RVER_CREDENTIALS, startS3, type TestS3 } from './helpers/s3.js';

let work: string;
let s3: TestS3;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-test-open-store-'));
  s3 = await startS3();
});

afterAll(async () => {
  await s3?.stop();
  await rm(work, { recursive: true, force: true });
});

afterEach(() => {
  vi.unstubAllEnvs();
});

/** The SDK's default provider chain reads these; s3rver accepts its fixed pair. */
function stubS3Env(): void {
  vi.stubEnv('AWS_ACCESS_KEY_ID', S3RVER_CREDENTIALS.accessKeyId);
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', S3RVER_CREDENTIALS.secretAccessKey.reveal());
  vi.stubEnv('AWS_REGION', 'us-east-1');
  vi.stubEnv('WHARF_S3_ENDPOINT', '');
  vi.stubEnv('AWS_ENDPOINT_URL_S3', '');
  vi.stubEnv('AWS_ENDPOINT_URL', '');
}

describe('openStagingStore', () => {
  it('defaults to ./wharf-data/staging', () => {
    const store = openStagingStore(undefined);
    expect(store).toBeInstanceOf(FileStagingStore);
    expect((store as FileStagingStore).root).toBe(resolve('wharf-data/staging'));
    expect(store.url).toBe(pathToFileURL(resolve('wharf-data/staging')).href);
  });

  it('opens a file URL and a plain path as the same directory', () => {
    const dir = join(work, 'a dir with spaces');
    const viaUrl = openStagingStore(pathToFileURL(dir).href);
    const viaPath = openStagingStore(dir);
    expect(viaUrl).toBeInstanceOf(FileStagingStore);
    expect((viaUrl as FileStagingStore).root).toBe(dir);
    expect((viaPath as FileStagingStore).root).toBe(dir);
  });

  it('opens s3://bucket/prefix with the endpoint from the options, then from the environment', () => {
    stubS3Env();
    const store = openStagingStore('s3://acme-exports/wharf/staging/', {
      s3Endpoint: 'http://127.0.0.1:9000',
    });
    expect(store).toBeInstanceOf(S3StagingStore);
    const s3store = store as S3StagingStore;
    expect(s3store.url).toBe('s3://acme-exports/wharf/staging');
    expect(s3store.bucket).toBe('acme-exports');
    expect(s3store.prefix).toBe('wharf/staging');
    expect(s3store.endpoint).toBe('http://127.0.0.1:9000');

    vi.stubEnv('AWS_ENDPOINT_URL', 'http://127.0.0.1:9001');
    expect((openStagingStore('s3://b') as S3StagingStore).endpoint).toBe('http://127.0.0.1:9001');
    vi.stubEnv('AWS_ENDPOINT_URL_S3', 'http://127.0.0.1:9002');
    expect((openStagingStore('s3://b') as S3StagingStore).endpoint).toBe('http://127.0.0.1:9002');
    vi.stubEnv('WHARF_S3_ENDPOINT', 'http://127.0.0.1:9003');
    const fromWharf = openStagingStore('s3://b') as S3StagingStore;
    expect(fromWharf.endpoint).toBe('http://127.0.0.1:9003');
    expect(fromWharf.prefix).toBe('');
    expect(fromWharf.url).toBe('s3://b');
  });

  it('refuses an unknown scheme with one clear line', () => {
    const error = thrown(() => openStagingStore('ftp://x'));
    expect(error).toBeInstanceOf(UsageError);
    expect((error as WharfError).kind).toBe('usage');
    expect((error as WharfError).message).toBe(
      'unknown staging URL scheme "ftp:" in ftp://x; use file:///path or s3://bucket/prefix',
    );
  });

  it('refuses an S3 URL without a bucket and a file URL with a host', () => {
    for (const url of ['s3://', 's3:///prefix', 'file://relative/dir']) {
      const error = thrown(() => openStagingStore(url));
      expect(error).toBeInstanceOf(UsageError);
      expect((error as UsageError).message).toContain(url);
    }
    expect((thrown(() => openStagingStore('file://relative/dir')) as UsageError).hint).toContain('file:///');
  });
});

describe('checkStagingStore', () => {
  it('creates a missing staging directory and accepts it', async () => {
    const dir = join(work, `fresh-${randomBytes(3).toString('hex')}`, 'staging');
    await checkStagingStore(openStagingStore(pathToFileURL(dir).href));
    expect((await stat(dir)).isDirectory()).toBe(true);
  });

  it('rejects a staging path that is a file', async () => {
    const file = join(work, 'not-a-dir');
    await writeFile(file, 'x');
    await expect(checkStagingStore(openStagingStore(file))).rejects.toThrow(WharfError);
  });

  it('accepts a bucket that exists, reached with credentials from the environment', async () => {
    stubS3Env();
    await checkStagingStore(openStagingStore(`s3://${s3.bucket}/staging`, { s3Endpoint: s3.endpoint }));
  });

  it('names a missing bucket and its endpoint', async () => {
    stubS3Env();
    vi.stubEnv('WHARF_S3_ENDPOINT', s3.endpoint);
    const error = await checkStagingStore(openStagingStore('s3://missing-bucket/staging')).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).kind).toBe('terminal');
    expect((error as WharfError).message).toBe(`bucket missing-bucket does not exist at ${s3.endpoint}`);
  });
});

function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return undefined;
}
