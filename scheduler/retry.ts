import type { ErrorKind } from '../core/errors.js';
import { classifyError } from '../db/classify.js';

/** How `withRetry` retries. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3). */
  readonly attempts?: number;
  /** The backoff before the second attempt is at most this (default 500 ms); it doubles after each attempt. */
  readonly baseMs?: number;
  /** No backoff is longer than this (default 30 s). */
  readonly maxMs?: number;
  /** Decides whether an error is worth another attempt (default `classifyError`). */
  readonly classify?: (error: unknown) => ErrorKind;
  /** Called before each backoff, with the error, the attempt that failed (1-based) and the delay chosen. */
  readonly onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Stops waiting: an abort during a backoff ends the retries with the last error. */
  readonly signal?: AbortSignal;
  /** A number in [0, 1); `Math.random` by default. */
  readonly random?: () => number;
}

/** The backoff before attempt `attempt + 1`: full jitter, uniform in [0, min(maxMs, baseMs · 2^(attempt-1))]. */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * cap);
}

/**
 * Runs `fn` until it succeeds, retrying only transient errors with exponential backoff and full jitter.
 * A terminal error, or the last attempt's error, is thrown as is.
 *
 * @example
 * const rows = await withRetry(() => pool.query('select 1'), { attempts: 5, baseMs: 200 });
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 3);
  const baseMs = options.baseMs ?? 500;
  const maxMs = options.maxMs ?? 30_000;
  const classify = options.classify ?? classifyError;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= attempts || classify(error) !== 'transient' || options.signal?.aborted) throw error;
      const delay = backoffDelay(attempt, baseMs, maxMs, options.random);
      options.onRetry?.(error, attempt, delay);
      if (!(await sleep(delay, options.signal))) throw error;
    }
  }
}

/** Waits `ms`; resolves false when the signal aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
