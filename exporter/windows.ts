import type pg from 'pg';
import { UsageError } from '../core/errors.js';

/** A half-open window `[start, end)` of the change column, on the database's clock. */
export interface TimeWindow {
  readonly id: string;
  readonly start: Date;
  readonly end: Date;
  readonly revision: number;
}

export interface WindowSizes {
  /** Fine windows (WHARF_WINDOW, default 1m). */
  readonly fineMs: number;
  /** Coarse history windows (default 1d); a multiple of fineMs. */
  readonly coarseMs: number;
}

/** A running transaction that holds back the watermark. */
export interface Blocker {
  readonly pid: number;
  readonly xactStart: Date;
  readonly state: string;
  readonly applicationName: string;
  /** Older than the limit: ignored for the watermark (and rechecked when it ends). */
  readonly overLimit: boolean;
}

export interface Watermark {
  /** The database's `now()`. */
  readonly now: Date;
  /** Windows with `end <= watermark` are closed. */
  readonly watermark: Date;
  readonly blockers: readonly Blocker[];
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** `2026-11-23T09:20:00Z` → `20261123T092000Z`: fixed width, so ids sort in time order. */
export function compactTime(d: Date): string {
  return (
    `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`
  );
}

/** Deterministic window id: `<start>_<end>` and `_r<revision>` for revisions after the first. */
export function windowId(start: Date, end: Date, revision = 0): string {
  const base = `${compactTime(start)}_${compactTime(end)}`;
  return revision > 0 ? `${base}_r${revision}` : base;
}

export function makeWindow(start: Date, end: Date, revision = 0): TimeWindow {
  return { id: windowId(start, end, revision), start, end, revision };
}

const WINDOW_ID_RE = /^(\d{8}T\d{6}Z)_(\d{8}T\d{6}Z)(?:_r(\d+))?$/;

function parseCompact(text: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text)!;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

export function parseWindowId(id: string): TimeWindow {
  const m = WINDOW_ID_RE.exec(id);
  if (!m)
    throw new UsageError(
      `invalid window id "${id}"`,
      'window ids look like 20261123T092000Z_20261123T092100Z',
    );
  return makeWindow(parseCompact(m[1]!), parseCompact(m[2]!), m[3] ? Number(m[3]) : 0);
}

const HOUR = 3_600_000;
const floorTo = (t: number, size: number): number => Math.floor(t / size) * size;

export function checkSizes(sizes: WindowSizes): void {
  if (sizes.fineMs < 1000 || sizes.fineMs % 1000 !== 0) {
    throw new UsageError(
      `window size ${sizes.fineMs}ms is not a whole number of seconds`,
      'use e.g. WHARF_WINDOW=1s or 1m',
    );
  }
  if (sizes.coarseMs < sizes.fineMs || sizes.coarseMs % sizes.fineMs !== 0) {
    throw new UsageError(
      `history window ${sizes.coarseMs}ms is not a multiple of the window ${sizes.fineMs}ms`,
      'choose a history window (default 1d) that the window size divides',
    );
  }
}

/**
 * The closed windows to export after `cursor` (the end of the last exported window), up to `watermark`.
 * History is cut in coarse windows aligned to the coarse grid (default days), then whole hours, then fine
 * windows: a larger window is used when its whole span lies a full fine window below the watermark. Boundaries are
 * deterministic (aligned to the epoch), so every process plans the same windows.
 */
export function planWindows(
  cursor: Date,
  watermark: Date,
  sizes: WindowSizes,
  limit = Number.POSITIVE_INFINITY,
): TimeWindow[] {
  checkSizes(sizes);
  // tiers, largest first: history days, then whole hours, then fine windows
  const tiers = [sizes.coarseMs];
  if (
    HOUR < sizes.coarseMs &&
    HOUR > sizes.fineMs &&
    sizes.coarseMs % HOUR === 0 &&
    HOUR % sizes.fineMs === 0
  ) {
    tiers.push(HOUR);
  }
  const out: TimeWindow[] = [];
  let t = floorTo(cursor.getTime(), sizes.fineMs);
  const w = watermark.getTime();
  while (out.length < limit) {
    let end = t + sizes.fineMs;
    for (const size of tiers) {
      const boundary = floorTo(t, size) + size;
      if (boundary - t > sizes.fineMs && boundary <= w - sizes.fineMs) {
        end = boundary;
        break;
      }
    }
    if (end > w) break;
    out.push(makeWindow(new Date(t), new Date(end)));
    t = end;
  }
  return out;
}

/** Where planning starts when nothing was exported yet: the oldest change, floored to the fine grid. */
export function initialCursor(oldest: Date | undefined, watermark: Date, sizes: WindowSizes): Date {
  const from = oldest ?? watermark;
  return new Date(floorTo(from.getTime(), sizes.fineMs));
}

/**
 * Reads the watermark from the source: `min(now() - settle, xact_start of the oldest open transaction)`.
 * Open transactions are those of client backends in this database other than Wharf's own (application
 * name `wharf…`), whether or not they hold an xid yet: a transaction that has not written yet can still
 * write rows stamped with its start time. One older than `longLimitMs` is reported but ignored.
 */
export async function readWatermark(
  client: pg.ClientBase,
  settleMs: number,
  longLimitMs: number,
): Promise<Watermark> {
  const { rows } = await client.query<{
    now: Date;
    pid: number | null;
    xact_start: Date | null;
    state: string | null;
    application_name: string | null;
  }>(
    `select now() as now, a.pid, a.xact_start, a.state, a.application_name
       from (select 1) one
       left join pg_stat_activity a
         on a.datname = current_database()
        and a.pid <> pg_backend_pid()
        and a.backend_type = 'client backend'
        and a.xact_start is not null
        and coalesce(a.application_name, '') not like 'wharf%'
      order by a.xact_start nulls last`,
  );
  const now = rows[0]!.now;
  let watermark = now.getTime() - settleMs;
  const blockers: Blocker[] = [];
  for (const r of rows) {
    if (r.pid === null || r.xact_start === null) continue;
    const overLimit = now.getTime() - r.xact_start.getTime() > longLimitMs;
    blockers.push({
      pid: r.pid,
      xactStart: r.xact_start,
      state: r.state ?? '',
      applicationName: r.application_name ?? '',
      overLimit,
    });
    if (!overLimit) watermark = Math.min(watermark, r.xact_start.getTime());
  }
  // prepared transactions also commit rows stamped with their start
  const prepared = await client.query<{ prepared: Date | null }>(
    `select min(prepared) as prepared from pg_prepared_xacts where database = current_database()`,
  );
  const p = prepared.rows[0]?.prepared;
  if (p && now.getTime() - p.getTime() <= longLimitMs) watermark = Math.min(watermark, p.getTime());
  return { now, watermark: new Date(watermark), blockers };
}
