import type { CommandModule } from 'yargs';
import { statusReport } from '../../pipeline/status.js';
import type { SyncStatus } from '../../pipeline/sync-status.js';
import { formatBytes, formatCount, printResult } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

export const statusCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'status',
  describe: 'Per connector: state, last loaded window, lag, rows',
  handler: withRuntime(async (rt) => {
    const result = await statusReport(rt);
    const out = result.connectors;
    printResult(rt.settings.json, result, () => [
      `exported: ${formatCount(result.exportedWindows)} windows, up to ${result.exportedUpTo ?? 'nothing yet'}`,
      ...(out.length === 0 ? ['no connectors; add one with `wharf connectors add`'] : []),
      ...out.map(
        (s) =>
          `connector ${s.id} (account ${s.account}, ${s.engine}): ${s.state}${s.stateReason ? ` (${s.stateReason})` : ''}; ` +
          (s.error
            ? `cannot read its warehouse: ${s.error}`
            : `last window ${s.lastWindow ?? 'none'}, lag ${s.lagSeconds === null ? 'n/a' : `${s.lagSeconds} s`}, ${formatCount(s.rows)} rows loaded, ${s.windowsBehind ?? 0} window(s) behind`) +
          (s.delivery
            ? `; ${formatCount(s.delivery.deliveries)} deliveries, ${formatCount(s.delivery.objects)} objects, ${formatBytes(s.delivery.bytes)}, last ${s.delivery.lastDelivery ?? 'none'}`
            : '') +
          `; today: ${formatCount(s.rowsToday)} rows in ${formatCount(s.loadsToday)} load(s), ${formatCount(s.skipsToday)} skip(s), ${formatCount(s.failuresToday)} failure(s)` +
          (s.lastError ? `; last error at ${s.lastErrorAt}: ${s.lastError}` : ''),
      ),
      ...syncStatusLines(result.syncs),
    ]);
  }),
};

/** The reverse-ETL section: per sync, state, last run, last_sync_time, today's rows, calls and rejections, last error. */
function syncStatusLines(syncs: readonly SyncStatus[]): string[] {
  if (syncs.length === 0) return [];
  return [
    'reverse ETL:',
    ...syncs.map(
      (s) =>
        `  sync ${s.id} (${s.name}, ${s.type}, source ${s.source}): ${s.state}${s.stateReason ? ` (${s.stateReason})` : ''}; ` +
        `last run ${s.lastRunAt ?? 'never'}${s.lastRunStatus ? ` (${s.lastRunStatus})` : ''}, last_sync_time ${s.lastSyncTime}` +
        `; today: ${formatCount(s.rowsToday)} rows, ${formatCount(s.callsToday)} calls, ${formatCount(s.rejectedToday)} rejected in ${formatCount(s.runsToday)} run(s), ${formatCount(s.skipsToday)} skip(s), ${formatCount(s.failuresToday)} failure(s)` +
        (s.lastError ? `; last error at ${s.lastErrorAt}: ${s.lastError}` : ''),
    ),
  ];
}
