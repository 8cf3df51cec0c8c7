import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlreadyExistsError, IntegrityError, WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { FileStagingStore } from '../staging/file-store.js';
import { S3StagingStore } from '../staging/s3-store.js';
import type { StagingStore } from '../staging/staging-store.js';
import { S3RVER_CREDENTIALS, startS3, type TestS3 } from './helpers/s3.js';

let work: string;
let s3: TestS3;
let raw: S3Client;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'wharf-test-staging-'));
  s3 = await startS3();
  raw = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_CREDENTIALS.accessKeyId, secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
});

afterAll(async () => {
  raw?.destroy();
  await s3?.stop();
  await rm(work, { recursive: true, force: true });
});

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A local file with the given content; returns its path and sha256. */
async function localFile(content: Buffer | string): Promise<{ path: string; sha256: string }> {
  const path = join(work, `local-${randomBytes(6).toString('hex')}`);
  await writeFile(path, content);
  return { path, sha256: sha256(content) };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function collect(keys: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const key of keys) out.push(key);
  return out;
}

async function put(store: StagingStore, key: string, content: Buffer | string): Promise<string> {
  const file = await localFile(content);
  await store.putFile(key, file.path, { sha256: file.sha256 });
  return file.sha256;
}

interface Subject {
  readonly name: string;
  create(): Promise<StagingStore>;
  /** Replaces the stored bytes behind the store's back, keeping any recorded sha256. */
  tamper(store: StagingStore, key: string, content: Buffer): Promise<void>;
}

const subjects: Subject[] = [
  {
    name: 'file',
    create: async () => new FileStagingStore(pathToFileURL(await mkdtemp(join(work, 'store-'))).href),
    tamper: async (store, key, content) => writeFile(join((store as FileStagingStore).root, key), content),
  },
  {
    name: 's3',
    create: async () =>
      new S3StagingStore(`s3://${s3.bucket}/run-${randomBytes(4).toString('hex')}/staging`, {
        endpoint: s3.endpoint,
        credentials: S3RVER_CREDENTIALS,
      }),
    tamper: async (store, key, content) => {
      const s3store = store as S3StagingStore;
      const recorded = await s3store.stat(key);
      await raw.send(
        new PutObjectCommand({
          Bucket: s3store.bucket,
          Key: `${s3store.prefix}/${key}`,
          Body: content,
          Metadata: { sha256: recorded?.sha256 ?? '' },
        }),
      );
    },
  },
];

describe.each(subjects)('$name staging store', (subject) => {
  it('writes a file once and reads it back with its sha256 checked', async () => {
    const store = await subject.create();
    const content = 'id,name\n1,Ada\n2,"Grace, ""Amazing"""\n';
    const file = await localFile(content);
    const stored = await store.putFile('windows/w1/accounts/1.csv', file.path, { sha256: file.sha256 });
    expect(stored).toEqual({
      key: 'windows/w1/accounts/1.csv',
      bytes: Buffer.byteLength(content),
      sha256: file.sha256,
    });

    const back = await readAll(await store.get('windows/w1/accounts/1.csv', { sha256: file.sha256 }));
    expect(back.toString('utf8')).toBe(content);
    expect((await store.stat('windows/w1/accounts/1.csv'))?.bytes).toBe(Buffer.byteLength(content));
    // the local file is left to its owner
    expect(await readFile(file.path, 'utf8')).toBe(content);
  });

  it('refuses a second write of the same key and keeps the first bytes', async () => {
    const store = await subject.create();
    const first = await put(store, 'windows/w1/clicks/7.csv.gz', 'first');
    const second = await localFile('second, different');

    const error = await store
      .putFile('windows/w1/clicks/7.csv.gz', second.path, { sha256: second.sha256 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlreadyExistsError);
    const refused = error as AlreadyExistsError;
    expect(refused.kind).toBe('terminal');
    expect(refused.message).toContain('windows/w1/clicks/7.csv.gz');
    expect(refused.hint).toBe('staging files are immutable; export a new revision instead');
    expect(refused.oneLine()).not.toContain('\n');

    expect((await readAll(await store.get('windows/w1/clicks/7.csv.gz', { sha256: first }))).toString()).toBe(
      'first',
    );
  });

  it('fails the read of a tampered object with an IntegrityError naming key and both sha256', async () => {
    const store = await subject.create();
    const original = await put(store, 'windows/w2/payouts/3.csv', 'amount\n10.0000\n');
    const forged = Buffer.from('amount\n99.0000\n');
    await subject.tamper(store, 'windows/w2/payouts/3.csv', forged);

    const error = await readAll(await store.get('windows/w2/payouts/3.csv', { sha256: original })).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(IntegrityError);
    const message = (error as IntegrityError).message;
    expect(message).toContain('windows/w2/payouts/3.csv');
    expect(message).toContain(original);
    expect(message).toContain(sha256(forged));

    // the same bytes read without an expectation come through untouched
    if (subject.name === 'file') {
      expect(await readAll(await store.get('windows/w2/payouts/3.csv'))).toEqual(forged);
    }
  });

  it('lists keys under a prefix in order', async () => {
    const store = await subject.create();
    const keys = [
      'windows/w2/b.csv',
      'windows/w1/a.csv',
      'windows/w10/d.csv',
      'other/e.csv',
      'windows/w1/sub/f.csv',
    ];
    for (const key of keys) await put(store, key, key);

    expect(await collect(store.list('windows/'))).toEqual([
      'windows/w1/a.csv',
      'windows/w1/sub/f.csv',
      'windows/w10/d.csv',
      'windows/w2/b.csv',
    ]);
    expect(await collect(store.list('windows/w1/'))).toEqual(['windows/w1/a.csv', 'windows/w1/sub/f.csv']);
    expect(await collect(store.list('windows/w1'))).toEqual([
      'windows/w1/a.csv',
      'windows/w1/sub/f.csv',
      'windows/w10/d.csv',
    ]);
    expect(await collect(store.list(''))).toEqual([
      'other/e.csv',
      'windows/w1/a.csv',
      'windows/w1/sub/f.csv',
      'windows/w10/d.csv',
      'windows/w2/b.csv',
    ]);
    expect(await collect(store.list('nothing/'))).toEqual([]);
  });

  it('answers undefined for a missing key and a clear error when reading it', async () => {
    const store = await subject.create();
    expect(await store.stat('windows/none/x.csv')).toBeUndefined();
    const error = await store.get('windows/none/x.csv').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).kind).toBe('terminal');
    expect((error as WharfError).message).toContain('windows/none/x.csv');
    expect((error as WharfError).message).toContain('does not exist');
  });

  it('names a local file that is gone', async () => {
    const store = await subject.create();
    const gone = join(work, 'never-written.spool');
    const error = await store.putFile('w/a.csv', gone, { sha256: sha256('') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).message).toBe(
      `local file ${gone} for staging object w/a.csv does not exist`,
    );
    expect(await store.stat('w/a.csv')).toBeUndefined();
  });

  it('reads a byte range with one request, checked against the range sha256', async () => {
    const store = await subject.create();
    const content = Buffer.from('header\nfirst part\nsecond part, the middle one\nthird\n');
    await put(store, 'csv/w/clicks.csv.gz', content);
    const offset = content.indexOf('second');
    const length = 'second part, the middle one\n'.length;
    const range = { offset, length };
    const middle = content.subarray(offset, offset + length);

    const back = await readAll(await store.get('csv/w/clicks.csv.gz', { range, sha256: sha256(middle) }));
    expect(back).toEqual(middle);
    // without a sha256, only the byte count is checked (the recorded sha256 is the whole object's)
    expect(await readAll(await store.get('csv/w/clicks.csv.gz', { range }))).toEqual(middle);
    expect(
      await readAll(await store.get('csv/w/clicks.csv.gz', { range: { offset: 0, length: 6 } })),
    ).toEqual(Buffer.from('header'));
    const last = { offset: content.length - 6, length: 6 };
    expect((await readAll(await store.get('csv/w/clicks.csv.gz', { range: last }))).toString()).toBe(
      'third\n',
    );

    const wrong = await readAll(await store.get('csv/w/clicks.csv.gz', { range, sha256: sha256('x') })).catch(
      (e: unknown) => e,
    );
    expect(wrong).toBeInstanceOf(IntegrityError);
    expect((wrong as IntegrityError).message).toContain(`bytes ${offset}-${offset + length - 1}`);
    expect((wrong as IntegrityError).message).toContain('csv/w/clicks.csv.gz');
  });

  it('fails a range past the end of the object with an IntegrityError', async () => {
    const store = await subject.create();
    await put(store, 'csv/w/short.csv.gz', 'only twenty bytes...');
    const error = await store
      .get('csv/w/short.csv.gz', { range: { offset: 15, length: 10 } })
      .then(readAll)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).message).toContain('csv/w/short.csv.gz');
    expect((error as IntegrityError).oneLine()).not.toContain('\n');
  });

  it('deletes an object', async () => {
    const store = await subject.create();
    await put(store, 'retention/old.csv', 'old');
    await store.delete('retention/old.csv');
    expect(await store.stat('retention/old.csv')).toBeUndefined();
    expect(await collect(store.list('retention/'))).toEqual([]);
  });

  it.each([
    '../escape.csv',
    'windows/../../escape.csv',
    'windows/..',
    '/etc/passwd',
    'windows\\w1\\a.csv',
    'windows/w1/a\0.csv',
    'windows//a.csv',
    '',
  ])('refuses the key %j', async (key) => {
    const store = await subject.create();
    const file = await localFile('x');
    for (const attempt of [
      () => store.putFile(key, file.path, { sha256: file.sha256 }),
      () => store.get(key),
      () => store.stat(key),
      () => store.delete(key),
    ]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WharfError);
      expect((error as WharfError).message).toContain('invalid staging key');
    }
    expect(await collect(store.list(''))).toEqual([]);
  });
});

describe('file staging store', () => {
  it('leaves no temporary file behind and lets exactly one of many concurrent writers win', async () => {
    const store = new FileStagingStore(await mkdtemp(join(work, 'race-')));
    const files = await Promise.all(Array.from({ length: 8 }, (_, i) => localFile(`writer ${i}`)));
    const results = await Promise.allSettled(
      files.map((file) => store.putFile('windows/w1/x.csv', file.path, { sha256: file.sha256 })),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost.every((r) => r.reason instanceof AlreadyExistsError)).toBe(true);

    const winner = files[results.findIndex((r) => r.status === 'fulfilled')]!;
    expect(await readAll(await store.get('windows/w1/x.csv', { sha256: winner.sha256 }))).toEqual(
      await readFile(winner.path),
    );
    expect(await readdir(join(store.root, 'windows/w1'))).toEqual(['x.csv']);
  });

  // S3 lists by UTF-8 bytes, where `-` sorts before `/`; a plain directory walk would not.
  it('lists in byte order of the whole key, as S3 does', async () => {
    const store = new FileStagingStore(await mkdtemp(join(work, 'order-')));
    for (const key of ['w1/a.csv', 'w1-x/c.csv', 'w1.csv', 'w1_/z.csv', 'w0/y.csv'])
      await put(store, key, key);
    expect(await collect(store.list(''))).toEqual([
      'w0/y.csv',
      'w1-x/c.csv',
      'w1.csv',
      'w1/a.csv',
      'w1_/z.csv',
    ]);
    expect(await collect(store.list('w1'))).toEqual(['w1-x/c.csv', 'w1.csv', 'w1/a.csv', 'w1_/z.csv']);
  });

  it('fails the read of a truncated file', async () => {
    const store = new FileStagingStore(await mkdtemp(join(work, 'trunc-')));
    const original = await put(store, 'a/b.csv', 'line one\nline two\n');
    await writeFile(join(store.root, 'a/b.csv'), 'line one\n');
    const error = await readAll(await store.get('a/b.csv', { sha256: original })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
  });

  it('keeps files written through a plain path and a file URL in the same place', async () => {
    const dir = await mkdtemp(join(work, 'paths-'));
    await put(new FileStagingStore(dir), 'k/v.txt', 'same');
    const viaUrl = new FileStagingStore(pathToFileURL(dir).href);
    expect(viaUrl.url).toBe(pathToFileURL(dir).href);
    expect((await readAll(await viaUrl.get('k/v.txt'))).toString()).toBe('same');
  });

  it('reports a staging root that cannot be a directory', async () => {
    const blocker = join(work, `blocker-${randomBytes(3).toString('hex')}`);
    await writeFile(blocker, 'a file, not a directory');
    const store = new FileStagingStore(join(blocker, 'staging'));
    const error = await store.check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WharfError);
    expect((error as WharfError).message).toContain(join(blocker, 'staging'));
    expect(dirname(store.root)).toBe(blocker);
  });
});

describe('S3 staging store', () => {
  function store(url = `s3://${s3.bucket}/mp-${randomBytes(4).toString('hex')}`): S3StagingStore {
    return new S3StagingStore(url, { endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
  }

  it('uploads a 40 MiB file in parts and reads back the same bytes', async () => {
    const target = store();
    const path = join(work, 'big.bin');
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const chunk = randomBytes(1024 * 1024);
      hash.update(chunk);
      chunks.push(chunk);
    }
    await writeFile(path, Buffer.concat(chunks));
    chunks.length = 0;
    const sha = hash.digest('hex');

    const stored = await target.putFile('windows/big/clicks/1.parquet', path, { sha256: sha });
    expect(stored.bytes).toBe(40 * 1024 * 1024);
    // completed as a multipart upload, not a single PutObject
    expect(s3.events.filter((e) => e.key === `${target.prefix}/windows/big/clicks/1.parquet`)).toEqual([
      { name: 'ObjectCreated:Post', key: `${target.prefix}/windows/big/clicks/1.parquet` },
    ]);

    const head = await target.stat('windows/big/clicks/1.parquet');
    expect(head).toEqual({ key: 'windows/big/clicks/1.parquet', bytes: 40 * 1024 * 1024, sha256: sha });

    const readBack = createHash('sha256');
    let bytes = 0;
    for await (const chunk of await target.get('windows/big/clicks/1.parquet', { sha256: sha })) {
      readBack.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    expect(bytes).toBe(40 * 1024 * 1024);
    expect(readBack.digest('hex')).toBe(sha);

    const again = await target
      .putFile('windows/big/clicks/1.parquet', path, { sha256: sha })
      .catch((e: unknown) => e);
    expect(again).toBeInstanceOf(AlreadyExistsError);
    await rm(path);
  });

  it('checks reads against the recorded sha256 when the caller gives none', async () => {
    const target = store();
    await put(target, 'w/x.csv', 'recorded');
    expect((await readAll(await target.get('w/x.csv'))).toString()).toBe('recorded');
    await raw.send(
      new PutObjectCommand({
        Bucket: target.bucket,
        Key: `${target.prefix}/w/x.csv`,
        Body: 'replaced',
        Metadata: { sha256: sha256('recorded') },
      }),
    );
    await expect(readAll(await target.get('w/x.csv'))).rejects.toBeInstanceOf(IntegrityError);
  });

  it('says once and clearly that a bucket does not exist', async () => {
    const target = store('s3://no-such-bucket-here/staging');
    const expected = `bucket no-such-bucket-here does not exist at ${s3.endpoint}`;
    for (const attempt of [
      () => target.check(),
      () => put(target, 'w/a.csv', 'a'),
      () => collect(target.list('w/')),
      () => target.get('w/a.csv'),
    ]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WharfError);
      expect((error as WharfError).message).toBe(expected);
      expect((error as WharfError).kind).toBe('terminal');
      expect((error as WharfError).hint).toContain('create the bucket');
    }
  });

  it('reports wrong credentials as access denied without printing them', async () => {
    const target = new S3StagingStore(`s3://${s3.bucket}/x`, {
      endpoint: s3.endpoint,
      credentials: { accessKeyId: 'WRONGKEY', secretAccessKey: new Secret('very-secret-value') },
    });
    const error = await target.check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WharfError);
    const wharf = error as WharfError;
    expect(wharf.kind).toBe('terminal');
    expect(wharf.message).toContain('access denied');
    expect(wharf.oneLine()).not.toContain('very-secret-value');
    expect(wharf.hint).toContain('AWS_ACCESS_KEY_ID');
  });

  it('reports an unreachable endpoint as transient and names it', async () => {
    const closed = await closedPort();
    const endpoint = `http://127.0.0.1:${closed}`;
    const target = new S3StagingStore(`s3://${s3.bucket}/x`, {
      endpoint,
      credentials: S3RVER_CREDENTIALS,
      maxAttempts: 1,
    });
    for (const attempt of [
      () => target.check(),
      () => put(target, 'w/a.csv', 'a'),
      () => target.stat('w/a.csv'),
    ]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WharfError);
      expect((error as WharfError).kind).toBe('transient');
      expect((error as WharfError).message).toContain(endpoint);
      expect((error as WharfError).code).toBe('ECONNREFUSED');
    }
  });
});

/** A port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
