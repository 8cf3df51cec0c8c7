import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { Catalog, Stream } from '../catalog/types.js';
import { migrateControl } from '../control/control-schema.js';
import { WindowsTable } from '../control/windows.js';
import { AlreadyExistsError, IntegrityError, UsageError, WharfError, withContext } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { asConnectionLoss } from '../db/postgres/connection.js';
import { withAdvisoryLock } from '../db/postgres/locks.js';
import { literalPg, quotePg } from '../db/postgres/quote.js';
import {
  MANIFEST_FORMAT_VERSION,
  type ManifestFile,
  type ManifestObject,
  readManifest,
  serializeManifest,
  type WindowManifest,
} from '../staging/manifest.js';
import { openSpool, type SpooledFile } from '../staging/spool-file.js';
import type { StagingStore } from '../staging/staging-store.js';
import { readCopyBatches } from './copy-records.js';
import { countAccounts, inTableOrder, type ReadOrder, readOrderFor } from './read-order.js';
import { beginSnapshot, endReaders, joinSnapshot } from './snapshot-readers.js';
import { StreamChecksum } from './stream-checksum.js';
import { type StreamObject, writeStreamObject } from './stream-object.js';
import {
  type Blocker,
  initialCursor,
  makeWindow,
  parseWindowId,
  planWindows,
  readWatermark,
  type TimeWindow,
  type WindowSizes,
} from './windows.js';
import type { FileFormat } from './writers/file-format.js';

export interface ExportOptions {
  readonly source: pg.Pool;
  readonly control: pg.Pool;
  readonly controlSchema: string;
  readonly sourceSchema: string;
  readonly store: StagingStore;
  readonly catalog: Catalog;
  readonly format: FileFormat;
  readonly sizes: WindowSizes;
  readonly settleMs: number;
  /** A transaction open longer than this no longer holds windows open (default 15 min). */
  readonly longTransactionMs: number;
  readonly spoolDir?: string;
  readonly logger?: Logger;
  /** At most this many windows in one run (the rest on the next run). */
  readonly maxWindows?: number;
  /** `wait` (one-shot commands) blocks until another exporter is done; `skip` returns at once. */
  readonly lock?: 'wait' | 'skip';
  readonly onProgress?: (event: ExportProgress) => void;
  /** Called after each object is published (`file`) and before the manifest (`manifest`); crash tests stop here. */
  readonly onStep?: (step: 'file' | 'manifest') => void;
  /** Publish objects with this many uploads at once (default 4). */
  readonly uploadConcurrency?: number;
  /**
   * Read up to this many streams of a window at once, each on its own source connection in the window's snapshot
   * (default 2; fewer when the window has fewer streams with rows or the source pool has no spare connection).
   */
  readonly readConcurrency?: number;
  /**
   * Export committed windows again, each as its next revision (never over the files of an earlier one): these
   * window ids (any revision of them), or the windows in [from, to). Nothing new is exported then.
   */
  readonly again?: ReExport;
}

/** Which committed windows to export again. */
export interface ReExport {
  readonly windowIds?: readonly string[];
  readonly from?: Date;
  readonly to?: Date;
}

/** The advisory lock one exporter of a format holds on the control database. */
export function exportLockKey(controlSchema: string, format: string): string {
  return `wharf.export.${controlSchema}.${format}`;
}

export interface ExportProgress {
  readonly window: TimeWindow;
  readonly index: number;
  readonly total: number;
  readonly rows: number;
}

export interface ExportSummary {
  windows: number;
  /** Objects written (one per stream with rows in a window). */
  files: number;
  /** Objects found already staged with identical bytes (a completed torn export). */
  filesAlreadyStaged: number;
  rows: number;
  bytes: number;
  seconds: number;
  revisions: number;
  /** Open transactions older than the limit, ignored for the watermark. */
  longTransactions: { pid: number; xactStart: string }[];
  skipped: boolean;
  watermark: string | null;
}

interface WindowResult {
  readonly manifest: WindowManifest;
  readonly manifestKey: string;
  readonly rows: number;
  readonly bytes: number;
  readonly files: number;
  readonly alreadyStaged: number;
}

/** The content of a window changed since files of it were staged: export it as a new revision. */
class ContentChanged extends Error {}

export function manifestKey(format: FileFormat, window: TimeWindow): string {
  return `${format.name}/${window.id}/_manifest.json`;
}

/** The key of a stream's object in a window (manifest version 2): every account's rows are a part of it. */
export function objectKey(format: FileFormat, window: TimeWindow, stream: Stream): string {
  return `${format.name}/${window.id}/${stream.name}.${format.extension}`;
}

/**
 * The SQL that reads one stream of one window from the source, once for all accounts: sorted by tenant and
 * primary key (`account`, the default), or in the order the table is stored (`table`).
 */
export function copySql(
  stream: Stream,
  format: FileFormat,
  sourceSchema: string,
  start: Date,
  end: Date,
  order: ReadOrder = 'account',
): string {
  const exprs = stream.columns.map(
    (c) => `${format.selectExpression(c, quotePg(c.name))} as ${quotePg(c.name)}`,
  );
  const change = quotePg(stream.changeColumn);
  const sortKey = [stream.tenantColumn, ...stream.primaryKey.filter((k) => k !== stream.tenantColumn)]
    .map(quotePg)
    .join(', ');
  return (
    `copy (select ${exprs.join(', ')} from ${quotePg(sourceSchema)}.${quotePg(stream.name)}` +
    ` where ${change} >= ${literalPg(start.toISOString())}::timestamptz and ${change} < ${literalPg(end.toISOString())}::timestamptz` +
    `${order === 'account' ? ` order by ${sortKey}` : ''}) to stdout (format csv)`
  );
}

/**
 * Exports every closed window not yet exported: one read of the source per stream and window, written as one
 * object per stream with each account's rows as a part of it, published put-once, then the manifest, then the
 * control row.
 */
export async function exportWindows(options: ExportOptions): Promise<ExportSummary> {
  const started = Date.now();
  const log = options.logger ?? silentLogger();
  const summary: ExportSummary = {
    windows: 0,
    files: 0,
    filesAlreadyStaged: 0,
    rows: 0,
    bytes: 0,
    seconds: 0,
    revisions: 0,
    longTransactions: [],
    skipped: false,
    watermark: null,
  };
  const control = await options.control.connect();
  const cs = quotePg(options.controlSchema);
  const windowsTable = new WindowsTable(options.controlSchema);
  const lockKey = exportLockKey(options.controlSchema, options.format.name);
  try {
    await migrateControl(control, options.controlSchema);
    const done = await withAdvisoryLock(control, lockKey, options.lock ?? 'wait', async () => {
      if (options.again) await exportAgain(options, options.again, control, windowsTable, summary, log);
      else await exportClosed(options, control, cs, windowsTable, summary, log);
      return true;
    });
    if (!done) summary.skipped = true;
  } finally {
    control.release();
    summary.seconds = (Date.now() - started) / 1000;
  }
  return summary;
}

/** Plans and exports the windows closed since the last export (under the export lock). */
async function exportClosed(
  options: ExportOptions,
  control: pg.ClientBase,
  cs: string,
  windowsTable: WindowsTable,
  summary: ExportSummary,
  log: Logger,
): Promise<void> {
  const exportedUpTo = await windowsTable.exportedUpTo(control, options.format.name);
  const source = await options.source.connect();
  let mark: Awaited<ReturnType<typeof readWatermark>>;
  let oldest: Date | undefined;
  try {
    mark = await readWatermark(source, options.settleMs, options.longTransactionMs);
    // the oldest change only matters before the first window: where history starts
    if (!exportedUpTo) oldest = await oldestChange(source, options);
  } finally {
    source.release();
  }
  summary.watermark = mark.watermark.toISOString();
  await noteLongTransactions(control, cs, mark.blockers, log, summary);

  // windows spanned by long transactions that have ended since: re-check them
  summary.revisions += await recheckAfterLongTransactions(
    options,
    control,
    cs,
    windowsTable,
    mark.blockers,
    log,
  );

  const cursor = exportedUpTo ?? initialCursor(oldest, mark.watermark, options.sizes);
  const windows = planWindows(cursor, mark.watermark, options.sizes, options.maxWindows);
  log.debug({ cursor, watermark: mark.watermark, windows: windows.length }, 'planned windows');

  for (const [index, window] of windows.entries()) {
    const result = await exportWindowRevisions(options, control, windowsTable, window, log);
    summary.windows++;
    summary.files += result.files - result.alreadyStaged;
    summary.filesAlreadyStaged += result.alreadyStaged;
    summary.rows += result.rows;
    summary.bytes += result.bytes;
    if (result.manifest.window.revision > 0) summary.revisions++;
    options.onProgress?.({ window, index: index + 1, total: windows.length, rows: summary.rows });
  }
}

/**
 * Exports committed windows again, each as the revision after its newest one: new keys, so the files of the
 * earlier revisions stay as they are; the loaders then load the new revision (it replaces the earlier ones).
 */
async function exportAgain(
  options: ExportOptions,
  again: ReExport,
  control: pg.ClientBase,
  windowsTable: WindowsTable,
  summary: ExportSummary,
  log: Logger,
): Promise<void> {
  const asked = (again.windowIds ?? []).map(parseWindowId);
  const windows = await windowsTable.latestRevisions(control, options.format.name, {
    ...(asked.length > 0 ? { spans: asked } : {}),
    ...(again.from ? { endsAfter: again.from } : {}),
    ...(again.to ? { startsBefore: again.to } : {}),
  });
  const missing = asked.filter(
    (a) =>
      !windows.some((w) => w.start.getTime() === a.start.getTime() && w.end.getTime() === a.end.getTime()),
  );
  if (missing.length > 0) {
    throw new UsageError(
      `window ${missing.map((w) => w.id).join(', ')} was never exported (or was pruned)`,
      'only committed windows can be exported again; see the control table windows',
    );
  }
  if (windows.length === 0) throw new UsageError('no exported window in that range');
  for (const [index, w] of windows.entries()) {
    const next = makeWindow(w.start, w.end, w.revision + 1);
    log.info({ window: w.id, revision: next.revision }, `exporting window ${w.id} again as ${next.id}`);
    const result = await exportWindowRevisions(options, control, windowsTable, next, log);
    summary.windows++;
    summary.revisions++;
    summary.files += result.files - result.alreadyStaged;
    summary.filesAlreadyStaged += result.alreadyStaged;
    summary.rows += result.rows;
    summary.bytes += result.bytes;
    options.onProgress?.({ window: next, index: index + 1, total: windows.length, rows: summary.rows });
  }
}

async function oldestChange(source: pg.ClientBase, options: ExportOptions): Promise<Date | undefined> {
  let oldest: Date | undefined;
  for (const stream of options.catalog.streams) {
    try {
      const r = await source.query<{ m: Date | null }>(
        `select min(${quotePg(stream.changeColumn)}) as m from ${quotePg(options.sourceSchema)}.${quotePg(stream.name)}`,
      );
      const m = r.rows[0]?.m;
      if (m && (!oldest || m < oldest)) oldest = m;
    } catch (error) {
      throw sourceError(error, stream, options);
    }
  }
  return oldest;
}

function sourceError(error: unknown, stream: Stream, options: ExportOptions): WharfError {
  const code = (error as { code?: string }).code;
  if (code === '42P01' || code === '3F000') {
    return new WharfError(`source table ${options.sourceSchema}.${stream.name} does not exist`, {
      context: { stream: stream.name },
      cause: error,
      hint: 'run `wharf source init` or point --source-url / --source-schema at the platform database',
    });
  }
  return withContext(asConnectionLoss(error, 'source'), { stream: stream.name });
}

async function noteLongTransactions(
  control: pg.ClientBase,
  cs: string,
  blockers: readonly Blocker[],
  log: Logger,
  summary: ExportSummary,
): Promise<void> {
  for (const b of blockers.filter((x) => x.overLimit)) {
    summary.longTransactions.push({ pid: b.pid, xactStart: b.xactStart.toISOString() });
    log.warn(
      { pid: b.pid, xactStart: b.xactStart, state: b.state, application: b.applicationName },
      `transaction of pid ${b.pid} open since ${b.xactStart.toISOString()} is older than the limit: windows after its start are closed anyway and will be re-checked when it ends`,
    );
    await control.query(
      `insert into ${cs}.long_transactions (pid, xact_start) values ($1, $2) on conflict do nothing`,
      [b.pid, b.xactStart],
    );
  }
}

/**
 * For long transactions seen earlier that have ended, compares each window they spanned with the source
 * again; a window whose content changed is exported as a new revision.
 */
async function recheckAfterLongTransactions(
  options: ExportOptions,
  control: pg.ClientBase,
  cs: string,
  windowsTable: WindowsTable,
  blockers: readonly Blocker[],
  log: Logger,
): Promise<number> {
  const pending = await control.query<{ pid: number; xact_start: Date }>(
    `select pid, xact_start from ${cs}.long_transactions where rechecked_at is null`,
  );
  let revisions = 0;
  for (const lt of pending.rows) {
    const running = blockers.some(
      (b) => b.pid === lt.pid && b.xactStart.getTime() === lt.xact_start.getTime(),
    );
    if (running) continue;
    const spanned = await windowsTable.latestRevisionsEndingAfter(
      control,
      options.format.name,
      lt.xact_start,
    );
    for (const w of spanned) {
      const window = makeWindow(w.start, w.end, w.revision);
      const stored = await readManifest(options.store, manifestKey(options.format, window));
      const now = await checksumWindow(options, window);
      const changed = options.catalog.streams.some(
        (s) => (stored.streams[s.name]?.checksum ?? '0:0000000000000000') !== now[s.name],
      );
      if (changed) {
        const next = makeWindow(w.start, w.end, w.revision + 1);
        log.warn(
          { window: window.id, revision: next.revision },
          'window changed after a long transaction ended: exporting a new revision',
        );
        await exportWindowRevisions(options, control, windowsTable, next, log);
        revisions++;
      }
    }
    await control.query(
      `update ${cs}.long_transactions set ended_seen = coalesce(ended_seen, now()), rechecked_at = now() where pid = $1 and xact_start = $2`,
      [lt.pid, lt.xact_start],
    );
  }
  return revisions;
}

/** Exports a window; when staged files of it differ from the source now, moves on to the next revision. */
async function exportWindowRevisions(
  options: ExportOptions,
  control: pg.ClientBase,
  windowsTable: WindowsTable,
  window: TimeWindow,
  log: Logger,
): Promise<WindowResult> {
  let current = window;
  for (;;) {
    try {
      const result = await exportWindow(options, current, log);
      await windowsTable.record(control, options.format.name, {
        ...current,
        manifestKey: result.manifestKey,
        files: result.files,
        rows: result.rows,
        bytes: result.bytes,
      });
      log.info(
        { window: current.id, rows: result.rows, files: result.files, bytes: result.bytes },
        `exported window ${current.id}`,
      );
      return result;
    } catch (error) {
      if (!(error instanceof ContentChanged)) throw withContext(error, { window: current.id });
      log.warn(
        { window: current.id },
        `staged files of window ${current.id} differ from the source now: ${error.message}`,
      );
      current = makeWindow(current.start, current.end, current.revision + 1);
    }
  }
}

/** Per stream checksums of a window as the source holds it now (no files written). */
async function checksumWindow(options: ExportOptions, window: TimeWindow): Promise<Record<string, string>> {
  const client = await options.source.connect();
  const out: Record<string, string> = {};
  try {
    await beginSnapshot(client);
    for (const stream of options.catalog.streams) {
      const sum = new StreamChecksum(stream);
      const copy = client.query(
        copyTo(copySql(stream, options.format, options.sourceSchema, window.start, window.end)),
      );
      for await (const { bytes, start, ends, count } of readCopyBatches(copy)) {
        let s = start;
        for (let i = 0; i < count; i++) {
          sum.addRange(bytes, s, ends[i]!);
          s = ends[i]!;
        }
      }
      out[stream.name] = sum.toString();
    }
    await client.query('commit');
  } finally {
    client.release();
  }
  return out;
}

/** Exports one window revision. Throws ContentChanged if staged objects of it differ. */
async function exportWindow(options: ExportOptions, window: TimeWindow, log: Logger): Promise<WindowResult> {
  const spoolDir = options.spoolDir ?? join(tmpdir(), 'wharf-spool');
  const limit = pLimit(options.uploadConcurrency ?? 4);
  const publishing: Promise<void>[] = [];
  let alreadyStaged = 0;

  const publish = (key: string, spooled: SpooledFile) => {
    publishing.push(
      limit(async () => {
        try {
          const staged = await putOnce(options.store, key, spooled);
          if (staged) alreadyStaged++;
          options.onStep?.('file');
        } finally {
          await rm(spooled.path, { force: true });
        }
      }),
    );
  };

  const read = new Map<string, StreamObject>();
  const client = await options.source.connect();
  let readers: pg.PoolClient[] = [];
  let failed = false;
  try {
    await beginSnapshot(client);
    const accounts = new Map<string, number>();
    for (const stream of options.catalog.streams) {
      accounts.set(stream.name, await countStreamAccounts(options, client, stream, window));
    }
    const withRows = options.catalog.streams.filter((s) => accounts.get(s.name)! > 0);
    // streams side by side, each on a connection in the same snapshot, when there are several to read
    readers = await joinSnapshot(
      options.source,
      client,
      Math.min(options.readConcurrency ?? 2, withRows.length) - 1,
    );
    let next = 0;
    const readAll = async (reader: pg.ClientBase): Promise<void> => {
      while (!failed && next < withRows.length) {
        const stream = withRows[next++]!;
        const object = await readStream(
          options,
          reader,
          stream,
          window,
          spoolDir,
          accounts.get(stream.name)!,
        );
        read.set(stream.name, object);
        if (object.spooled) publish(objectKey(options.format, window, stream), object.spooled);
      }
    };
    const results = await Promise.allSettled(
      [client, ...readers].map((reader) =>
        readAll(reader).catch((error: unknown) => {
          failed = true;
          throw error;
        }),
      ),
    );
    const rejected = results.find((r) => r.status === 'rejected');
    if (rejected) throw rejected.reason;
    await client.query('commit');
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    await endReaders(readers, failed);
    client.release(failed);
    await Promise.allSettled(publishing);
  }
  for (const p of publishing) await p; // surface the first publishing error

  const streams: WindowManifest['streams'] = {};
  const objects: ManifestObject[] = [];
  const files: ManifestFile[] = [];
  let rows = 0;
  let bytes = 0;
  for (const stream of options.catalog.streams) {
    const object = read.get(stream.name);
    streams[stream.name] = {
      rows: object?.rows ?? 0,
      checksum: object?.checksum ?? new StreamChecksum(stream).toString(),
      columns: stream.columns.map((c) => c.name),
    };
    if (object?.spooled === undefined) continue;
    const key = objectKey(options.format, window, stream);
    rows += object.rows;
    bytes += object.spooled.bytes;
    objects.push({
      key,
      stream: stream.name,
      rows: object.rows,
      bytes: object.spooled.bytes,
      sha256: object.spooled.sha256,
    });
    for (const part of object.parts) {
      files.push({
        key,
        stream: stream.name,
        account: part.account,
        rows: part.rows,
        bytes: part.bytes,
        sha256: part.sha256,
        offset: part.offset,
      });
    }
  }

  const manifest: WindowManifest = {
    manifest_version: MANIFEST_FORMAT_VERSION,
    catalog: options.catalog.name,
    catalog_version: options.catalog.version,
    format: options.format.name,
    window: {
      id: window.id,
      start: window.start.toISOString(),
      end: window.end.toISOString(),
      revision: window.revision,
    },
    streams,
    objects,
    files,
  };
  const key = manifestKey(options.format, window);
  options.onStep?.('manifest');
  const text = serializeManifest(manifest);
  const spool = openSpool(spoolDir);
  spool.out.end(text);
  const spooled = await spool.done;
  try {
    await putOnce(options.store, key, spooled);
  } finally {
    await rm(spooled.path, { force: true });
  }
  log.debug(
    { window: window.id, objects: objects.length, parts: files.length, readers: 1 + readers.length },
    'manifest written',
  );
  return { manifest, manifestKey: key, rows, bytes, files: objects.length, alreadyStaged };
}

/** The accounts with rows of `stream` in the window (what decides its read order). */
async function countStreamAccounts(
  options: ExportOptions,
  client: pg.ClientBase,
  stream: Stream,
  window: TimeWindow,
): Promise<number> {
  try {
    return await countAccounts(client, stream, options.sourceSchema, window.start, window.end);
  } catch (error) {
    throw sourceError(error, stream, options);
  }
}

/**
 * Reads one stream of a window (with rows of `accounts` accounts) into one object: in table order when they are
 * few (no sort in the source), in account order otherwise.
 */
async function readStream(
  options: ExportOptions,
  client: pg.ClientBase,
  stream: Stream,
  window: TimeWindow,
  spoolDir: string,
  accounts: number,
): Promise<StreamObject> {
  try {
    const order = readOrderFor(accounts);
    const read = async () => {
      const sql = copySql(stream, options.format, options.sourceSchema, window.start, window.end, order);
      const copy = client.query(copyTo(sql)) as unknown as AsyncIterable<Buffer>;
      return writeStreamObject(copy, { stream, format: options.format, order, spoolDir });
    };
    return await (order === 'table' ? inTableOrder(client, read) : read());
  } catch (error) {
    throw sourceError(error, stream, options);
  }
}

/**
 * Publishes a spooled file under `key` once. Returns true when the key already held the same bytes
 * (a torn export being completed); throws ContentChanged when it holds different bytes.
 */
async function putOnce(store: StagingStore, key: string, spooled: SpooledFile): Promise<boolean> {
  try {
    await store.putFile(key, spooled.path, { sha256: spooled.sha256 });
    return false;
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw withContext(error, { key });
  }
  const existing = await store.stat(key);
  if (existing && existing.bytes !== spooled.bytes) throw new ContentChanged(`${key} has other bytes`);
  if (existing?.sha256 && existing.sha256 !== spooled.sha256)
    throw new ContentChanged(`${key} has other bytes`);
  try {
    const stream = await store.get(key, { sha256: spooled.sha256 });
    for await (const _ of stream) {
      // drain: the stream verifies the sha256 at its end
    }
  } catch (error) {
    if (error instanceof IntegrityError) throw new ContentChanged(`${key} has other bytes`);
    throw error;
  }
  return true;
}
