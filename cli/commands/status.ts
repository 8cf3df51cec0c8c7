import type { CommandModule } from 'yargs';
import { errorMessage } from '../../core/errors.js';
import { quotePg } from '../../db/postgres/quote.js';
import { connectorRunStats, statsFor } from '../../scheduler/run-history.js';
import { connectorStore, openWarehouse } from '../connector-runtime.js';
import { formatCount, printResult } from '../output.js';
import { type GlobalArgs, withContext } from '../run-command.js';

export interface ConnectorStatus {
  id: string;
  account: string;
  engine: string;
  state: string;
  stateReason: string | null;
  lastWindow: string | null;
  lastWindowEnd: string | null;
  lagSeconds: number | null;
  rows: number;
  windowsLoaded: number;
  windowsBehind: number | null;
  error: string | null;
  /** The last failed load's one-line reason (from the control `runs` table). */
  lastError: string | null;
  lastErrorAt: string | null;
  /** Rows loaded, loads, skips and failures since 00:00 UTC. */
  rowsToday: number;
  loadsToday: number;
  skipsToday: number;
  failuresToday: number;
}

export const statusCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'status',
  describe: 'Per connector: state, last loaded window, lag, rows',
  handler: withContext(async (ctx) => {
    const control = await ctx.control();
    const store = await connectorStore(ctx);
    const cs = quotePg(ctx.settings.controlSchema);
    const exported = await control.query<{ n: string; last: Date | null; now: Date }>(
      `select count(*) as n, max(end_at) as last, now() as now from ${cs}.windows where format = 'csv'`,
    );
    const now = exported.rows[0]!.now;
    const runs = await connectorRunStats(control, ctx.settings.controlSchema);
    const out: ConnectorStatus[] = [];
    for (const c of await store.list()) {
      const r = statsFor(runs, String(c.id));
      const s: ConnectorStatus = {
        id: String(c.id),
        account: String(c.account),
        engine: c.engine,
        state: c.state,
        stateReason: c.stateReason ?? null,
        lastWindow: null,
        lastWindowEnd: null,
        lagSeconds: null,
        rows: 0,
        windowsLoaded: 0,
        windowsBehind: null,
        error: null,
        lastError: r.lastError,
        lastErrorAt: r.lastErrorAt?.toISOString() ?? null,
        rowsToday: r.rowsToday,
        loadsToday: r.loadsToday,
        skipsToday: r.skipsToday,
        failuresToday: r.failuresToday,
      };
      if (c.state !== 'disabled') {
        try {
          const wh = await openWarehouse(ctx, c);
          try {
            const l = await wh.status();
            s.lastWindow = l.lastWindowId;
            s.lastWindowEnd = l.lastWindowEnd?.toISOString() ?? null;
            s.lagSeconds = l.lastWindowEnd
              ? Math.round((now.getTime() - l.lastWindowEnd.getTime()) / 1000)
              : null;
            s.rows = l.rows;
            s.windowsLoaded = l.windows;
            const behind = await control.query<{ n: string }>(
              `select count(*) as n from ${cs}.windows where format = 'csv' and end_at > coalesce($1::timestamptz, '-infinity')`,
              [l.lastWindowEnd],
            );
            s.windowsBehind = Number(behind.rows[0]!.n);
          } finally {
            await wh.close();
          }
        } catch (error) {
          s.error = errorMessage(error);
        }
      }
      out.push(s);
    }
    const result = {
      exportedWindows: Number(exported.rows[0]!.n),
      exportedUpTo: exported.rows[0]!.last?.toISOString() ?? null,
      connectors: out,
    };
    printResult(ctx.settings.json, result, () => [
      `exported: ${formatCount(result.exportedWindows)} windows, up to ${result.exportedUpTo ?? 'nothing yet'}`,
      ...(out.length === 0 ? ['no connectors; add one with `wharf connectors add`'] : []),
      ...out.map(
        (s) =>
          `connector ${s.id} (account ${s.account}, ${s.engine}): ${s.state}${s.stateReason ? ` (${s.stateReason})` : ''}; ` +
          (s.error
            ? `cannot read its warehouse: ${s.error}`
            : `last window ${s.lastWindow ?? 'none'}, lag ${s.lagSeconds === null ? 'n/a' : `${s.lagSeconds} s`}, ${formatCount(s.rows)} rows loaded, ${s.windowsBehind ?? 0} window(s) behind`) +
          `; today: ${formatCount(s.rowsToday)} rows in ${formatCount(s.loadsToday)} load(s), ${formatCount(s.skipsToday)} skip(s), ${formatCount(s.failuresToday)} failure(s)` +
          (s.lastError ? `; last error at ${s.lastErrorAt}: ${s.lastError}` : ''),
      ),
    ]);
  }),
};
