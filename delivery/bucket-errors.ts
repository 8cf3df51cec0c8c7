import { classifyUnknown, WharfError } from '../core/errors.js';

/** The S3 operations Wharf sends to a customer's bucket. */
export type BucketOperation =
  | 'ListObjectsV2'
  | 'HeadObject'
  | 'PutObject'
  | 'GetObject'
  | 'DeleteObject'
  | 'AbortMultipartUpload';

/**
 * The IAM permission an operation needs. HeadObject needs s3:GetObject, and without s3:ListBucket S3 answers a
 * missing key with 403 instead of 404 (Wharf needs the 404 to know a key is free).
 */
export const OPERATION_PERMISSIONS: Readonly<Record<BucketOperation, string>> = {
  ListObjectsV2: 's3:ListBucket',
  HeadObject: 's3:GetObject and s3:ListBucket',
  PutObject: 's3:PutObject',
  GetObject: 's3:GetObject',
  DeleteObject: 's3:DeleteObject',
  AbortMultipartUpload: 's3:AbortMultipartUpload',
};

/** What an error is about: the operation, the bucket and key, where the store is. */
export interface BucketErrorPlace {
  readonly operation: BucketOperation;
  readonly bucket: string;
  readonly key?: string;
  /** The endpoint as shown to the user. */
  readonly endpoint: string;
}

/** S3 error codes meaning the credentials themselves are refused. */
const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
]);

/** S3 error codes meaning the credentials may not do this. */
const DENIED_CODES = new Set(['AccessDenied', 'AllAccessDisabled', 'AccountProblem']);

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

/** The S3 error code of an SDK error (`NoSuchBucket`, `AccessDenied`…), when it has one. */
export function s3Code(error: unknown): string | undefined {
  const name = (error as { name?: unknown; Code?: unknown } | null)?.name;
  return typeof name === 'string' && name !== 'Error' && name !== 'Unknown' ? name : undefined;
}

/** The HTTP status of an SDK error, when it has one. */
export function httpStatus(error: unknown): number | undefined {
  const status = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The Node network error code of an error, its cause, or the errors it aggregates. */
export function networkCode(error: unknown, depth = 0): string | undefined {
  if (error === null || typeof error !== 'object' || depth > 4) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (classifyUnknown(error) === 'transient' || code === 'ENOTFOUND'))
    return code;
  const nested = [(error as { cause?: unknown }).cause, ...((error as { errors?: unknown[] }).errors ?? [])];
  for (const inner of nested) {
    const found = networkCode(inner, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** `s3://bucket/key` (or the bucket alone). */
export function objectUrl(bucket: string, key?: string): string {
  return `s3://${bucket}${key ? `/${key}` : ''}`;
}

/** The resource a permission is granted on, as a bucket policy names it. */
function resource(place: BucketErrorPlace): string {
  if (place.operation === 'ListObjectsV2') return `arn:aws:s3:::${place.bucket}`;
  const dir = place.key?.includes('/') ? place.key.slice(0, place.key.lastIndexOf('/')) : '';
  return `arn:aws:s3:::${place.bucket}/${dir ? `${dir}/` : ''}*`;
}

/**
 * An SDK error as a `WharfError` with one line for the user: access denied names the missing permission, refused
 * credentials say so, a network failure names the endpoint (transient), a missing bucket, a wrong region.
 * Classified by S3 error code, HTTP status and Node error code, never by message text.
 */
export function bucketError(error: unknown, what: string, place: BucketErrorPlace): WharfError {
  if (error instanceof WharfError) return error;
  const code = s3Code(error);
  const status = httpStatus(error);
  const where = objectUrl(place.bucket, place.key);
  const base = {
    cause: error,
    ...(place.key === undefined ? {} : { context: { key: place.key } }),
    ...(code === undefined ? {} : { code }),
  };
  const network = networkCode(error);
  if (network !== undefined) {
    return new WharfError(`${what}: cannot reach ${place.endpoint} (${network})`, {
      ...base,
      code: network,
      kind: network === 'ENOTFOUND' ? 'terminal' : 'transient',
      hint: 'check --s3-endpoint and that this machine can reach the store',
    });
  }
  if (code !== undefined && CREDENTIAL_CODES.has(code)) {
    return new WharfError(`${what}: ${place.endpoint} refuses the access key (${code})`, {
      ...base,
      hint: 'check --access-key-id and the secret access key (`wharf connectors rotate` replaces it)',
    });
  }
  if (code === 'NoSuchBucket') {
    return new WharfError(`${what}: bucket ${place.bucket} does not exist at ${place.endpoint}`, {
      ...base,
      hint: 'create the bucket, or correct --url / --s3-endpoint',
    });
  }
  if (status === 301 || code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed') {
    return new WharfError(
      `${what}: bucket ${place.bucket} is in another region than ${place.endpoint} says`,
      {
        ...base,
        hint: "set --s3-region to the bucket's region",
      },
    );
  }
  if (status === 403 || (code !== undefined && DENIED_CODES.has(code))) {
    const permission = OPERATION_PERMISSIONS[place.operation];
    return new WharfError(`${what}: access denied to ${where} (${place.operation} needs ${permission})`, {
      ...base,
      code: code ?? 'AccessDenied',
      hint: `grant ${permission} on ${resource(place)} to the access key`,
    });
  }
  const transient =
    (status !== undefined && (status >= 500 || status === 408 || status === 429)) ||
    (code !== undefined && TRANSIENT_CODES.has(code));
  return new WharfError(
    `${what}: ${code ?? 'error'}${status ? ` (HTTP ${status})` : ''} from ${place.endpoint}`,
    {
      ...base,
      kind: transient ? 'transient' : 'terminal',
    },
  );
}
