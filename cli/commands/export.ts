import type { Argv, CommandModule } from 'yargs';
import { type ExportSummary, exportWindows } from '../../exporter/export.js';
import { formatByName } from '../../exporter/writers/formats.js';
import { checkStagingStore } from '../../staging/open-store.js';
import type { CommandContext } from '../context.js';
import { formatBytes, formatCount, printResult, progressBar } from '../output.js';
import { type GlobalArgs, withContext } from '../run-command.js';

interface ExportArgs extends GlobalArgs {
  format?: 'csv' | 'parquet' | 'json';
  maxWindows?: number;
}

/** Exports closed windows; shared by `export`, `sync` and `run`. */
export async function runExport(
  ctx: CommandContext,
  options: {
    lock?: 'wait' | 'skip';
    maxWindows?: number;
    format?: 'csv' | 'parquet' | 'json';
    progress?: boolean;
  } = {},
): Promise<ExportSummary> {
  const d = ctx.durations;
  // staging first: a wrong bucket or folder is reported before the source is touched
  await checkStagingStore(ctx.store());
  const bar = progressBar('export', options.progress ?? !ctx.settings.json);
  try {
    return await exportWindows({
      source: await ctx.source(),
      control: await ctx.control(),
      controlSchema: ctx.settings.controlSchema,
      sourceSchema: ctx.settings.sourceSchema,
      store: ctx.store(),
      catalog: ctx.catalog,
      format: formatByName(options.format ?? ctx.settings.format),
      sizes: { fineMs: d.windowMs, coarseMs: d.historyMs },
      settleMs: d.settleMs,
      longTransactionMs: d.longTransactionMs,
      spoolDir: ctx.spoolDir(),
      logger: ctx.logger,
      lock: options.lock ?? 'wait',
      ...(options.maxWindows ? { maxWindows: options.maxWindows } : {}),
      onProgress: (e) => bar.update(e.index, e.total, `${e.window.id} ${formatCount(e.rows)} rows`),
    });
  } finally {
    bar.stop();
  }
}

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

export const exportCommand: CommandModule<GlobalArgs, ExportArgs> = {
  command: 'export',
  describe: 'Export every closed window of the source to staging (immutable files + manifest)',
  builder: (y) =>
    y
      .option('format', {
        choices: ['csv', 'parquet', 'json'] as const,
        describe: 'file format (default csv)',
      })
      .option('max-windows', {
        type: 'number',
        describe: 'export at most this many windows now',
      }) as Argv<ExportArgs>,
  handler: withContext<ExportArgs>(async (ctx, args) => {
    const summary = await runExport(ctx, {
      ...(args.maxWindows ? { maxWindows: args.maxWindows } : {}),
      ...(args.format ? { format: args.format } : {}),
    });
    printResult(ctx.settings.json, summary, () => exportLines(summary));
  }),
};
