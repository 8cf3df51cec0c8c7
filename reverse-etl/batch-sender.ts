import { setTimeout as sleep } from 'node:timers/promises';
import { causes, UsageError, WharfError } from '../core/errors.js';
import { redact, Secret } from '../core/secret.js';
import { type BatchLimits, batchBody, packedBody } from './call-batches.js';
import { type PostClient, type PostResponse, postClient } from './http-post.js';

/** A Segment-compatible batch endpoint: its URL without the write key, and the key apart. */
export interface DeliveryEndpoint {
  /** `https://host/path`: printable, no credentials. */
  readonly url: string;
  readonly writeKey: Secret;
}

/**
 * Parses `--deliver-to`: `http(s)://WRITE_KEY@host/path` (the key percent-decoded, kept as a `Secret`).
 * `writeKey`, when given, replaces a key in the URL. The URL is never echoed in an error: it may hold the key.
 *
 * @example parseDeliverTo('https://wk_123@api.example.com/v1/batch').url // 'https://api.example.com/v1/batch'
 */
export function parseDeliverTo(text: string, writeKey?: Secret): DeliveryEndpoint {
  const form = 'write it as https://WRITE_KEY@host/path (percent-encode special characters in the key)';
  let u: URL;
  try {
    u = new URL(text.trim());
  } catch {
    throw new UsageError('the --deliver-to URL is not a valid URL', form);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new UsageError(
      `the --deliver-to URL has the scheme ${u.protocol} ; use https:// (or http://)`,
      form,
    );
  }
  if (u.password !== '') {
    throw new UsageError('the --deliver-to URL has a password; the write key goes alone before the @', form);
  }
  let key: string;
  try {
    key = decodeURIComponent(u.username);
  } catch {
    throw new UsageError('the --deliver-to URL has a write key that is not valid percent-encoding', form);
  }
  u.username = '';
  const url = u.href;
  const secret = writeKey ?? (key === '' ? undefined : new Secret(key));
  if (secret === undefined) throw new UsageError(`the --deliver-to URL ${url} names no write key`, form);
  return { url, writeKey: secret };
}

/** What a delivered batch got back. */
export interface SendResult {
  readonly status: number;
  readonly attempts: number;
}

/** Delivers one batch of calls; resolves once the receiver acknowledged it (2xx). */
export interface BatchSender {
  /** How the receiver wants its calls cut into requests (default: 500,000 bytes, no count limit). */
  readonly limits?: BatchLimits | undefined;
  /** Requests a run keeps in flight at most (default 1). */
  readonly inFlight?: number | undefined;
  /** Sends calls: each call's JSON, or a packed batch's payload (`PackedBatch.payload`). */
  send(calls: readonly string[] | Buffer, index: number): Promise<SendResult>;
}

/** How failed requests are retried. */
export interface RetryPolicy {
  /** Attempts per batch before giving up with a transient error. Default 8. */
  readonly maxAttempts?: number;
  /** The first backoff; it doubles per attempt, with jitter. Default 500 ms. */
  readonly baseDelayMs?: number;
  /** The longest backoff. Default 30 s. */
  readonly maxDelayMs?: number;
  /** The longest `Retry-After` honoured. Default 5 min. */
  readonly maxRetryAfterMs?: number;
}

export interface SenderOptions {
  readonly retry?: RetryPolicy;
  /** Per request. Default 30 s. */
  readonly timeoutMs?: number;
  /** Told before each wait (for logs and metrics). */
  readonly onRetry?: (event: {
    readonly index: number;
    readonly attempt: number;
    readonly delayMs: number;
    readonly reason: string;
  }) => void;
  /** See `BatchSender.limits`. */
  readonly limits?: BatchLimits;
  /** See `BatchSender.inFlight`. */
  readonly inFlight?: number;
}

/** The receiver's message is cut to this many characters in errors. */
const MESSAGE_CHARS = 300;

/** TLS verification failures: retrying cannot make a certificate valid. */
const TLS_CODES =
  /^(?:ERR_TLS_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_|ERR_SSL_)/;

/**
 * POSTs batches (`{"batch":[…],"sentAt":…}`, `application/json`) with the write key as HTTP Basic user
 * name and an empty password. 429, 5xx and network errors are retried with exponential backoff and
 * jitter, honouring `Retry-After` (seconds or an HTTP date), up to `maxAttempts`; any other 4xx (and a
 * redirect) is a terminal `WharfError` naming the status and the receiver's message. `sentAt` is set
 * on each attempt.
 */
export class HttpBatchSender implements BatchSender {
  readonly #endpoint: DeliveryEndpoint;
  readonly #options: SenderOptions;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #client: PostClient;
  readonly #retry: RetryPolicy;
  readonly limits: BatchLimits | undefined;
  readonly inFlight: number | undefined;

  constructor(endpoint: DeliveryEndpoint, options: SenderOptions = {}) {
    this.#endpoint = endpoint;
    this.#options = options;
    this.#retry = options.retry ?? {};
    this.limits = options.limits;
    this.inFlight = options.inFlight;
    this.#headers = {
      'content-type': 'application/json',
      authorization: `Basic ${Buffer.from(`${endpoint.writeKey.reveal()}:`).toString('base64')}`,
      'user-agent': 'wharf',
    };
    this.#client = postClient(endpoint.url);
  }

  /** Closes the kept-alive connections (they also close on their own when idle). */
  close(): void {
    this.#client.close();
  }

  async send(calls: readonly string[] | Buffer, index: number): Promise<SendResult> {
    const maxAttempts = this.#retry.maxAttempts ?? 8;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(calls, index);
      if (outcome.ok) return { status: outcome.status, attempts: attempt };
      if (attempt >= maxAttempts) {
        throw new WharfError(
          `the receiver at ${this.#endpoint.url} kept failing batch ${index}: ${outcome.reason} after ${attempt} attempts`,
          {
            kind: 'transient',
            hint: 'the run resumes from this batch the next time; check that the receiver is up',
            ...(outcome.cause === undefined ? {} : { cause: outcome.cause }),
          },
        );
      }
      const delayMs = outcome.retryAfterMs ?? this.#backoff(attempt);
      this.#options.onRetry?.({ index, attempt, delayMs, reason: outcome.reason });
      await sleep(delayMs);
    }
  }

  async #attempt(
    calls: readonly string[] | Buffer,
    index: number,
  ): Promise<
    { ok: true; status: number } | { ok: false; reason: string; retryAfterMs?: number; cause?: unknown }
  > {
    let response: PostResponse;
    try {
      const body = Buffer.isBuffer(calls)
        ? packedBody(calls, new Date())
        : Buffer.from(batchBody(calls, new Date()));
      response = await this.#client.post(body, this.#headers, this.#options.timeoutMs ?? 30_000);
    } catch (error) {
      const codes = causes(error).map((e) => (e as { code?: unknown }).code);
      const tls = codes.find((c): c is string => typeof c === 'string' && TLS_CODES.test(c));
      if (tls !== undefined) {
        throw new WharfError(
          `the receiver at ${this.#endpoint.url} has a certificate Node cannot verify (${tls})`,
          {
            cause: error,
            code: tls,
            hint: 'give the receiver a certificate from a trusted authority (or add its CA with NODE_EXTRA_CA_CERTS)',
          },
        );
      }
      const code = codes.find((c): c is string => typeof c === 'string');
      const name = (error as { name?: string }).name;
      return {
        ok: false,
        reason: name === 'TimeoutError' ? 'no answer in time' : `network error ${code ?? name ?? ''}`.trim(),
        cause: error,
      };
    }
    const { status, text } = response;
    if (status >= 200 && status < 300) return { ok: true, status };
    if (status === 429 || status >= 500) {
      const retryAfterMs = this.#retryAfter(response.retryAfter ?? null);
      return { ok: false, reason: `HTTP ${status}`, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
    }
    const message = this.#message(text);
    if (status >= 300 && status < 400) {
      throw new WharfError(
        `the receiver at ${this.#endpoint.url} redirected batch ${index} (HTTP ${status})`,
        { code: `HTTP_${status}`, hint: 'give --deliver-to the final URL of the batch endpoint' },
      );
    }
    throw new WharfError(
      `the receiver at ${this.#endpoint.url} refused batch ${index} with HTTP ${status}${message ? `: ${message}` : ''}`,
      { code: `HTTP_${status}`, hint: refusalHint(status) },
    );
  }

  #backoff(attempt: number): number {
    const base = this.#retry.baseDelayMs ?? 500;
    const cap = this.#retry.maxDelayMs ?? 30_000;
    const ceiling = Math.min(cap, base * 2 ** (attempt - 1));
    // "equal jitter": at least half the step, so retries spread out but never hammer
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  /** `Retry-After` in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
  #retryAfter(header: string | null): number | undefined {
    if (header === null) return undefined;
    const max = this.#retry.maxRetryAfterMs ?? 300_000;
    const text = header.trim();
    if (/^\d+$/.test(text)) return Math.min(max, Number(text) * 1000);
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    return Math.min(max, Math.max(0, at - Date.now()));
  }

  /** The receiver's message: a JSON body's `message` / `error`, else its text; one line, cut, no write key. */
  #message(text: string): string {
    let message = text;
    try {
      const body = JSON.parse(text) as { message?: unknown; error?: unknown };
      const field = body?.message ?? body?.error;
      if (typeof field === 'string') message = field;
      else if (
        field &&
        typeof field === 'object' &&
        typeof (field as { message?: unknown }).message === 'string'
      ) {
        message = (field as { message: string }).message;
      }
    } catch {
      // not JSON: its text
    }
    const line = redact(message.replace(/\s+/g, ' ').trim(), [this.#endpoint.writeKey]);
    return line.length > MESSAGE_CHARS ? `${line.slice(0, MESSAGE_CHARS)}…` : line;
  }
}

function refusalHint(status: number): string {
  if (status === 401 || status === 403) return 'check the write key in --deliver-to';
  if (status === 404 || status === 405) return 'check the path of the batch endpoint in --deliver-to';
  return 'fix what the receiver names (the query, or the sync type), then run the sync again: its files are kept';
}
