import { UsageError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `1s`, `30s`, `1m`, `15m`, `1h`, `1d` (also combined: `1h30m`) into milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const trimmed = text.trim();
  const re = /(\d+)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  for (const m of trimmed.matchAll(re)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched += m[0].length;
  }
  if (trimmed.length === 0 || matched !== trimmed.length) {
    throw new UsageError(
      `invalid ${what} "${text}"`,
      'use a number and a unit, e.g. 1s, 30s, 1m, 15m, 1h, 1d',
    );
  }
  return total;
}

/** Formats milliseconds back to the shortest unit form (`60000` → `1m`). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNITS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
