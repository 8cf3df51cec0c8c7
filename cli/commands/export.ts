import type { Argv, CommandModule } from 'yargs';
import type { ExportSummary } from '../../exporter/export.js';
import { runExportJob } from '../../pipeline/export-job.js';
import { formatBytes, formatCount, printResult, progressBar } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

interface ExportArgs extends GlobalArgs {
  format?: 'csv' | 'parquet' | 'json';
  maxWindows?: number;
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
        describe: 'staging format (csv, the one connectors read)',
      })
      .option('max-windows', {
        type: 'number',
        describe: 'export at most this many windows now',
      }) as Argv<ExportArgs>,
  handler: withRuntime<ExportArgs>(async (rt, args) => {
    const bar = progressBar('export', !rt.settings.json);
    try {
      const summary = await runExportJob(rt, {
        ...(args.maxWindows ? { maxWindows: args.maxWindows } : {}),
        ...(args.format ? { format: args.format } : {}),
        onProgress: (e) => bar.update(e.index, e.total, `${e.window.id} ${formatCount(e.rows)} rows`),
      });
      bar.stop();
      printResult(rt.settings.json, summary, () => exportLines(summary));
    } finally {
      bar.stop();
    }
  }),
};
