import type { CommandModule } from 'yargs';
import { statusReport } from '../../pipeline/status.js';
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
    ]);
  }),
};
