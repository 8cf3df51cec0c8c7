import { describe, expect, it } from 'vitest';
import { WharfError } from '../core/errors.js';
import { classifyError } from '../db/classify.js';
import { backoffDelay, withRetry } from '../scheduler/retry.js';
import { waitsForParents } from '../scheduler/scheduler.js';

/** A function that fails `failures` times with `error`, then returns its call count. */
function flaky(failures: number, error: () => unknown) {
  let calls = 0;
  const fn = async () => {
    calls++;
    if (calls <= failures) throw error();
    return calls;
  };
  return { fn, calls: () => calls };
}

const pgError = (code: string) => Object.assign(new Error('server said no'), { code });
const nodeError = (code: string) => Object.assign(new Error('socket trouble'), { code });

describe('withRetry', () => {
  it('retries a transient failure until it succeeds, with a backoff before each retry', async () => {
    const f = flaky(2, () => nodeError('ECONNRESET'));
    const retries: { attempt: number; delay: number }[] = [];
    const result = await withRetry(f.fn, {
      attempts: 5,
      baseMs: 4,
      maxMs: 50,
      onRetry: (_e, attempt, delay) => retries.push({ attempt, delay }),
    });
    expect(result).toBe(3);
    expect(f.calls()).toBe(3);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
    expect(retries[0]!.delay).toBeLessThanOrEqual(4);
    expect(retries[1]!.delay).toBeLessThanOrEqual(8);
  });

  it('does not retry a terminal error', async () => {
    const f = flaky(5, () => pgError('42501'));
    await expect(withRetry(f.fn, { attempts: 5, baseMs: 1 })).rejects.toMatchObject({ code: '42501' });
    expect(f.calls()).toBe(1);
  });

  it('gives up after the last attempt with the last error', async () => {
    let n = 0;
    const fn = async () => {
      n++;
      throw pgError('40P01');
    };
    const error = await withRetry(fn, { attempts: 3, baseMs: 1 }).catch((e: unknown) => e);
    expect((error as { code: string }).code).toBe('40P01');
    expect(n).toBe(3);
  });

  it('retries SQLSTATE classes 08, 40001, 40P01, 57P01 and WharfError transient, also as a cause', async () => {
    for (const make of [
      () => pgError('08006'),
      () => pgError('40001'),
      () => pgError('57P01'),
      () => new WharfError('store busy', { kind: 'transient' }),
      () => new WharfError('load failed', { cause: pgError('40P01') }),
      () => new WharfError('cannot connect', { cause: nodeError('ETIMEDOUT') }),
    ]) {
      const f = flaky(1, make);
      expect(await withRetry(f.fn, { attempts: 2, baseMs: 1 })).toBe(2);
    }
  });

  it('classifies by codes, never by message text', () => {
    expect(classifyError(new Error('connection reset by peer, deadlock, timeout'))).toBe('terminal');
    expect(classifyError(pgError('23505'))).toBe('terminal');
    expect(classifyError(new WharfError('x', { kind: 'usage' }))).toBe('terminal');
    expect(classifyError(nodeError('ECONNREFUSED'))).toBe('transient');
  });

  it('uses a custom classifier', async () => {
    const f = flaky(2, () => new Error('anything'));
    expect(await withRetry(f.fn, { attempts: 3, baseMs: 1, classify: () => 'transient' })).toBe(3);
  });

  it('stops waiting when the signal aborts', async () => {
    const stop = new AbortController();
    const f = flaky(10, () => nodeError('ECONNRESET'));
    const pending = withRetry(f.fn, {
      attempts: 10,
      baseMs: 60_000,
      maxMs: 60_000,
      random: () => 0.99,
      signal: stop.signal,
      onRetry: () => stop.abort(),
    });
    await expect(pending).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(f.calls()).toBe(1);
  });
});

describe('backoffDelay (full jitter)', () => {
  it('stays within [0, min(max, base·2^(n-1))]', () => {
    expect(backoffDelay(1, 100, 10_000, () => 0.999)).toBe(99);
    expect(backoffDelay(3, 100, 10_000, () => 0.999)).toBe(399);
    expect(backoffDelay(20, 100, 10_000, () => 0.999)).toBe(9990);
    expect(backoffDelay(5, 100, 10_000, () => 0)).toBe(0);
  });
});

describe('waitsForParents', () => {
  it('recognises a foreign key violation anywhere in the cause chain, by SQLSTATE', () => {
    expect(waitsForParents(new WharfError('load failed', { cause: pgError('23503') }))).toBe(true);
    expect(waitsForParents(pgError('23503'))).toBe(true);
    expect(waitsForParents(pgError('23505'))).toBe(false);
    expect(waitsForParents(new Error('violates foreign key constraint'))).toBe(false);
  });
});
