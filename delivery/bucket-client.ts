import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback, Writable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { WharfError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { redactUrls } from '../core/secret.js';
import { type BucketOperation, bucketError, httpStatus, objectUrl, s3Code } from './bucket-errors.js';
import { type BucketEndpoint, parseBucketUrl } from './bucket-settings.js';

const MiB = 1024 * 1024;

/** How objects go up: multipart part size and parts in flight (memory ≈ part size × (queue + 1)). */
export interface BucketUploadTuning {
  /** Multipart part size, at least 5 MiB (default 8 MiB); smaller objects go up in one PutObject. */
  readonly partSize?: number;
  /** Parts uploaded at once (default 4). */
  readonly queueSize?: number;
  /** SDK attempts for requests that can be retried (default 3). */
  readonly maxAttempts?: number;
}

/** What a create-only write did. */
export interface PutResult {
  readonly key: string;
  readonly bytes: number;
  readonly sha256: string;
  /** `created`: written now; `existing`: the key already held these very bytes (a retry after a crash). */
  readonly outcome: 'created' | 'existing';
}

/** An object being written: write its bytes into `out` and end it, then `done()`. */
export interface ObjectWriter {
  readonly out: Writable;
  /** Resolves once the object is stored (or found identical); rejects on any failure. */
  done(): Promise<PutResult>;
  /** Gives the object up (nothing is left behind: a multipart upload is aborted). */
  abort(error: Error): void;
}

/** A stored object, as HeadObject sees it. */
export interface ObjectHead {
  readonly bytes: number;
  readonly etag: string | undefined;
}

/** `code` of the error a write throws when the store rejects `If-None-Match`: write the object again. */
export const CONDITIONAL_WRITE_UNSUPPORTED = 'ConditionalWriteUnsupported';

/** SDK chatter goes nowhere: failures reach the caller as typed errors. */
const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Counts and hashes the bytes on their way to the upload. */
class HashingPassThrough extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;

  constructor() {
    super({ highWaterMark: MiB });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** Counts and hashes bytes that go nowhere (an object already there is being compared). */
class HashingSink extends Writable {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback();
  }
}

/**
 * The customer's bucket, written create-only. Every object is written with `If-None-Match: *` after a HeadObject
 * check (not every store enforces the condition): a key that already holds the same bytes counts as written (a
 * retry after a crash), other bytes are a terminal error naming the key, and nothing is ever overwritten. Bytes
 * stream into the upload (multipart above the part size), so memory stays bounded whatever the object's size.
 *
 * @example
 * const bucket = new BucketClient({ url: 's3://acme/wharf', accessKeyId: 'AKIA…' }, secret);
 * const w = await bucket.createObject('wharf/_manifests/x.json', 'application/json');
 * w.out.end(text);
 * await w.done();
 */
export class BucketClient {
  readonly bucket: string;
  /** Key prefix inside the bucket, without leading or trailing `/` (may be empty). */
  readonly prefix: string;
  /** The endpoint as shown in messages. */
  readonly endpoint: string;
  readonly #client: S3Client;
  readonly #partSize: number;
  readonly #queueSize: number;
  /** Whether to send `If-None-Match: *`; off once the store answers it with NotImplemented. */
  #conditional = true;

  constructor(settings: BucketEndpoint, secretAccessKey: Secret, tuning: BucketUploadTuning = {}) {
    const { bucket, prefix } = parseBucketUrl(settings.url);
    this.bucket = bucket;
    this.prefix = prefix;
    const region = settings.region ?? 'us-east-1';
    this.endpoint = redactUrls(settings.endpoint ?? `https://s3.${region}.amazonaws.com`);
    this.#partSize = Math.max(5 * MiB, tuning.partSize ?? 8 * MiB);
    this.#queueSize = tuning.queueSize ?? 4;
    const accessKeyId = settings.accessKeyId;
    this.#client = new S3Client({
      region,
      forcePathStyle: settings.pathStyle ?? settings.endpoint !== undefined,
      maxAttempts: tuning.maxAttempts ?? 3,
      // Wharf checks sha256 itself; SDK CRCs would need aws-chunked bodies, which some stores do not take
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      logger: quietLogger,
      credentials: async () => ({ accessKeyId, secretAccessKey: secretAccessKey.reveal() }),
      ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
    });
  }

  /**
   * Starts writing `key` (relative to the bucket) create-only. When the key is free, bytes written to `out` go up
   * with `If-None-Match: *`; when it holds an object, they are only hashed, and `done()` compares them with it.
   */
  async createObject(key: string, contentType: string): Promise<ObjectWriter> {
    const existing = await this.head(key);
    if (existing !== undefined) return this.#comparing(key, existing);
    return this.#uploading(key, contentType);
  }

  /** The object at `key`, or undefined when there is none. */
  async head(key: string): Promise<ObjectHead | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { bytes: head.ContentLength ?? 0, etag: head.ETag };
    } catch (error) {
      const code = s3Code(error);
      if (
        code !== 'NoSuchBucket' &&
        (httpStatus(error) === 404 || code === 'NotFound' || code === 'NoSuchKey')
      ) {
        return undefined;
      }
      // a HEAD has no body: a 404 there can also be a missing bucket, which the next request will name
      throw this.error(error, 'HeadObject', `cannot check ${objectUrl(this.bucket, key)}`, key);
    }
  }

  /** Streams the object at `key`. */
  async get(key: string): Promise<Readable> {
    try {
      const response = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const body = response.Body;
      if (!(body instanceof Readable)) {
        throw new WharfError(`${objectUrl(this.bucket, key)} came back without a body`, {
          kind: 'transient',
        });
      }
      return body;
    } catch (error) {
      throw this.error(error, 'GetObject', `cannot read ${objectUrl(this.bucket, key)}`, key);
    }
  }

  /** Deletes the object at `key` (the check's probe only: delivered objects are never deleted). */
  async delete(key: string): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      throw this.error(error, 'DeleteObject', `cannot delete ${objectUrl(this.bucket, key)}`, key);
    }
  }

  /** Keys under `prefix` (relative to the bucket), in lexical order; `limit` stops early. */
  async *list(prefix: string, limit = Number.POSITIVE_INFINITY): AsyncIterable<string> {
    let token: string | undefined;
    let seen = 0;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(Number.isFinite(limit) ? { MaxKeys: Math.min(1000, limit) } : {}),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
      } catch (error) {
        throw this.error(error, 'ListObjectsV2', `cannot list ${objectUrl(this.bucket, prefix)}`);
      }
      for (const item of page.Contents ?? []) {
        if (item.Key === undefined) continue;
        yield item.Key;
        if (++seen >= limit) return;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Closes the client's connections. */
  close(): void {
    this.#client.destroy();
  }

  /** An SDK error of `operation` as a `WharfError` with the fix. */
  error(error: unknown, operation: BucketOperation, what: string, key?: string): WharfError {
    return bucketError(error, what, {
      operation,
      bucket: this.bucket,
      endpoint: this.endpoint,
      ...(key === undefined ? {} : { key }),
    });
  }

  #uploading(key: string, contentType: string): ObjectWriter {
    const pass = new HashingPassThrough();
    // failures reach the writer through its writes and `done()`, not as an 'error' event nobody listens to
    pass.on('error', () => {});
    const conditional = this.#conditional;
    const upload = new Upload({
      client: this.#client,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: pass,
        ContentType: contentType,
        ...(conditional ? { IfNoneMatch: '*' } : {}),
      },
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      leavePartsOnError: false,
    });
    let failure: unknown;
    const uploaded = upload.done().then(
      () => undefined,
      (error: unknown) => {
        failure = error;
        // the writer must not wait for a drain that will never come; it sees the error with its fix
        pass.destroy(this.error(error, 'PutObject', `cannot write ${objectUrl(this.bucket, key)}`, key));
      },
    );
    return {
      out: pass,
      abort: (error) => {
        pass.destroy(error);
        void upload.abort().catch(() => {});
      },
      done: async () => {
        await uploaded;
        if (failure === undefined) {
          return { key, bytes: pass.bytes, sha256: pass.hash.digest('hex'), outcome: 'created' };
        }
        const status = httpStatus(failure);
        const code = s3Code(failure);
        if (status === 412 || code === 'PreconditionFailed') {
          // another writer created the key between the check and the write: compare with what is there now
          const head = await this.head(key);
          if (head === undefined)
            throw this.error(failure, 'PutObject', `cannot write ${objectUrl(this.bucket, key)}`, key);
          return this.#compare(key, head, pass.bytes, pass.hash.digest('hex'));
        }
        if (conditional && (status === 501 || code === 'NotImplemented')) {
          this.#conditional = false;
          throw new WharfError(`${this.endpoint} does not take conditional writes; writing ${key} again`, {
            kind: 'transient',
            code: CONDITIONAL_WRITE_UNSUPPORTED,
            cause: failure,
            context: { key },
          });
        }
        throw this.error(failure, 'PutObject', `cannot write ${objectUrl(this.bucket, key)}`, key);
      },
    };
  }

  #comparing(key: string, existing: ObjectHead): ObjectWriter {
    const sink = new HashingSink({ highWaterMark: MiB });
    sink.on('error', () => {});
    return {
      out: sink,
      abort: (error) => sink.destroy(error),
      done: async () => this.#compare(key, existing, sink.bytes, sink.hash.digest('hex')),
    };
  }

  /** The object at `key` holds `bytes` bytes hashing to `sha256`, or the write is refused. */
  async #compare(key: string, existing: ObjectHead, bytes: number, sha256: string): Promise<PutResult> {
    if (existing.bytes === bytes) {
      const hash = createHash('sha256');
      for await (const chunk of await this.get(key)) hash.update(chunk as Buffer);
      if (hash.digest('hex') === sha256) return { key, bytes, sha256, outcome: 'existing' };
    }
    throw new WharfError(
      `${objectUrl(this.bucket, key)} already exists with other content (${existing.bytes} bytes); Wharf never overwrites an object`,
      {
        kind: 'terminal',
        code: 'ObjectExists',
        context: { key },
        hint: 'move that object out of the way (it is not one Wharf wrote for this delivery), then run again',
      },
    );
  }
}
