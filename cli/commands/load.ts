import pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import type { Connector } from '../../connectors/connector-store.js';
import { withContext as addContext, UsageError, WharfError } from '../../core/errors.js';
import { type LoadProgress, type LoadSummary, loadConnector } from '../../loaders/load.js';
import type { LedgerStatus } from '../../loaders/warehouse.js';
import { activeConnectors, connectorStore, openWarehouse } from '../connector-runtime.js';
import type { CommandContext } from '../context.js';
import { formatCount, printResult, progressBar } from '../output.js';
import { type GlobalArgs, withContext } from '../run-command.js';
import { exportLines, runExport } from './export.js';

interface LoadArgs extends GlobalArgs {
  connector?: string;
}

interface ReplayArgs extends GlobalArgs {
  connector: string;
  from?: string;
  to?: string;
}

export interface LoadRunSummary {
  connectors: LoadSummary[];
  failures: { connector: string; error: string }[];
  skipped: string[];
}

/** The advisory lock a connector's load holds on the control database (one load of a connector at a time). */
export function loadLockKey(controlSchema: string, connectorId: string): string {
  return `wharf.load.${controlSchema}.${connectorId}`;
}

/** What `loadOne` did: loaded (possibly nothing new), or skipped because another load of the connector holds its lock. */
export type LoadOneResult =
  | { readonly status: 'loaded'; readonly summary: LoadSummary; readonly ledger: LedgerStatus }
  | { readonly status: 'skipped' };

export interface LoadOneOptions {
  readonly replay?: { readonly from?: Date; readonly to?: Date };
  readonly onProgress?: (event: LoadProgress) => void;
}

/**
 * Loads one connector under its advisory try-lock, taken on a connection of its own to the control
 * database (so a crash of this process releases it at once). Returns `skipped` when the lock is held by
 * another load; errors carry the connector in their context.
 */
export async function loadOne(
  ctx: CommandContext,
  connector: Connector,
  options: LoadOneOptions = {},
): Promise<LoadOneResult> {
  const control = await ctx.control();
  const lockKey = loadLockKey(ctx.settings.controlSchema, String(connector.id));
  const lockClient = new pg.Client({
    connectionString: ctx.settings.controlUrl ?? ctx.sourceUrl(),
    application_name: 'wharf-load-lock',
  });
  lockClient.on('error', () => {});
  try {
    await lockClient.connect();
    const got = await lockClient.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [
      lockKey,
    ]);
    if (!got.rows[0]!.ok) return { status: 'skipped' };
    const warehouse = await openWarehouse(ctx, connector);
    try {
      const summary = await loadConnector({
        control,
        controlSchema: ctx.settings.controlSchema,
        store: ctx.store(),
        catalog: ctx.catalog,
        target: {
          connectorId: String(connector.id),
          account: String(connector.account),
          streams: connector.streams,
        },
        warehouse,
        logger: ctx.logger,
        ...(options.replay ? { replay: options.replay } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      return { status: 'loaded', summary, ledger: await warehouse.status() };
    } finally {
      await warehouse.close();
    }
  } catch (error) {
    throw addContext(error, { connector: String(connector.id) });
  } finally {
    // closing the session releases the advisory lock
    await lockClient.end().catch(() => {});
  }
}

/** Loads one connector (or all active ones) under a per-connector lock. */
export async function runLoad(
  ctx: CommandContext,
  options: { connector?: string; replay?: { from?: Date; to?: Date } } = {},
): Promise<LoadRunSummary> {
  const store = await connectorStore(ctx);
  const targets = options.connector ? [await store.get(options.connector)] : await activeConnectors(ctx);
  const out: LoadRunSummary = { connectors: [], failures: [], skipped: [] };
  for (const connector of targets) {
    const bar = progressBar(`connector ${connector.id}`, !ctx.settings.json);
    try {
      const result = await loadOne(ctx, connector, {
        ...(options.replay ? { replay: options.replay } : {}),
        onProgress: (e) => bar.update(e.windowsDone, e.windowsTotal, `${formatCount(e.rows)} rows`),
      });
      if (result.status === 'skipped') {
        ctx.logger.info(
          { connector: connector.id },
          `connector ${connector.id} is being loaded by another process; skipped`,
        );
        out.skipped.push(String(connector.id));
      } else {
        out.connectors.push(result.summary);
      }
    } catch (error) {
      const e = addContext(error, { connector: String(connector.id) });
      if (options.connector) throw e;
      ctx.logger.error({ connector: connector.id, err: e.oneLine() }, `connector ${connector.id} failed`);
      out.failures.push({ connector: String(connector.id), error: e.oneLine() });
    } finally {
      bar.stop();
    }
  }
  return out;
}

export function loadLines(s: LoadRunSummary): string[] {
  const lines = s.connectors.map(
    (c) =>
      `connector ${c.connector}: ${formatCount(c.windows)} window(s) in ${c.transactions} transaction(s), ${formatCount(c.rowsStaged)} rows staged, ${formatCount(c.rowsMerged)} inserted or updated, ${c.seconds.toFixed(1)} s` +
      (c.quarantined ? `, ${formatCount(c.quarantined)} quarantined` : ''),
  );
  for (const id of s.skipped) lines.push(`connector ${id}: skipped (another load of it is running)`);
  for (const f of s.failures) lines.push(`connector ${f.connector}: FAILED: ${f.error}`);
  if (lines.length === 0) lines.push('no active connectors; add one with `wharf connectors add`');
  return lines;
}

function failIfAny(s: LoadRunSummary): void {
  if (s.failures.length > 0) {
    throw new WharfError(`${s.failures.length} connector(s) failed to load`, {
      hint: 'see the lines above; fix the cause and run `wharf load` again',
    });
  }
}

export const loadCommand: CommandModule<GlobalArgs, LoadArgs> = {
  command: 'load',
  describe: 'Load every exported window a connector has not loaded yet (all active connectors by default)',
  builder: (y) =>
    y.option('connector', { type: 'string', describe: 'only this connector id' }) as Argv<LoadArgs>,
  handler: withContext<LoadArgs>(async (ctx, args) => {
    const summary = await runLoad(ctx, args.connector ? { connector: args.connector } : {});
    printResult(ctx.settings.json, summary, () => loadLines(summary));
    failIfAny(summary);
  }),
};

export const syncCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'sync',
  describe: 'Export closed windows, then load every active connector',
  handler: withContext(async (ctx) => {
    const exported = await runExport(ctx);
    const loaded = await runLoad(ctx);
    printResult(ctx.settings.json, { export: exported, load: loaded }, () => [
      ...exportLines(exported),
      ...loadLines(loaded),
    ]);
    failIfAny(loaded);
  }),
};

function parseTime(text: string | undefined, flag: string): Date | undefined {
  if (text === undefined) return undefined;
  const d = new Date(text);
  if (Number.isNaN(d.getTime()))
    throw new UsageError(`invalid ${flag} "${text}"`, 'use an ISO time, e.g. 2026-11-23T09:00:00Z');
  return d;
}

export const replayCommand: CommandModule<GlobalArgs, ReplayArgs> = {
  command: 'replay',
  describe: "Reload a connector's windows from the stored files (never the source); idempotent",
  builder: (y) =>
    y
      .option('connector', { type: 'string', demandOption: true, describe: 'connector id' })
      .option('from', { type: 'string', describe: 'windows ending after this ISO time' })
      .option('to', {
        type: 'string',
        describe: 'windows starting before this ISO time',
      }) as Argv<ReplayArgs>,
  handler: withContext<ReplayArgs>(async (ctx, args) => {
    const from = parseTime(args.from, '--from');
    const to = parseTime(args.to, '--to');
    const summary = await runLoad(ctx, {
      connector: args.connector,
      replay: { ...(from ? { from } : {}), ...(to ? { to } : {}) },
    });
    printResult(ctx.settings.json, summary, () =>
      loadLines(summary).map((l) => l.replace(/^connector/, 'replayed connector')),
    );
  }),
};
