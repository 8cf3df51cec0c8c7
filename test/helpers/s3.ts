import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Secret } from '../../core/secret.js';

/** The part of s3rver's API the tests use (the package ships no types). */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  on(event: 'event', listener: (event: S3rverEvent) => void): void;
}
interface S3rverEvent {
  readonly Records: readonly { eventName: string; s3: { object: { key: string } } }[];
}

/** An object event seen by the server: `ObjectCreated:Put` (PutObject), `ObjectCreated:Post` (multipart). */
export interface S3ObjectEvent {
  readonly name: string;
  readonly key: string;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

/** s3rver's fixed credentials. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: new Secret('S3RVER') } as const;

export interface TestS3 {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** A bucket that exists. */
  readonly bucket: string;
  /** Where s3rver keeps its files. */
  readonly directory: string;
  /** Object events so far, oldest first. */
  readonly events: readonly S3ObjectEvent[];
  stop(): Promise<void>;
}

/**
 * Starts a real S3-compatible server (s3rver) on 127.0.0.1 with a free port, a temporary directory
 * and one created bucket. Sets no environment: pass `endpoint` and `S3RVER_CREDENTIALS` explicitly.
 */
export async function startS3(): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), 'wharf-test-s3-'));
  const bucket = `wharf-test-${randomBytes(4).toString('hex')}`;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const events: S3ObjectEvent[] = [];
  server.on('event', (event) => {
    for (const record of event.Records) events.push({ name: record.eventName, key: record.s3.object.key });
  });
  const address = await server.run();
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    bucket,
    directory,
    events,
    stop: async () => {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
