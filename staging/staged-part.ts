import type { Readable } from 'node:stream';
import type { Stream } from '../catalog/types.js';
import type { WindowManifest } from './manifest.js';
import type { StagingStore } from './staging-store.js';

/**
 * One account's rows of one stream in one staged window, as every reader sees them (loaders, bucket delivery,
 * replay), whatever the layout of the window's objects.
 */
export interface StagedPart {
  /** The window the rows belong to; rows staged from it carry it in `_wharf_window`. */
  readonly windowId: string;
  /** The object holding the rows (for messages); in version 2 they are a byte range of it. */
  readonly key: string;
  readonly stream: string;
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
  /** The columns in order (the header line), from the window manifest. */
  readonly columns: readonly string[];
  /**
   * Opens the rows: gzip bytes of a CSV header line and PostgreSQL's CSV COPY records. The stream fails at
   * its end if the bytes differ from the manifest's sha256.
   */
  open(): Promise<Readable>;
}

/**
 * The parts of `account`'s rows of `stream` in a committed window (none when the account had no rows), whatever
 * the manifest's version: a byte range of the stream's object (version 2) or a whole object (version 1).
 */
export function stagedParts(
  store: StagingStore,
  windowId: string,
  manifest: WindowManifest,
  stream: Stream,
  account: string,
): StagedPart[] {
  const columns = manifest.streams[stream.name]?.columns ?? stream.columns.map((c) => c.name);
  return manifest.files
    .filter((f) => f.stream === stream.name && f.account === account)
    .map((f) => ({
      windowId,
      key: f.key,
      stream: f.stream,
      rows: f.rows,
      bytes: f.bytes,
      sha256: f.sha256,
      columns,
      // version 2: one ranged read of the stream's object; version 1: the account's own object
      open: () =>
        store.get(f.key, {
          sha256: f.sha256,
          ...(f.offset === undefined ? {} : { range: { offset: f.offset, length: f.bytes } }),
        }),
    }));
}
