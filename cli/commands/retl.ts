import type { Argv, CommandModule } from 'yargs';
import { BusyError, oneLine, UsageError, WharfError } from '../../core/errors.js';
import { listSyncs, previewFlow } from '../../pipeline/retl-flows.js';
import { replaySyncRun, runSyncJob } from '../../pipeline/sync-job.js';
import { isoMicros, type SyncPreview, type SyncRunSummary } from '../../reverse-etl/sync-run.js';
import { formatBytes, formatCount, printResult } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';
import { retlSourcesCommand } from './retl-sources.js';
import { queryOf, retlSyncsCommand } from './retl-syncs.js';

interface RunArgs extends GlobalArgs {
  sync?: string;
}

interface PreviewArgs extends GlobalArgs {
  sync?: string;
  source?: string;
  type?: string;
  query?: string;
  queryFile?: string;
  limit: number;
}

interface ReplayArgs extends GlobalArgs {
  sync: string;
  run: string;
}

/** One sync's outcome in `retl run`. */
type SyncOutcome =
  | ({ readonly sync: string; readonly status: 'ok'; readonly seconds: number } & Omit<
      SyncRunSummary,
      'syncId'
    >)
  | { readonly sync: string; readonly status: 'skipped' | 'parked' | 'failed'; readonly error?: string };

function runLine(o: SyncOutcome): string {
  if (o.status !== 'ok') {
    if (o.status === 'skipped') return `sync ${o.sync}: skipped (another run of it holds its lock)`;
    if (o.status === 'parked') return `sync ${o.sync}: not run: parked (state failing): ${o.error}`;
    return `sync ${o.sync}: FAILED: ${o.error}`;
  }
  const reasons = Object.entries(o.rejections)
    .map(([reason, n]) => `${reason}: ${formatCount(n)}`)
    .join(', ');
  return (
    `sync ${o.sync}: run ${o.runId}${o.resumed ? ' (taken up)' : ''}: ${formatCount(o.rows)} rows, ` +
    `${formatCount(o.calls)} calls, ${formatCount(o.batches)} batches sent (${formatBytes(o.bytes)}), ` +
    `${formatCount(o.rejected)} rejected${reasons ? ` (${reasons})` : ''}` +
    (o.alreadySent > 0 ? `, ${formatCount(o.alreadySent)} already sent` : '') +
    `, ${o.seconds.toFixed(1)} s; next last_sync_time ${isoMicros(o.startedAtMicros)}`
  );
}

/** What did not get done: failures and parked syncs (exit 1), or syncs another process holds (exit 3 when that is all). */
function runOutcome(outcomes: readonly SyncOutcome[]): void {
  const errors: WharfError[] = [];
  for (const o of outcomes) {
    if (o.status === 'failed') errors.push(new WharfError(o.error ?? 'failed'));
    if (o.status === 'parked') {
      errors.push(
        new WharfError(`sync ${o.sync} is parked (state failing): ${o.error}`, {
          hint: `fix the cause, then \`wharf retl syncs enable ${o.sync}\` or \`wharf retl run ${o.sync}\``,
        }),
      );
    }
    if (o.status === 'skipped') {
      errors.push(
        new BusyError(
          `sync ${o.sync} was not run: another run of it holds its lock`,
          'that process is running it; run the command again once it is done',
        ),
      );
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} sync(s) not run`);
}

const run: CommandModule<GlobalArgs, RunArgs> = {
  command: 'run [sync]',
  describe:
    'Run a sync now (or every active sync): read, map, stage, deliver; exit 3 when another process is running it',
  builder: (y) =>
    y.positional('sync', {
      type: 'string',
      describe: 'the sync id (default: every active sync)',
    }) as Argv<RunArgs>,
  handler: withRuntime<RunArgs>(async (rt, args) => {
    const outcomes: SyncOutcome[] = [];
    let ids: string[];
    if (args.sync !== undefined) ids = [args.sync];
    else {
      const all = await listSyncs(rt);
      for (const s of all.filter((x) => x.state === 'failing')) {
        outcomes.push({ sync: s.id, status: 'parked', error: s.stateReason ?? 'no reason recorded' });
      }
      ids = all.filter((s) => s.state === 'active').map((s) => s.id);
    }
    for (const id of ids) {
      const started = performance.now();
      try {
        const result = await runSyncJob(rt, id);
        if (result.status === 'skipped') outcomes.push({ sync: id, status: 'skipped' });
        else {
          const { syncId: _, ...summary } = result.summary;
          outcomes.push({
            sync: id,
            status: 'ok',
            seconds: (performance.now() - started) / 1000,
            ...summary,
          });
        }
      } catch (error) {
        // a usage error (a disabled sync, no such sync) is the command's own problem: exit 2
        if (args.sync !== undefined && error instanceof WharfError && error.kind === 'usage') throw error;
        outcomes.push({ sync: id, status: 'failed', error: oneLine(error) });
      }
    }
    printResult(rt.settings.json, { syncs: outcomes }, () =>
      outcomes.length === 0
        ? ['no active syncs; add one with `wharf retl syncs add`']
        : outcomes.map(runLine),
    );
    runOutcome(outcomes);
  }),
};

function previewLines(p: SyncPreview): string[] {
  const value = p.parameter
    ? `parameter: ${p.parameter.type} (${p.parameter.kind}) = ${p.parameter.value}, for last_sync_time ${isoMicros(p.sinceMicros)}`
    : 'parameter: none (the query has no {{last_sync_time}})';
  return [
    'SQL as sent:',
    ...p.sql.split('\n').map((l) => `  ${l}`),
    value,
    `rows (${p.rows.length}):`,
    ...p.rows.map((r) => `  ${JSON.stringify(r)}`),
    `calls (${p.calls.length}), as they would be sent (sentAt is set when a batch goes out):`,
    ...p.calls.map((c) => `  ${JSON.stringify(c)}`),
    `rejected (${p.rejected.length}):`,
    ...p.rejected.map((r) => `  row ${r.row}: ${r.reason}`),
    'nothing was sent and nothing recorded',
  ];
}

const preview: CommandModule<GlobalArgs, PreviewArgs> = {
  command: 'preview [sync]',
  describe:
    'Run a sync query as its next run would, and show the SQL, the value bound, the rows, the calls and the rejected rows; sends nothing',
  builder: (y) =>
    y
      .positional('sync', { type: 'string', describe: 'a saved sync (or give --source, --type and --query)' })
      .option('source', { type: 'string', describe: 'a source id, for a query not saved yet' })
      .option('type', { choices: ['identify', 'track', 'group', 'page', 'screen', 'alias'] })
      .option('query', { type: 'string', describe: 'the SQL, with {{last_sync_time}}' })
      .option('query-file', { type: 'string', describe: 'a file holding the SQL' })
      .option('limit', {
        type: 'number',
        default: 100,
        describe: 'rows read at most',
      }) as unknown as Argv<PreviewArgs>,
  handler: withRuntime<PreviewArgs>(async (rt, args) => {
    let result: SyncPreview;
    if (args.sync !== undefined) {
      if (args.source !== undefined || args.query !== undefined || args.queryFile !== undefined) {
        throw new UsageError('give a sync id, or --source, --type and --query; not both');
      }
      result = await previewFlow(rt, { sync: args.sync, limit: args.limit });
    } else {
      if (args.source === undefined || args.type === undefined) {
        throw new UsageError('give a sync id, or --source ID --type T --query SQL');
      }
      result = await previewFlow(rt, {
        source: args.source,
        type: args.type as 'identify',
        query: queryOf(args),
        limit: args.limit,
      });
    }
    printResult(rt.settings.json, { ...result, since: isoMicros(result.sinceMicros) }, () =>
      previewLines(result),
    );
  }),
};

const replay: CommandModule<GlobalArgs, ReplayArgs> = {
  command: 'replay <sync>',
  describe:
    'Deliver a staged run of a sync again from its files (the same messageIds; receivers drop repeats)',
  builder: (y) =>
    y.option('run', {
      type: 'string',
      demandOption: true,
      describe: 'the run id (see `wharf retl syncs show`)',
    }) as unknown as Argv<ReplayArgs>,
  handler: withRuntime<ReplayArgs>(async (rt, args) => {
    const r = await replaySyncRun(rt, args.sync, args.run);
    printResult(rt.settings.json, r, () => [
      `sync ${r.syncId}: run ${r.runId} delivered again: ${formatCount(r.calls)} calls in ${formatCount(r.batches)} batches (${formatBytes(r.bytes)})`,
    ]);
  }),
};

export const retlCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'retl <command>',
  describe:
    "Reverse ETL: rows of a customer's warehouse query become identify / track / … calls to a batch endpoint",
  builder: (y) =>
    y
      .command(retlSourcesCommand)
      .command(retlSyncsCommand)
      .command(run)
      .command(preview)
      .command(replay)
      .demandCommand(1) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
