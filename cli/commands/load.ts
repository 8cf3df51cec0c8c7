import type { Argv, CommandModule } from 'yargs';
import { UsageError, WharfError } from '../../core/errors.js';
import { type ConnectorsRun, runConnectors } from '../../pipeline/connectors-run.js';
import { runExportJob } from '../../pipeline/export-job.js';
import type { Runtime } from '../../pipeline/runtime.js';
import { formatBytes, formatCount, printResult, progressBar } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';
import { exportLines } from './export.js';

interface LoadArgs extends GlobalArgs {
  connector?: string;
}

interface ReplayArgs extends GlobalArgs {
  connector: string;
  from?: string;
  to?: string;
}

export function loadLines(s: ConnectorsRun): string[] {
  const lines = s.connectors.map(
    (c) =>
      `connector ${c.connector}: ${formatCount(c.windows)} window(s) in ${c.transactions} transaction(s), ${formatCount(c.rowsStaged)} rows staged, ${formatCount(c.rowsMerged)} inserted or updated, ${c.seconds.toFixed(1)} s` +
      (c.quarantined ? `, ${formatCount(c.quarantined)} quarantined` : ''),
  );
  for (const d of s.deliveries) {
    lines.push(
      `connector ${d.connector}: ${formatCount(d.deliveries)} delivery(ies), ${formatCount(d.files)} object(s), ${formatCount(d.rows)} rows, ${formatBytes(d.bytes)}, ${d.seconds.toFixed(1)} s` +
        (d.existing
          ? `, ${formatCount(d.existing)} object(s) already there (an interrupted delivery completed)`
          : ''),
    );
  }
  for (const id of s.skipped) lines.push(`connector ${id}: skipped (another load of it is running)`);
  for (const f of s.failures) lines.push(`connector ${f.connector}: FAILED: ${f.error}`);
  if (lines.length === 0) lines.push('no active connectors; add one with `wharf connectors add`');
  return lines;
}

/** The connectors' jobs with a progress bar per connector in a terminal. */
function runLoad(
  rt: Runtime,
  options: { connector?: string; replay?: { from?: Date; to?: Date } } = {},
): Promise<ConnectorsRun> {
  return runConnectors(rt, {
    ...options,
    progress: (id) => {
      const bar = progressBar(`connector ${id}`, !rt.settings.json);
      return {
        update: (e) => bar.update(e.windowsDone, e.windowsTotal, `${formatCount(e.rows)} rows`),
        stop: () => bar.stop(),
      };
    },
  });
}

function failIfAny(s: ConnectorsRun): void {
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
  handler: withRuntime<LoadArgs>(async (rt, args) => {
    const summary = await runLoad(rt, args.connector ? { connector: args.connector } : {});
    printResult(rt.settings.json, summary, () => loadLines(summary));
    failIfAny(summary);
  }),
};

export const syncCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'sync',
  describe: 'Export closed windows, then load every active connector',
  handler: withRuntime(async (rt) => {
    const exported = await runExportJob(rt);
    const loaded = await runLoad(rt);
    printResult(rt.settings.json, { export: exported, load: loaded }, () => [
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
  handler: withRuntime<ReplayArgs>(async (rt, args) => {
    const from = parseTime(args.from, '--from');
    const to = parseTime(args.to, '--to');
    const summary = await runLoad(rt, {
      connector: args.connector,
      replay: { ...(from ? { from } : {}), ...(to ? { to } : {}) },
    });
    printResult(rt.settings.json, summary, () =>
      loadLines(summary).map((l) => l.replace(/^connector/, 'replayed connector')),
    );
  }),
};
