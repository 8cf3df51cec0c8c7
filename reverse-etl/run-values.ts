import type { CallManifest } from './call-files.js';
import type { BoundParameter } from './parameter-type.js';

/** µs since the epoch → ISO-8601 UTC with microseconds. */
export function isoMicros(micros: number): string {
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return `${iso.slice(0, 19)}.${String(micros % 1_000_000).padStart(6, '0')}Z`;
}

/** The bound parameter as a manifest (and a preview) records it. */
export function parameterOf(p: BoundParameter | undefined): CallManifest['parameter'] {
  return p === undefined ? null : { type: p.name, kind: p.kind, value: p.value };
}

/** The instant bound for `{{last_sync_time}}`: the previous start less the lookback, never before the epoch. */
export function sinceMicros(lastSyncTimeMicros: number, lookbackMs = 0): number {
  return Math.max(0, lastSyncTimeMicros - lookbackMs * 1000);
}
