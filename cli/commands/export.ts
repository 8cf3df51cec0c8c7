import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { BusyError, UsageError } from '../../core/errors.js';
import type { ExportSummary, ReExport } from '../../exporter/export.js';
import { exportLockHolder, runExportJob } from '../../pipeline/export-job.js';
import { formatBytes, formatCount, printResult, progressBar } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

interface ExportArgs extends GlobalArgs {
  format?: 'csv' | 'parquet' | 'json';
  maxWindows?: number;
  from?: string;
  to?: string;
  wait: boolean;
  /** A window id given to `--window` (set by the handler: `--window` is otherwise the window size). */
  again?: string;
}

/** A window id (`20261123T092000Z_20261123T092100Z`, `…_r1`), as opposed to a window size (`1m`). */
const WINDOW_ID = /^\d{8}T\d{6}Z_\d{8}T\d{6}Z(?:_r\d+)?$/;

export function exportLines(s: ExportSummary): string[] {
  if (s.skipped) return ['another export is running; nothing done'];
  const lines = [
    `exported ${formatCount(s.windows)} window(s): ${formatCount(s.files)} file(s), ${formatCount(s.rows)} rows, ${formatBytes(s.bytes)} in ${s.seconds.toFixed(1)} s`,
  ];
  if (s.filesAlreadyStaged > 0)
    lines.push(`${s.filesAlreadyStaged} file(s) were already staged (an interrupted export completed)`);
  if (s.revisions > 0) lines.push(`${s.revisions} window(s) exported as a new revision`);
  for (const lt of s.longTransactions) {
    lines.push(
      `warning: transaction of pid ${lt.pid} open since ${lt.xactStart} is past the limit; its windows will be re-checked when it ends`,
    );
  }
  if (s.watermark) lines.push(`windows are closed up to ${s.watermark}`);
  return lines;
}

function parseTime(text: string | undefined, flag: string): Date | undefined {
  if (text === undefined) return undefined;
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) {
    throw new UsageError(`invalid ${flag} "${text}"`, 'use an ISO time, e.g. 2026-11-23T09:00:00Z');
  }
  return d;
}

/** `--window ID` or `--from` / `--to`: the committed windows to export again, or undefined for a normal export. */
function reExport(args: ExportArgs): ReExport | undefined {
  const from = parseTime(args.from, '--from');
  const to = parseTime(args.to, '--to');
  if (!args.again && !from && !to) return undefined;
  if (args.again && (from || to)) throw new UsageError('give --window ID or --from/--to, not both');
  return {
    ...(args.again ? { windowIds: [args.again] } : {}),
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
  };
}

const exportHandler = withRuntime<ExportArgs>(async (rt, args) => {
  const again = reExport(args);
  const bar = progressBar('export', !rt.settings.json);
  try {
    const summary = await runExportJob(rt, {
      ...(args.maxWindows ? { maxWindows: args.maxWindows } : {}),
      ...(args.format ? { format: args.format } : {}),
      ...(again ? { again } : {}),
      lock: args.wait ? 'wait' : 'skip',
      onProgress: (e) => bar.update(e.index, e.total, `${e.window.id} ${formatCount(e.rows)} rows`),
    });
    bar.stop();
    printResult(rt.settings.json, summary, () => exportLines(summary));
    if (summary.skipped) {
      throw new BusyError(
        `nothing exported: ${await exportLockHolder(rt)} holds the export lock`,
        'it is exporting now; run the command again once it is done (or without --no-wait to wait for it)',
      );
    }
  } finally {
    bar.stop();
  }
});

export const exportCommand: CommandModule<GlobalArgs, ExportArgs> = {
  command: 'export',
  describe:
    'Export every closed window of the source to staging (immutable files + manifest); --window ID or --from/--to exports committed windows again as new revisions',
  builder: (y) =>
    y
      .option('format', {
        choices: ['csv', 'parquet', 'json'] as const,
        describe: 'staging format (csv, the one connectors read)',
      })
      .option('max-windows', {
        type: 'number',
        describe: 'export at most this many windows now',
      })
      .option('from', {
        type: 'string',
        describe: 'export the committed windows ending after this ISO time again, as new revisions',
      })
      .option('to', {
        type: 'string',
        describe: 'export the committed windows starting before this ISO time again, as new revisions',
      })
      .option('wait', {
        type: 'boolean',
        default: true,
        describe: 'wait for another export to finish (--no-wait: skip, exit 3)',
      }) as unknown as Argv<ExportArgs>,
  // `--window ID` (a window id, not a size): that window is exported again
  handler: (args: ArgumentsCamelCase<ExportArgs>) => {
    if (typeof args.window === 'string' && WINDOW_ID.test(args.window.trim())) {
      const { window, ...rest } = args;
      return exportHandler({ ...rest, again: window.trim() } as ArgumentsCamelCase<ExportArgs>);
    }
    return exportHandler(args);
  },
};
