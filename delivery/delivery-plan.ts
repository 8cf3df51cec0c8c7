import type { KnownDelivery, PlannedDelivery } from '../control/deliveries.js';

export type { KnownDelivery, PlannedDelivery };

import { UsageError } from '../core/errors.js';
import { compactTime } from '../exporter/windows.js';

/** A committed (staged) window, as the control `windows` table lists it. */
export interface CommittedWindow {
  readonly id: string;
  readonly start: Date;
  readonly end: Date;
  readonly revision: number;
  readonly manifestKey: string;
  /** Rows of every account (a bound for grouping; the connector's account has at most these). */
  readonly rows: number;
}

/** How deliveries are cut. */
export interface DeliveryPlanOptions {
  /** Slot length (`--every`), a whole number of minutes dividing a day. */
  readonly everyMs: number;
  /** A delivery gathering several slots (catching up) holds at most this many rows of windows (default 5,000,000). */
  readonly maxRows?: number;
  /** At most this many deliveries (default: all). */
  readonly limit?: number;
}

/** Slots closed longer than this before the committed end are history, gathered per day. */
const HISTORY_MS = 3_600_000;
const DAY = 86_400_000;
const DELIVERY_ID_RE = /^(\d{8}T\d{6}Z)_(\d{8}T\d{6}Z)(?:_r(\d+))?$/;

/** `<start>_<end>` in compact UTC times (like window ids), and `_r<n>` for revision n > 0 (replays). */
export function deliveryId(start: Date, end: Date, revision = 0): string {
  const base = `${compactTime(start)}_${compactTime(end)}`;
  return revision > 0 ? `${base}_r${revision}` : base;
}

/** The base id and revision of a delivery id. */
export function parseDeliveryId(id: string): { baseId: string; revision: number } {
  const m = DELIVERY_ID_RE.exec(id);
  if (!m) {
    throw new UsageError(
      `invalid delivery id "${id}"`,
      'delivery ids look like 20261123T092000Z_20261123T093000Z',
    );
  }
  return { baseId: `${m[1]}_${m[2]}`, revision: m[3] ? Number(m[3]) : 0 };
}

const slotIndex = (t: number, everyMs: number): number => Math.floor(t / everyMs);

/** Whether a window ends a slot: it reaches or crosses a slot boundary (windows never straddle a delivery). */
function closesSlot(window: CommittedWindow, everyMs: number): boolean {
  return slotIndex(window.start.getTime(), everyMs) < slotIndex(window.end.getTime(), everyMs);
}

/** The latest revision of each window, in time order. */
export function latestRevisions(windows: readonly CommittedWindow[]): CommittedWindow[] {
  const byStart = new Map<number, CommittedWindow>();
  for (const w of windows) {
    const t = w.start.getTime();
    const seen = byStart.get(t);
    if (seen === undefined || w.revision > seen.revision) byStart.set(t, w);
  }
  return [...byStart.values()].sort((a, b) => a.start.getTime() - b.start.getTime());
}

/**
 * The next deliveries after `after` (the end of the last delivery planned; the first window's start when none):
 * one per `--every` slot, aligned to the clock, each holding the consecutive committed windows that end in its slot
 * (a window never straddles two deliveries). A delivery is only planned once the window ending its slot is
 * committed, so its windows are final. History is gathered coarsely: slots that closed more than an hour before the
 * end of the committed windows (a first backfill, a connector catching up) are one delivery per UTC day, up to
 * `maxRows` rows of windows, instead of one per slot.
 */
export function planDeliveries(
  windows: readonly CommittedWindow[],
  after: Date | undefined,
  options: DeliveryPlanOptions,
): PlannedDelivery[] {
  const every = options.everyMs;
  const maxRows = options.maxRows ?? 5_000_000;
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const from = after?.getTime() ?? Number.NEGATIVE_INFINITY;
  const pending = latestRevisions(windows).filter((w) => w.start.getTime() >= from);
  // only an unbroken run of windows can be delivered: stop at the first gap
  let run = pending.length > 0 ? 1 : 0;
  while (run < pending.length && pending[run]!.start.getTime() === pending[run - 1]!.end.getTime()) run++;
  if (run === 0) return [];
  const historyEnd = pending[run - 1]!.end.getTime() - HISTORY_MS;

  const out: PlannedDelivery[] = [];
  let i = 0;
  while (i < run && out.length < limit) {
    const start = pending[i]!.start.getTime();
    // the first window that ends a slot: the smallest delivery
    let last = i;
    while (last < run && !closesSlot(pending[last]!, every)) last++;
    if (last >= run) break; // the slot is not closed yet
    // history: on to the last slot that ends by the day's end and an hour before the committed end
    const reach = Math.min(Math.floor(start / DAY) * DAY + DAY, historyEnd);
    let rows = 0;
    for (let j = i; j < run && pending[j]!.end.getTime() <= reach; j++) {
      rows += pending[j]!.rows;
      if (rows > maxRows && j > last) break;
      if (j > last && closesSlot(pending[j]!, every)) last = j;
    }
    const end = pending[last]!.end;
    const id = deliveryId(new Date(start), end);
    out.push({
      id,
      baseId: id,
      revision: 0,
      start: new Date(start),
      end,
      windows: pending.slice(i, last + 1).map((w) => w.id),
    });
    i = last + 1;
  }
  return out;
}

/**
 * New revisions of deliveries: for each base delivery (revision 0 known) overlapping `[from, to)`, or whose windows
 * have newer revisions (`only` limits the windows), the next revision `<base>_r<n>` holding the latest revision of
 * its windows. Replays and late window revisions never reuse a key: the revision suffix is in every key.
 */
export function planRevisions(
  known: readonly KnownDelivery[],
  windows: readonly CommittedWindow[],
  select: { readonly from?: Date; readonly to?: Date; readonly only?: ReadonlySet<string> },
): PlannedDelivery[] {
  const latest = latestRevisions(windows);
  const bases = new Map<string, KnownDelivery & { next: number }>();
  for (const d of known) {
    const seen = bases.get(d.baseId);
    if (seen === undefined) bases.set(d.baseId, { ...d, revision: 0, next: d.revision + 1 });
    else seen.next = Math.max(seen.next, d.revision + 1);
  }
  const out: PlannedDelivery[] = [];
  for (const base of [...bases.values()].sort((a, b) => a.start.getTime() - b.start.getTime())) {
    if (select.from !== undefined && base.end.getTime() <= select.from.getTime()) continue;
    if (select.to !== undefined && base.start.getTime() >= select.to.getTime()) continue;
    const inside = latest.filter(
      (w) =>
        w.start.getTime() >= base.start.getTime() &&
        w.end.getTime() <= base.end.getTime() &&
        (select.only === undefined || select.only.has(w.id)),
    );
    if (inside.length === 0) continue;
    out.push({
      id: deliveryId(base.start, base.end, base.next),
      baseId: base.baseId,
      revision: base.next,
      start: base.start,
      end: base.end,
      windows: inside.map((w) => w.id),
    });
  }
  return out;
}
