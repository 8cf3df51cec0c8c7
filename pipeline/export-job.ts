import { recordRun } from '../control/runs.js';
import { oneLine, UsageError, WharfError } from '../core/errors.js';
import { advisoryLockHolder, describeHolder } from '../db/postgres/locks.js';
import {
  type ExportProgress,
  type ExportSummary,
  exportLockKey,
  exportWindows,
  type ReExport,
} from '../exporter/export.js';
import { formatByName } from '../exporter/writers/formats.js';
import { STAGING_FORMAT } from '../staging/manifest.js';
import { checkStagingStore } from '../staging/open-store.js';
import { recordSafely } from './run-record.js';
import type { Runtime } from './runtime.js';

export interface ExportJobOptions {
  /** `wait` (one-shot commands, the default) blocks until another export is done; `skip` returns at once. */
  readonly lock?: 'wait' | 'skip';
  readonly maxWindows?: number;
  /** A format asked for by name (`--format`, `format:` in wharf.yaml): refused unless a connector reads it. */
  readonly format?: 'csv' | 'parquet' | 'json';
  readonly onProgress?: (event: ExportProgress) => void;
  /** Export these committed windows again as new revisions (`wharf export --window ID`, `--from/--to`). */
  readonly again?: ReExport;
}

/**
 * The staging format the exporter writes: the one every connector reads (warehouses COPY it, bucket delivery
 * converts it to the customer's format). Asking for another is a usage error, never a silent export nobody loads.
 */
export function exportFormat(asked: string | undefined): string {
  if (asked === undefined || asked === STAGING_FORMAT) return STAGING_FORMAT;
  throw new UsageError(
    `no connector reads ${asked} staging: warehouse and bucket connectors read ${STAGING_FORMAT}`,
    `remove the format setting (--format / format: in wharf.yaml); a bucket connector delivers ${asked} with \`connectors add --engine bucket --format ${asked}\``,
  );
}

/**
 * The export job: every closed window not yet exported, to staging (staging checked first, so a wrong bucket or
 * folder is reported before the source is touched). Records the run in the control `runs` table when it
 * exported something, was skipped or failed.
 */
export async function runExportJob(rt: Runtime, options: ExportJobOptions = {}): Promise<ExportSummary> {
  const format = exportFormat(options.format ?? rt.settings.format);
  const d = rt.durations;
  const startedAt = new Date();
  // staging first: a wrong bucket or folder is reported before the source is touched
  await checkStagingStore(rt.store());
  const control = await rt.control();
  try {
    const summary = await exportWindows({
      source: await rt.source(),
      control,
      controlSchema: rt.settings.controlSchema,
      sourceSchema: rt.settings.sourceSchema,
      store: rt.store(),
      catalog: rt.catalog,
      format: formatByName(format as 'csv'),
      sizes: { fineMs: d.windowMs, coarseMs: d.historyMs },
      settleMs: d.settleMs,
      longTransactionMs: d.longTransactionMs,
      spoolDir: rt.spoolDir(),
      logger: rt.logger,
      lock: options.lock ?? 'wait',
      ...(options.maxWindows ? { maxWindows: options.maxWindows } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.again ? { again: options.again } : {}),
    });
    if (!summary.skipped) {
      rt.metrics.windowsExported.inc(summary.windows);
      rt.metrics.rowsExported.inc(summary.rows);
    }
    if (summary.skipped || summary.windows > 0) {
      await recordSafely(rt, () =>
        recordRun(control, rt.settings.controlSchema, {
          connectorId: null,
          kind: 'export',
          startedAt,
          finishedAt: new Date(),
          status: summary.skipped ? 'skipped' : 'ok',
          windows: summary.windows,
          rows: summary.rows,
        }),
      );
    }
    return summary;
  } catch (error) {
    if (!(error instanceof WharfError && error.kind === 'usage')) {
      await recordSafely(rt, () =>
        recordRun(control, rt.settings.controlSchema, {
          connectorId: null,
          kind: 'export',
          startedAt,
          finishedAt: new Date(),
          status: 'failed',
          windows: 0,
          rows: 0,
          error: oneLine(error),
        }),
      );
    }
    throw error;
  }
}

/** Which process holds the export lock now, in words (for the line that reports a skipped export). */
export async function exportLockHolder(rt: Runtime): Promise<string> {
  const key = exportLockKey(rt.settings.controlSchema, STAGING_FORMAT);
  return advisoryLockHolder(await rt.control(), key).then(describeHolder, () => describeHolder(undefined));
}
