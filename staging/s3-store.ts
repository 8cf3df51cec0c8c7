import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  AlreadyExistsError,
  classifyUnknown,
  IntegrityError,
  UsageError,
  WharfError,
} from '../core/errors.js';
import { redactUrls, type Secret } from '../core/secret.js';
import {
  checkRange,
  describeRange,
  IMMUTABLE_HINT,
  localFileSize,
  validateKey,
  validatePrefix,
  verifyingStream,
} from './file-store.js';
import type { GetOptions, PutOptions, StagingStore, StoredObject } from './staging-store.js';

const MiB = 1024 * 1024;

/** Static credentials (tests, or callers that resolve them elsewhere). */
export interface S3Credentials {
  readonly accessKeyId: string;
  /** Never printed: `Secret` shows `********`. */
  readonly secretAccessKey: Secret;
  readonly sessionToken?: Secret;
}

export interface S3StagingStoreConfig {
  /** A custom endpoint (MinIO, R2, s3rver…); AWS when undefined. */
  readonly endpoint?: string | undefined;
  /** Path-style addressing (`endpoint/bucket/key`); defaults to true with a custom endpoint. */
  readonly pathStyle?: boolean | undefined;
  /** Defaults to `AWS_REGION`, then `AWS_DEFAULT_REGION`, then `us-east-1`. */
  readonly region?: string | undefined;
  /** Defaults to the SDK's provider chain (`AWS_ACCESS_KEY_ID`…, profile, instance role). */
  readonly credentials?: S3Credentials | undefined;
  /** Files above this size go up as a multipart upload (default 16 MiB). */
  readonly multipartThreshold?: number | undefined;
  /** Multipart part size (default 8 MiB) and parts in flight (default 4). */
  readonly partSize?: number | undefined;
  readonly queueSize?: number | undefined;
  /** Send `x-amz-checksum-sha256` with single-request uploads so the store verifies them (default true). */
  readonly checksumSha256?: boolean | undefined;
  /** SDK attempts for requests that can be retried (default 3). */
  readonly maxAttempts?: number | undefined;
}

/** The SDK's credential object: the only place the secret key is revealed. */
function sdkCredentials(c: S3Credentials): {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
} {
  return {
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey.reveal(),
    ...(c.sessionToken ? { sessionToken: c.sessionToken.reveal() } : {}),
  };
}

/** Metadata name (`x-amz-meta-sha256`) under which the content's sha256 is recorded. */
const SHA_METADATA = 'sha256';

/** SDK chatter goes nowhere: failures reach the caller as typed errors. */
const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/**
 * Staging in an S3-compatible bucket (`s3://bucket/prefix`). Objects are written once: a write first
 * checks the key is free (HeadObject), then uploads with `If-None-Match: *`, so stores that support
 * conditional writes refuse an existing key atomically. The content's sha256 rides along as
 * `x-amz-meta-sha256`, and readers verify it while streaming.
 *
 * @example
 * const store = new S3StagingStore('s3://acme-wharf/staging', { endpoint: 'http://127.0.0.1:9000' });
 */
export class S3StagingStore implements StagingStore {
  readonly url: string;
  readonly bucket: string;
  /** Key prefix inside the bucket, without leading or trailing `/` (may be empty). */
  readonly prefix: string;
  /** The endpoint as shown in messages. */
  readonly endpoint: string;
  readonly #client: S3Client;
  readonly #threshold: number;
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #checksum: boolean;
  /** Whether to send `If-None-Match: *`; turned off once a store answers it with NotImplemented. */
  #conditional = true;

  constructor(url: string, config: S3StagingStoreConfig = {}) {
    const { bucket, prefix } = parseS3Url(url);
    this.bucket = bucket;
    this.prefix = prefix;
    this.url = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    const region = config.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    this.endpoint = redactUrls(config.endpoint ?? `https://s3.${region}.amazonaws.com`);
    this.#threshold = config.multipartThreshold ?? 16 * MiB;
    this.#partSize = config.partSize ?? 8 * MiB;
    this.#queueSize = config.queueSize ?? 4;
    this.#checksum = config.checksumSha256 ?? true;
    const clientConfig: S3ClientConfig = {
      region,
      forcePathStyle: config.pathStyle ?? config.endpoint !== undefined,
      maxAttempts: config.maxAttempts ?? 3,
      // Wharf checks every object's sha256 itself; SDK-computed CRCs would need aws-chunked bodies,
      // which some S3-compatible stores do not understand.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      logger: quietLogger,
      ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
      ...(config.credentials === undefined ? {} : { credentials: sdkCredentials(config.credentials) }),
    };
    this.#client = new S3Client(clientConfig);
  }

  async putFile(key: string, localPath: string, options: PutOptions): Promise<StoredObject> {
    const objectKey = this.#objectKey(key);
    const size = await localFileSize(localPath, key);
    // The guard: stores without conditional writes (s3rver, older MinIO) ignore If-None-Match. What is
    // left is a race between two writers passing this check at once; both write the same key from the
    // same window of the same data, i.e. the same deterministic bytes, so the survivor is identical.
    if ((await this.stat(key)) !== undefined) throw this.#exists(key);
    try {
      await this.#upload(objectKey, localPath, size, options, this.#conditional);
    } catch (error) {
      const status = httpStatus(error);
      if (status === 412 || nameOf(error) === 'PreconditionFailed') throw this.#exists(key, error);
      if (this.#conditional && (status === 501 || nameOf(error) === 'NotImplemented')) {
        // The store rejects conditional writes outright; the HeadObject check above stays the guard.
        this.#conditional = false;
        return this.putFile(key, localPath, options);
      }
      if (nameOf(error) === 'BadDigest' || nameOf(error) === 'XAmzContentChecksumMismatch') {
        throw new IntegrityError(`local file ${localPath} does not match sha256 ${options.sha256}`, {
          context: { key },
          cause: error,
          hint: 'the file changed after it was written; export the window again',
        });
      }
      throw this.#error(error, `cannot write staging object ${key}`, key);
    }
    return { key, bytes: size, sha256: options.sha256 };
  }

  async #upload(
    objectKey: string,
    localPath: string,
    size: number,
    options: PutOptions,
    conditional: boolean,
  ): Promise<void> {
    const params = {
      Bucket: this.bucket,
      Key: objectKey,
      ContentLength: size,
      Metadata: { [SHA_METADATA]: options.sha256 },
      ...(conditional ? { IfNoneMatch: '*' } : {}),
      ...(options.contentType === undefined ? {} : { ContentType: options.contentType }),
    };
    if (size <= this.#threshold) {
      const checksum = this.#checksum
        ? { ChecksumSHA256: Buffer.from(options.sha256, 'hex').toString('base64') }
        : {};
      await this.#client.send(
        new PutObjectCommand({ ...params, ...checksum, Body: createReadStream(localPath) }),
      );
      return;
    }
    // lib-storage spreads these params into every request; only CompleteMultipartUpload carries
    // IfNoneMatch, so the condition is checked when the object appears. Memory stays bounded at
    // partSize × queueSize.
    const upload = new Upload({
      client: this.#client,
      params: { ...params, Body: createReadStream(localPath) },
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const objectKey = this.#objectKey(key);
    const { range } = options;
    if (range !== undefined) checkRange(key, range, Number.MAX_SAFE_INTEGER);
    if (range?.length === 0) return verifyingStream(Readable.from([]), { key, bytes: 0, ...options });
    let response: GetObjectCommandOutput;
    try {
      response = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ...(range === undefined ? {} : { Range: `bytes=${describeRange(range)}` }),
        }),
      );
    } catch (error) {
      if (range !== undefined && (httpStatus(error) === 416 || nameOf(error) === 'InvalidRange')) {
        throw new IntegrityError(
          `staging object ${key} in ${this.url} is shorter than bytes ${describeRange(range)}`,
          {
            context: { key },
            cause: error,
            hint: 'the stored file was truncated or replaced; export the window again',
          },
        );
      }
      throw this.#error(error, `cannot read staging object ${key}`, key);
    }
    const body = response.Body as Readable | undefined;
    if (body === undefined) {
      throw new WharfError(`staging object ${key} in ${this.url} came back without a body`, {
        context: { key },
        kind: 'transient',
      });
    }
    // the recorded sha256 is the whole object's: a range is checked against the caller's only
    const sha256 = options.sha256 ?? (range === undefined ? response.Metadata?.[SHA_METADATA] : undefined);
    return verifyingStream(
      body,
      { key, bytes: range?.length ?? response.ContentLength, sha256, range },
      (error) => this.#error(error, `reading staging object ${key} failed`, key),
    );
  }

  async *list(prefix: string): AsyncIterable<string> {
    validatePrefix(prefix);
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.#rawKey(prefix),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
      } catch (error) {
        throw this.#error(error, `cannot list ${prefix || '/'}`);
      }
      for (const item of page.Contents ?? []) {
        if (item.Key !== undefined) yield item.Key.slice(strip);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const objectKey = this.#objectKey(key);
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      const sha256 = head.Metadata?.[SHA_METADATA];
      return { key, bytes: head.ContentLength ?? 0, ...(sha256 === undefined ? {} : { sha256 }) };
    } catch (error) {
      const name = nameOf(error);
      if (httpStatus(error) === 404 && name !== 'NoSuchBucket') return undefined;
      if (name === 'NotFound' || name === 'NoSuchKey') return undefined;
      throw this.#error(error, `cannot stat staging object ${key}`, key);
    }
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.#objectKey(key);
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }));
    } catch (error) {
      throw this.#error(error, `cannot delete staging object ${key}`, key);
    }
  }

  /** Checks the bucket exists and the credentials reach it (one HeadBucket). */
  async check(): Promise<void> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      // HeadBucket answers a missing bucket with a bare 404 (no error code in the body).
      if (httpStatus(error) === 404) throw this.#noBucket(error);
      throw this.#error(error, `cannot reach bucket ${this.bucket}`);
    }
  }

  /** Closes the client's connections. */
  close(): void {
    this.#client.destroy();
  }

  #objectKey(key: string): string {
    validateKey(key);
    return this.#rawKey(key);
  }

  #rawKey(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  #exists(key: string, cause?: unknown): AlreadyExistsError {
    return new AlreadyExistsError(`staging object ${key} already exists in ${this.url}`, {
      context: { key },
      hint: IMMUTABLE_HINT,
      ...(cause === undefined ? {} : { cause }),
    });
  }

  #noBucket(cause: unknown): WharfError {
    return new WharfError(`bucket ${this.bucket} does not exist at ${this.endpoint}`, {
      cause,
      code: 'NoSuchBucket',
      hint: 'create the bucket, or correct --staging-url / --s3-endpoint (AWS_ENDPOINT_URL)',
    });
  }

  /** An SDK error as a `WharfError`, classified by S3 error code, HTTP status or Node error code. */
  #error(error: unknown, what: string, key?: string): WharfError {
    if (error instanceof WharfError) return error;
    const name = nameOf(error);
    const status = httpStatus(error);
    const context = key === undefined ? {} : { key };
    const base = { cause: error, context, ...(name === undefined ? {} : { code: name }) };
    if (name === 'NoSuchBucket') return this.#noBucket(error);
    if (name === 'NoSuchKey' || (status === 404 && key !== undefined)) {
      return new WharfError(`staging object ${key} does not exist in ${this.url}`, {
        ...base,
        hint: 'if the files of a window are gone, export it again as a new revision: wharf export --window ID',
      });
    }
    const network = networkCode(error);
    if (network !== undefined) {
      return new WharfError(`${what}: cannot reach S3 endpoint ${this.endpoint} (${network})`, {
        ...base,
        code: network,
        kind: 'transient',
        hint: 'check that the store is running and --s3-endpoint / AWS_ENDPOINT_URL is right',
      });
    }
    if (status === 403 || (name !== undefined && ACCESS_CODES.has(name))) {
      return new WharfError(`${what}: access denied to ${this.url} at ${this.endpoint}`, {
        ...base,
        hint: 'check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the bucket policy',
      });
    }
    if (name === 'CredentialsProviderError') {
      return new WharfError(`${what}: no AWS credentials found for ${this.url}`, {
        ...base,
        hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE',
      });
    }
    if (status === 301 || name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') {
      return new WharfError(`${what}: bucket ${this.bucket} is in another region than ${this.endpoint}`, {
        ...base,
        hint: "set AWS_REGION to the bucket's region",
      });
    }
    const transient =
      (status !== undefined && (status >= 500 || status === 408 || status === 409 || status === 429)) ||
      (name !== undefined && TRANSIENT_CODES.has(name));
    return new WharfError(
      `${what} in ${this.url} at ${this.endpoint}: ${name ?? 'error'}${status ? ` (HTTP ${status})` : ''}`,
      {
        ...base,
        kind: transient ? 'transient' : 'terminal',
      },
    );
  }
}

/** S3 error codes that mean the credentials cannot do this. */
const ACCESS_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'AllAccessDisabled',
  'AccountProblem',
]);

/** S3 and SDK error codes worth a retry. */
const TRANSIENT_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'TimeoutError',
  'ConditionalRequestConflict',
  'OperationAborted',
]);

/** Splits `s3://bucket/prefix` (the prefix may be empty). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/?#]+)\/?([^?#]*)$/.exec(url);
  const bucket = match?.[1];
  if (bucket === undefined || match === null) {
    throw new UsageError(`invalid S3 staging URL ${url}`, 'use s3://bucket/prefix');
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix !== '') validatePrefix(prefix);
  return { bucket, prefix };
}

function nameOf(error: unknown): string | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name !== 'Error' ? name : undefined;
}

function httpStatus(error: unknown): number | undefined {
  const status = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The Node network error code of an error, its cause, or the errors it aggregates. */
function networkCode(error: unknown, depth = 0): string | undefined {
  if (error === null || typeof error !== 'object' || depth > 4) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && classifyUnknown(error) === 'transient') return code;
  const nested = [(error as { cause?: unknown }).cause, ...((error as { errors?: unknown[] }).errors ?? [])];
  for (const inner of nested) {
    const found = networkCode(inner, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}
