import { describe, expect, it } from 'vitest';
import { parseDuration } from '../core/duration.js';
import { parseWindowId, planWindows, windowId } from '../exporter/windows.js';

const t = (iso: string) => new Date(iso);
const sizes = { fineMs: 60_000, coarseMs: 86_400_000 };

describe('window ids', () => {
  it('are deterministic, fixed width and sort in time order', () => {
    const a = windowId(t('2026-11-23T09:20:00Z'), t('2026-11-23T09:21:00Z'));
    expect(a).toBe('20261123T092000Z_20261123T092100Z');
    expect(windowId(t('2026-11-23T09:20:00Z'), t('2026-11-23T09:21:00Z'), 2)).toBe(`${a}_r2`);
    expect(parseWindowId(`${a}_r2`)).toMatchObject({ revision: 2, start: t('2026-11-23T09:20:00Z') });
    const b = windowId(t('2026-11-23T10:00:00Z'), t('2026-11-23T10:01:00Z'));
    expect([b, a].sort()).toEqual([a, b]);
  });
});

describe('planWindows', () => {
  it('cuts history into day windows, then hours, then minute windows up to the watermark, half-open and contiguous', () => {
    const windows = planWindows(t('2026-11-20T13:07:00Z'), t('2026-11-23T09:20:30Z'), sizes);
    expect(windows[0]).toMatchObject({ start: t('2026-11-20T13:07:00Z'), end: t('2026-11-21T00:00:00Z') });
    expect(windows[1]).toMatchObject({ start: t('2026-11-21T00:00:00Z'), end: t('2026-11-22T00:00:00Z') });
    expect(windows[2]).toMatchObject({ start: t('2026-11-22T00:00:00Z'), end: t('2026-11-23T00:00:00Z') });
    expect(windows[3]).toMatchObject({ start: t('2026-11-23T00:00:00Z'), end: t('2026-11-23T01:00:00Z') });
    expect(windows.filter((w) => w.end.getTime() - w.start.getTime() === 3_600_000)).toHaveLength(9);
    expect(windows[windows.length - 20]!.end.getTime() - windows[windows.length - 20]!.start.getTime()).toBe(
      60_000,
    );
    const last = windows[windows.length - 1]!;
    expect(last.end).toEqual(t('2026-11-23T09:20:00Z'));
    for (let i = 1; i < windows.length; i++) expect(windows[i]!.start).toEqual(windows[i - 1]!.end);
    expect(windows.every((w) => w.end.getTime() <= t('2026-11-23T09:20:30Z').getTime())).toBe(true);
  });

  it('plans the same windows in any process and never past the watermark', () => {
    const a = planWindows(t('2026-11-23T09:00:00Z'), t('2026-11-23T09:05:59Z'), sizes);
    const b = planWindows(t('2026-11-23T09:00:00Z'), t('2026-11-23T09:05:59Z'), sizes);
    expect(a.map((w) => w.id)).toEqual(b.map((w) => w.id));
    expect(a).toHaveLength(5);
    expect(planWindows(t('2026-11-23T09:05:00Z'), t('2026-11-23T09:05:59Z'), sizes)).toHaveLength(0);
  });

  it('accepts one-second windows and a zero settle', () => {
    expect(parseDuration('1s')).toBe(1000);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    const w = planWindows(t('2026-11-23T09:00:00Z'), t('2026-11-23T09:00:03Z'), {
      fineMs: 1000,
      coarseMs: 86_400_000,
    });
    expect(w.map((x) => x.id)).toEqual([
      '20261123T090000Z_20261123T090001Z',
      '20261123T090001Z_20261123T090002Z',
      '20261123T090002Z_20261123T090003Z',
    ]);
  });

  it('rejects sizes that do not fit', () => {
    expect(() => parseDuration('1 minute')).toThrow(/invalid duration/);
    expect(() =>
      planWindows(t('2026-11-23T09:00:00Z'), t('2026-11-23T10:00:00Z'), {
        fineMs: 7000,
        coarseMs: 86_400_000,
      }),
    ).toThrow(/multiple/);
  });
});
