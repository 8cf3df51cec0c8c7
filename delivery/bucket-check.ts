import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { errorMessage, WharfError } from '../core/errors.js';
import { redact, type Secret } from '../core/secret.js';
import type { CheckReport, CheckResult } from '../destinations/check-report.js';
import { BucketClient, type BucketUploadTuning } from './bucket-client.js';
import { objectUrl } from './bucket-errors.js';
import type { BucketEndpoint } from './bucket-settings.js';

export interface BucketCheckOptions {
  /** Timeout of the TCP connect; default 5 s. */
  readonly timeoutMs?: number;
  /** Upload settings of the client the probe is written with. */
  readonly tuning?: BucketUploadTuning;
}

/** A step's failure: the line for the user (what failed; what to do) and its code. */
class StepFailure extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

/** `host:port` of an endpoint URL (443 or 80 by scheme when the URL has no port). */
function hostPort(endpoint: string): { host: string; port: number } {
  const url = new URL(endpoint);
  const port = url.port ? Number(url.port) : url.protocol === 'http:' ? 80 : 443;
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port };
}

/** Opens and closes a TCP connection to the endpoint. */
function reach(endpoint: string, timeoutMs: number): Promise<void> {
  const { host, port } = hostPort(endpoint);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const fail = (line: string, code?: string) => {
      socket.destroy();
      reject(new StepFailure(line, code));
    };
    socket.setTimeout(timeoutMs, () =>
      fail(
        `cannot reach ${endpoint}: no answer within ${Math.round(timeoutMs / 1000)} s; check --s3-endpoint and that a firewall lets this machine in`,
        'ETIMEDOUT',
      ),
    );
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const code = error.code;
      const why =
        code === 'ECONNREFUSED'
          ? 'connection refused; check --s3-endpoint (host and port) and that the store is running'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? 'the host name does not resolve; check --s3-endpoint'
            : `${code ?? 'network error'}; check --s3-endpoint and the network`;
      fail(`cannot reach ${endpoint}: ${why}`, code);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
  });
}

/** A `WharfError` as a step's one line. */
function asFailure(error: unknown): StepFailure {
  if (error instanceof StepFailure) return error;
  if (error instanceof WharfError) {
    return new StepFailure([error.message, error.hint].filter(Boolean).join('; '), error.code);
  }
  return new StepFailure(errorMessage(error));
}

/**
 * Pre-flight checks of a bucket connector, in order, stopping at the first failure: reach the endpoint,
 * authenticate, the bucket exists (and may be listed), write a probe object under the prefix, read it back,
 * delete it. Each failure is one line with the fix, naming the missing permission (s3:ListBucket,
 * s3:PutObject, s3:GetObject, s3:DeleteObject); the secret key appears in none of them.
 */
export async function checkBucket(
  settings: BucketEndpoint,
  secretAccessKey: Secret,
  options: BucketCheckOptions = {},
): Promise<CheckReport> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const checks: CheckResult[] = [];
  const clean = (text: string) => redact(text, [secretAccessKey]);
  let client: BucketClient;
  try {
    client = new BucketClient(settings, secretAccessKey, { maxAttempts: 1, ...options.tuning });
  } catch (error) {
    const line = asFailure(error).message;
    return {
      ok: false,
      target: settings.url,
      checks: [{ name: 'settings', ok: false, durationMs: 0, message: clean(line) }],
    };
  }
  const target = `${settings.url} at ${client.endpoint}`;
  let failed = false;

  const step = async (name: string, work: () => Promise<string | undefined>): Promise<void> => {
    if (failed) return;
    const started = performance.now();
    try {
      const note = await work();
      checks.push({
        name,
        ok: true,
        durationMs: performance.now() - started,
        ...(note ? { message: clean(note) } : {}),
      });
    } catch (error) {
      failed = true;
      const failure = asFailure(error);
      checks.push({
        name,
        ok: false,
        durationMs: performance.now() - started,
        message: clean(failure.message),
        ...(failure.code ? { code: failure.code } : {}),
      });
    }
  };

  const prefix = client.prefix ? `${client.prefix}/` : '';
  const probeKey = `${prefix}_wharf_check/${randomBytes(8).toString('hex')}.txt`;
  const probe = Buffer.from(`wharf bucket check ${probeKey}\n`);
  /** What listing the prefix answered: the authenticate step sends it, the bucket step judges it. */
  let listError: unknown;
  let probeWritten = false;
  try {
    await step('reach', async () => {
      await reach(client.endpoint, timeoutMs);
      return `${client.endpoint} accepts connections`;
    });

    await step('authenticate', async () => {
      try {
        for await (const _ of client.list(prefix, 1)) break;
      } catch (error) {
        const code = error instanceof WharfError ? error.code : undefined;
        if (code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch' || code === 'ExpiredToken') {
          throw error;
        }
        listError = error;
      }
      return `access key ${settings.accessKeyId} accepted`;
    });

    await step('bucket', async () => {
      if (listError !== undefined) throw listError;
      return `bucket ${client.bucket} exists and may be listed (s3:ListBucket)`;
    });

    await step('write probe', async () => {
      const writer = await client.createObject(probeKey, 'text/plain');
      writer.out.end(probe);
      const result = await writer.done();
      if (result.outcome !== 'created') {
        throw new StepFailure(`probe ${objectUrl(client.bucket, probeKey)} was already there`);
      }
      probeWritten = true;
      return `wrote ${objectUrl(client.bucket, probeKey)} (s3:PutObject)`;
    });

    await step('read probe', async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of await client.get(probeKey)) chunks.push(chunk as Buffer);
      if (!Buffer.concat(chunks).equals(probe)) {
        throw new StepFailure(
          `the probe read back from ${objectUrl(client.bucket, probeKey)} differs from what was written; check the store`,
        );
      }
      return 'read it back (s3:GetObject)';
    });

    await step('delete probe', async () => {
      try {
        await client.delete(probeKey);
      } catch (error) {
        const failure = asFailure(error);
        throw new StepFailure(
          `${failure.message}; the probe is left behind, delete it yourself`,
          failure.code,
        );
      }
      probeWritten = false;
      return 'deleted it (s3:DeleteObject)';
    });
  } finally {
    if (probeWritten && failed) await client.delete(probeKey).catch(() => {});
    client.close();
  }
  return { ok: !failed, target: clean(target), checks };
}
