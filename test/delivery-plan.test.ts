import { describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { getStream, type Stream } from '../catalog/types.js';
import { parseBucketUrl, parseEvery } from '../delivery/bucket-settings.js';
import { rowsPerPart } from '../delivery/deliver.js';
import { deliveryManifestKey, deliveryObjectKey, schemaVersion } from '../delivery/delivery-layout.js';
import {
  type CommittedWindow,
  deliveryId,
  parseDeliveryId,
  planDeliveries,
  planRevisions,
} from '../delivery/delivery-plan.js';
import { makeWindow } from '../exporter/windows.js';
import type { StagedPart } from '../staging/staged-part.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 10, 20); // a midnight

/** Consecutive windows of `size` from `from` to `to` (ms since the epoch), `rows` rows each. */
function windows(from: number, to: number, size: number, rows = 10): CommittedWindow[] {
  const out: CommittedWindow[] = [];
  for (let t = from; t < to; t += size) {
    const w = makeWindow(new Date(t), new Date(t + size));
    out.push({ ...w, manifestKey: `csv/${w.id}/_manifest.json`, rows });
  }
  return out;
}

const ranges = (planned: readonly { start: Date; end: Date }[]) =>
  planned.map((d) => `${d.start.toISOString().slice(5, 16)}..${d.end.toISOString().slice(5, 16)}`);

describe('delivery plan', () => {
  it('cuts the live edge into one delivery per slot, aligned to the clock, once the slot is closed', () => {
    // 1-minute windows from 09:23 to 09:47: slots 09:23-09:30 (the first, partial), 09:30-09:40; 09:40- is open
    const w = windows(T0 + 9 * HOUR + 23 * MIN, T0 + 9 * HOUR + 47 * MIN, MIN);
    const planned = planDeliveries(w, undefined, { everyMs: 10 * MIN });
    expect(ranges(planned)).toEqual(['11-20T09:23..11-20T09:30', '11-20T09:30..11-20T09:40']);
    expect(planned[1]!.id).toBe('20261120T093000Z_20261120T094000Z');
    expect(planned[1]!.windows).toHaveLength(10);
    expect(planned[1]!.windows[0]).toBe('20261120T093000Z_20261120T093100Z');
    // after the last planned one, nothing more until 09:50 is committed
    expect(planDeliveries(w, planned[1]!.end, { everyMs: 10 * MIN })).toEqual([]);
    const more = [...w, ...windows(T0 + 9 * HOUR + 47 * MIN, T0 + 9 * HOUR + 50 * MIN, MIN)];
    expect(ranges(planDeliveries(more, planned[1]!.end, { everyMs: 10 * MIN }))).toEqual([
      '11-20T09:40..11-20T09:50',
    ]);
    // 1m slots: one delivery per window
    expect(planDeliveries(w, undefined, { everyMs: MIN })).toHaveLength(24);
  });

  it('delivers a backfill in coarse deliveries (a UTC day at most), not one per slot', () => {
    // history: two day windows, then hours, then minutes up to 15:37 on the third day
    const w = [
      ...windows(T0, T0 + 2 * DAY, DAY, 1000),
      ...windows(T0 + 2 * DAY, T0 + 2 * DAY + 15 * HOUR, HOUR, 100),
      ...windows(T0 + 2 * DAY + 15 * HOUR, T0 + 2 * DAY + 15 * HOUR + 37 * MIN, MIN, 1),
    ];
    const planned = planDeliveries(w, undefined, { everyMs: 10 * MIN });
    expect(ranges(planned)).toEqual([
      '11-20T00:00..11-21T00:00',
      '11-21T00:00..11-22T00:00',
      '11-22T00:00..11-22T14:00',
      '11-22T14:00..11-22T15:00',
      '11-22T15:00..11-22T15:10',
      '11-22T15:10..11-22T15:20',
      '11-22T15:20..11-22T15:30',
    ]);
    expect(planned[2]!.windows).toHaveLength(14);
    // a row budget cuts coarse deliveries at a slot boundary
    const small = planDeliveries(w.slice(2), new Date(T0 + 2 * DAY), { everyMs: 10 * MIN, maxRows: 450 });
    expect(ranges(small).slice(0, 3)).toEqual([
      '11-22T00:00..11-22T04:00',
      '11-22T04:00..11-22T08:00',
      '11-22T08:00..11-22T12:00',
    ]);
  });

  it('uses the latest revision of each window and stops at a gap', () => {
    const w = windows(T0, T0 + 30 * MIN, MIN);
    const revised = { ...w[3]!, ...makeWindow(w[3]!.start, w[3]!.end, 2), manifestKey: 'x', rows: 1 };
    const planned = planDeliveries([...w, revised], undefined, { everyMs: 10 * MIN });
    expect(planned[0]!.windows[3]).toBe(`${w[3]!.id}_r2`);
    const gap = [...w.slice(0, 12), ...w.slice(13)];
    expect(ranges(planDeliveries(gap, undefined, { everyMs: 10 * MIN }))).toEqual([
      '11-20T00:00..11-20T00:10',
    ]);
  });

  it('never lets a window straddle two deliveries (windows that do not divide the slot)', () => {
    const w = windows(T0, T0 + 42 * MIN, 7 * MIN);
    const planned = planDeliveries(w, undefined, { everyMs: 10 * MIN });
    expect(ranges(planned)).toEqual([
      '11-20T00:00..11-20T00:14',
      '11-20T00:14..11-20T00:21',
      '11-20T00:21..11-20T00:35',
      '11-20T00:35..11-20T00:42',
    ]);
  });

  it('plans replays and late window revisions as new revisions under new ids', () => {
    const w = windows(T0, T0 + 30 * MIN, MIN);
    const first = planDeliveries(w, undefined, { everyMs: 10 * MIN });
    const known = first.map((d) => ({ baseId: d.baseId, revision: 0, start: d.start, end: d.end }));
    const replay = planRevisions(known, w, { from: new Date(T0 + 5 * MIN), to: new Date(T0 + 15 * MIN) });
    expect(replay.map((d) => d.id)).toEqual([
      '20261120T000000Z_20261120T001000Z_r1',
      '20261120T001000Z_20261120T002000Z_r1',
    ]);
    expect(replay[0]!.windows).toEqual(first[0]!.windows);
    const again = planRevisions([...known, { ...known[0]!, revision: 1 }], w, { to: new Date(T0 + MIN) });
    expect(again.map((d) => d.id)).toEqual(['20261120T000000Z_20261120T001000Z_r2']);
    // a window exported again as revision 1: only it, in the next revision of its delivery
    const late = { ...w[14]!, ...makeWindow(w[14]!.start, w[14]!.end, 1), manifestKey: 'y', rows: 3 };
    const revised = planRevisions(known, [...w, late], { only: new Set([late.id]) });
    expect(revised.map((d) => [d.id, d.windows])).toEqual([
      ['20261120T001000Z_20261120T002000Z_r1', ['20261120T001400Z_20261120T001500Z_r1']],
    ]);
    expect(parseDeliveryId(revised[0]!.id)).toEqual({
      baseId: '20261120T001000Z_20261120T002000Z',
      revision: 1,
    });
    expect(() => parseDeliveryId('x')).toThrow(/invalid delivery id/);
    expect(deliveryId(new Date(T0), new Date(T0 + MIN), 3)).toBe('20261120T000000Z_20261120T000100Z_r3');
  });
});

describe('delivery layout', () => {
  it('names objects by stream, schema version and delivery id, and the manifest under _manifests/', () => {
    const id = '20261120T000000Z_20261120T001000Z';
    expect(deliveryObjectKey('acme/wharf', 'clicks', 1, id, 0, 'parquet')).toBe(
      `acme/wharf/clicks/v1/${id}/part-00000.parquet`,
    );
    expect(deliveryObjectKey('', 'payouts', 2, id, 12, 'csv')).toBe(`payouts/v2/${id}/part-00012.csv.gz`);
    expect(deliveryObjectKey('p', 'links', 1, id, 1, 'json')).toBe(`p/links/v1/${id}/part-00001.ndjson.gz`);
    expect(deliveryManifestKey('acme/wharf', id)).toBe(`acme/wharf/_manifests/${id}.json`);
  });

  it('starts a new schema version with the catalog version that adds a column', () => {
    const clicks = getStream(trackingCatalog, 'clicks');
    expect(schemaVersion(clicks)).toBe(1);
    const grown: Stream = {
      ...clicks,
      columns: [...clicks.columns, { name: 'x', type: 'text', nullable: true, since: 3 }],
    };
    expect(schemaVersion(grown)).toBe(3);
  });

  it('sizes parts from the staged bytes per row', () => {
    const part = (rows: number, bytes: number) => ({ rows, bytes }) as StagedPart;
    expect(rowsPerPart([part(1000, 100_000)], 'csv', 1_000_000)).toBe(10_000);
    expect(rowsPerPart([part(1000, 100_000), part(1000, 300_000)], 'csv', 1_000_000)).toBe(5000);
    expect(rowsPerPart([part(10, 100_000_000)], 'parquet', 1000)).toBe(1);
  });

  it('checks --every and bucket URLs', () => {
    expect(parseEvery('10m')).toBe(600_000);
    expect(parseEvery('1m')).toBe(60_000);
    expect(parseEvery('1d')).toBe(DAY);
    expect(() => parseEvery('7m')).toThrow(/does not cut the day/);
    expect(() => parseEvery('30s')).toThrow(/does not cut the day/);
    expect(parseBucketUrl('s3://acme-data/wharf/exports/')).toEqual({
      bucket: 'acme-data',
      prefix: 'wharf/exports',
    });
    expect(parseBucketUrl('s3://acme-data')).toEqual({ bucket: 'acme-data', prefix: '' });
    expect(() => parseBucketUrl('https://acme-data/x')).toThrow(/invalid bucket URL/);
    expect(() => parseBucketUrl('s3://acme-data/a//b')).toThrow(/invalid prefix/);
  });
});
