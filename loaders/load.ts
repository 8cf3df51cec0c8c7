import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type pg from 'pg';
import type { Catalog, Stream } from '../catalog/types.js';
import { type CommittedWindow, WindowsTable } from '../control/windows.js';
import { hasCode, IntegrityError, WharfError, withContext } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { readManifest, type WindowManifest } from '../staging/manifest.js';
import { type StagedPart, stagedParts } from '../staging/staged-part.js';
import type { StagingStore } from '../staging/staging-store.js';
import type { LedgerRow, Warehouse, WindowFile } from './warehouse.js';

/** Which account, which streams, into which warehouse. */
export interface LoadTarget {
  readonly connectorId: string;
  readonly account: string;
  readonly streams: readonly string[];
}

export interface LoadOptions {
  readonly control: pg.Pool;
  readonly controlSchema: string;
  readonly store: StagingStore;
  readonly catalog: Catalog;
  readonly target: LoadTarget;
  readonly warehouse: Warehouse;
  /** Replay: reload every window in [from, to) from its files, whether loaded or not. */
  readonly replay?: { readonly from?: Date; readonly to?: Date };
  /**
   * Only windows committed after this `seq` can be pending: every window up to it is known to be in the ledger
   * (the connector's progress). Default: every committed window is checked against the ledger.
   */
  readonly afterSeq?: number;
  /** Migrate the warehouse schema first (default true; skipped when the schema is known to be current). */
  readonly migrate?: boolean;
  /** A transaction holds consecutive windows up to this many rows (default 2,000,000). */
  readonly rowBudget?: number;
  /** …and at most this many windows (default 1,000). */
  readonly maxWindowsPerTransaction?: number;
  readonly logger?: Logger;
  readonly onProgress?: (event: LoadProgress) => void;
  /** Called between steps; tests use it to stop the process at a chosen point. */
  readonly onStep?: (step: string) => void;
  /**
   * Stops the load: no transaction starts once it aborts (the summary says what was committed, and its `seenSeq`
   * stops before the windows left); a transaction that the warehouse ends because of it fails as a
   * `loadStopped` error (rolled back). One that fails for want of later windows is not widened (windows left).
   */
  readonly signal?: AbortSignal;
}

/** The code of the error a load ends with when its signal aborted it (nothing of its transaction committed). */
export const LOAD_STOPPED = 'WHARF_STOPPED';

/** The load was stopped (the process is shutting down) before it committed: rolled back, loaded by the next run. */
export function loadStopped(connectorId: string, cause?: unknown): WharfError {
  return new WharfError('load stopped before commit because the process is stopping; rolled back', {
    kind: 'transient',
    code: LOAD_STOPPED,
    context: { connector: connectorId },
    ...(cause === undefined ? {} : { cause }),
    hint: 'nothing of it was committed; the next run loads these windows',
  });
}

export interface LoadProgress {
  readonly windowsDone: number;
  readonly windowsTotal: number;
  readonly rows: number;
}

export interface LoadSummary {
  connector: string;
  windows: number;
  transactions: number;
  rowsStaged: number;
  rowsMerged: number;
  quarantined: number;
  seconds: number;
  lastWindow: string | null;
  /** The end of the last window loaded by this run, or null. */
  lastWindowEnd: Date | null;
  /** The newest committed window (by `seq`) this run considered: all of them are loaded when it succeeds. */
  seenSeq: number;
}

interface PlannedWindow {
  readonly window: CommittedWindow;
  readonly streams: readonly string[];
  readonly manifest: WindowManifest;
}

/**
 * Loads every committed window the connector's ledger lacks, in window order: per transaction a run of
 * consecutive windows; per stream (parents first) stage the account's files, merge, then the ledger
 * rows, then commit. A failure rolls the whole transaction back.
 */
export async function loadConnector(options: LoadOptions): Promise<LoadSummary> {
  const started = Date.now();
  const log = options.logger ?? silentLogger();
  const { target, catalog } = options;
  const ctx = { connector: target.connectorId };
  const summary: LoadSummary = {
    connector: target.connectorId,
    windows: 0,
    transactions: 0,
    rowsStaged: 0,
    rowsMerged: 0,
    quarantined: 0,
    seconds: 0,
    lastWindow: null,
    lastWindowEnd: null,
    seenSeq: 0,
  };
  const streams = catalog.streams.filter((s) => target.streams.includes(s.name));
  // stopping already: nothing is started (and nothing is said to be seen)
  if (options.signal?.aborted) return summary;
  if (options.migrate ?? true) await options.warehouse.migrate(catalog, target.streams);
  options.onStep?.('migrated');

  const committed = await committedWindows(options);
  summary.seenSeq = committed.reduce((m, w) => Math.max(m, w.seq), options.afterSeq ?? 0);
  const loaded = options.replay
    ? new Map<string, Set<string>>()
    : await options.warehouse.loaded(committed.map((w) => w.id));
  const pending = committed
    .map((w) => ({
      window: w,
      streams: streams.filter((s) => !loaded.get(s.name)?.has(w.id)).map((s) => s.name),
    }))
    .filter((p) => p.streams.length > 0);
  log.debug({ ...ctx, committed: committed.length, pending: pending.length }, 'windows to load');

  const budget = options.rowBudget ?? 2_000_000;
  const maxWindows = options.maxWindowsPerTransaction ?? 1000;
  let index = 0;
  batches: while (index < pending.length && !options.signal?.aborted) {
    const first = index;
    const batch: PlannedWindow[] = [];
    let rows = 0;
    while (index < pending.length && batch.length < maxWindows) {
      const next = pending[index]!;
      if (batch.length > 0 && rows + next.window.rows > budget) break;
      const manifest = await readChecked(options, next.window);
      batch.push({ ...next, manifest });
      rows += next.window.rows;
      index++;
    }
    let result: Awaited<ReturnType<typeof loadBatch>>;
    for (;;) {
      try {
        result = await loadBatch(options, streams, batch, log);
        break;
      } catch (error) {
        const parents = isForeignKeyError(error);
        if (options.signal?.aborted) {
          // the stop ended the transaction; or it needs later windows, which a stopping load does not take on
          if (!parents) throw loadStopped(target.connectorId, error);
          index = first;
          break batches;
        }
        // a row whose parent was updated later sits in a later window: take more windows into the transaction
        if (!parents) throw error;
        if (index >= pending.length) {
          throw new WharfError('rows reference parent rows that are in a window not exported yet', {
            kind: 'transient',
            context: { ...ctx, window: batch[0]!.window.id },
            cause: error,
            hint: 'the next run loads them together; if it persists, replay from an earlier window',
          });
        }
        const grow = Math.max(batch.length, 1);
        log.debug(
          { ...ctx, windows: batch.length + grow },
          'parent rows are in later windows: widening the transaction',
        );
        for (let i = 0; i < grow && index < pending.length; i++, index++) {
          const next = pending[index]!;
          batch.push({ ...next, manifest: await readChecked(options, next.window) });
        }
      }
    }
    summary.transactions++;
    summary.windows += batch.length;
    summary.rowsStaged += result.staged;
    summary.rowsMerged += result.merged;
    summary.quarantined += result.quarantined;
    summary.lastWindow = batch[batch.length - 1]!.window.id;
    summary.lastWindowEnd = batch[batch.length - 1]!.window.end;
    options.onProgress?.({ windowsDone: index, windowsTotal: pending.length, rows: summary.rowsStaged });
  }
  if (index < pending.length) {
    // stopped between two transactions: what is committed stays; `seenSeq` must not cover the windows left
    const left = pending.slice(index);
    summary.seenSeq = left.reduce((m, w) => Math.min(m, w.window.seq - 1), summary.seenSeq);
    log.info(
      { ...ctx, windowsLeft: left.length },
      `connector ${target.connectorId}: stopping; ${left.length} window(s) left for the next run`,
    );
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

/**
 * The committed windows the load considers, in commit order (a replay: those of its range). A revision that a
 * newer revision of the same window replaces is left out: the newer one holds every row of the window as the
 * source had it later, and a row changed since is in a later window (so a window re-exported because its files
 * were lost loads from the new files).
 */
async function committedWindows(options: LoadOptions): Promise<CommittedWindow[]> {
  const { from, to } = options.replay ?? {};
  const format = options.warehouse.dialect.capabilities.preferredFormat;
  const all = await new WindowsTable(options.controlSchema).committed(options.control, format, {
    ...(from ? { endsAfter: from } : {}),
    ...(to ? { startsBefore: to } : {}),
    ...(!options.replay && options.afterSeq ? { afterSeq: options.afterSeq } : {}),
  });
  const newest = new Map<string, number>();
  const span = (w: CommittedWindow) => `${w.start.getTime()}:${w.end.getTime()}`;
  for (const w of all) newest.set(span(w), Math.max(newest.get(span(w)) ?? 0, w.revision));
  return all.filter((w) => w.revision === newest.get(span(w)));
}

/**
 * A staged file or manifest that is gone or damaged: the hint names the command that exports the window again
 * (as a new revision, which the next load reads instead).
 */
function withRestageHint<E>(error: E, windowId: string): E {
  if (!(error instanceof WharfError)) return error;
  if (!(error instanceof IntegrityError || hasCode(error, 'NoSuchKey') || hasCode(error, 'ENOENT'))) {
    return error;
  }
  const window =
    error.context.window && !error.context.window.includes('..') ? error.context.window : windowId;
  Object.defineProperty(error, 'hint', {
    value: `export the window again as a new revision: wharf export --window ${window} (the next load reads it)`,
    configurable: true,
  });
  return error;
}

async function readChecked(options: LoadOptions, window: CommittedWindow): Promise<WindowManifest> {
  const ctx = { connector: options.target.connectorId, window: window.id };
  let manifest: WindowManifest;
  try {
    manifest = await readManifest(options.store, window.manifestKey);
  } catch (error) {
    throw withRestageHint(withContext(error, ctx), window.id);
  }
  if (manifest.catalog !== options.catalog.name || manifest.catalog_version > options.catalog.version) {
    throw new WharfError(
      `manifest is from catalog ${manifest.catalog} version ${manifest.catalog_version}, which this Wharf does not know (it has ${options.catalog.name} version ${options.catalog.version})`,
      { context: ctx, hint: 'upgrade Wharf to the version that exported this window' },
    );
  }
  const reads = options.warehouse.dialect.capabilities.preferredFormat;
  if (manifest.format !== reads) {
    throw new WharfError(`window is staged as ${manifest.format}; this warehouse loads ${reads}`, {
      context: ctx,
    });
  }
  return manifest;
}

function isForeignKeyError(error: unknown): boolean {
  return hasCode(error, '23503');
}

/** A part whose first bytes read call `onStep('copy:<stream>')` (crash tests stop there). */
function announceCopy(part: StagedPart, onStep: (step: string) => void): StagedPart {
  return {
    ...part,
    open: async () => {
      let first = true;
      return (await part.open()).pipe(
        new Transform({
          transform(chunk, _enc, cb) {
            if (first) {
              first = false;
              onStep(`copy:${part.stream}`);
            }
            cb(null, chunk);
          },
        }),
      );
    },
  };
}

function ledgerSha(files: readonly { sha256: string }[]): string {
  const h = createHash('sha256');
  for (const s of files.map((f) => f.sha256).sort()) h.update(s);
  return h.digest('hex');
}

async function loadBatch(
  options: LoadOptions,
  streams: readonly Stream[],
  batch: readonly PlannedWindow[],
  log: Logger,
): Promise<{ staged: number; merged: number; quarantined: number }> {
  const { target, store } = options;
  const first = batch[0]!.window.id;
  const last = batch[batch.length - 1]!.window.id;
  const windowLabel = first === last ? first : `${first}..${last}`;
  const tx = await options.warehouse.begin();
  let staged = 0;
  let merged = 0;
  let quarantined = 0;
  let current: string | undefined;
  try {
    options.onStep?.('begun');
    const ledger: LedgerRow[] = [];
    for (const stream of streams) {
      current = stream.name;
      const files: WindowFile[] = [];
      for (const planned of batch) {
        if (!planned.streams.includes(stream.name)) continue;
        const mine = stagedParts(store, planned.window.id, planned.manifest, stream, target.account);
        for (const part of mine) files.push(options.onStep ? announceCopy(part, options.onStep) : part);
        ledger.push({
          windowId: planned.window.id,
          stream: stream.name,
          rows: mine.reduce((n, f) => n + f.rows, 0),
          sha256: ledgerSha(mine),
          files: mine.length,
          windowStart: planned.window.start,
          windowEnd: planned.window.end,
        });
      }
      if (files.length === 0) continue;
      options.onStep?.(`stage:${stream.name}`);
      const result = await tx.stage(stream, files);
      staged += result.rows;
      quarantined += result.quarantined;
      options.onStep?.(`merge:${stream.name}`);
      merged += await tx.merge(stream);
    }
    current = undefined;
    options.onStep?.('ledger');
    await tx.record(ledger);
    options.onStep?.('commit');
    await tx.commit();
    options.onStep?.('committed');
  } catch (error) {
    await tx.rollback();
    const e = withContext(error, {
      connector: target.connectorId,
      window: windowLabel,
      ...(current ? { stream: current } : {}),
    });
    if (isForeignKeyError(error)) {
      throw new WharfError(`a row references a parent that is not in the warehouse: ${e.message}`, {
        context: e.context,
        cause: error,
        hint: 'load the parent stream too (add it with --streams) or replay from an earlier window',
      });
    }
    throw withRestageHint(e, first);
  }
  log.info(
    { connector: target.connectorId, window: windowLabel, windows: batch.length, staged, merged },
    `loaded ${batch.length} window(s) into connector ${target.connectorId}`,
  );
  return { staged, merged, quarantined };
}
