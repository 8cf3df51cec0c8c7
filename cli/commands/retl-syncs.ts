import { readFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { ConfigError, UsageError } from '../../core/errors.js';
import { addSync, listSyncs, type SyncView, setSyncEnabled, showSync } from '../../pipeline/retl-flows.js';
import { printResult } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';
import { readSecretStdin } from './retl-sources.js';

interface AddArgs extends GlobalArgs {
  source: string;
  name: string;
  description?: string;
  type: string;
  query?: string;
  queryFile?: string;
  every: string;
  startAt?: string;
  lookback?: string;
  timeout?: string;
  deliverTo: string;
  writeKeyStdin?: boolean;
}

interface IdArgs extends GlobalArgs {
  id: string;
}

/** The query from `--query` or `--query-file`: exactly one of them. */
export function queryOf(args: { readonly query?: string; readonly queryFile?: string }): string {
  if ((args.query === undefined) === (args.queryFile === undefined)) {
    throw new UsageError('give the query with --query SQL or --query-file FILE (one of them)');
  }
  if (args.query !== undefined) return args.query;
  try {
    return readFileSync(args.queryFile!, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the query file ${args.queryFile}`, {
      cause: error,
      hint: 'check the --query-file path',
    });
  }
}

const add: CommandModule<GlobalArgs, AddArgs> = {
  command: 'add',
  describe:
    "Add a sync: a source's query, its call type, its frequency and the batch endpoint (prints its id)",
  builder: (y) =>
    y
      .option('source', { type: 'string', demandOption: true, describe: 'the source id' })
      .option('name', { type: 'string', demandOption: true, describe: 'a name, unique on the source' })
      .option('description', { type: 'string' })
      .option('type', {
        choices: ['identify', 'track', 'group', 'page', 'screen', 'alias'],
        demandOption: true,
        describe: 'the call each row becomes',
      })
      .option('query', { type: 'string', describe: 'the SQL, with {{last_sync_time}} where a value goes' })
      .option('query-file', { type: 'string', describe: 'a file holding the SQL' })
      .option('every', { type: 'string', default: '1m', describe: 'how often it runs (1m at least)' })
      .option('start-at', {
        type: 'string',
        describe:
          'when the schedule starts, an ISO time: not run by `wharf run` before it (default: now); the first run still reads every row',
      })
      .option('lookback', { type: 'string', describe: 're-read this much before last_sync_time, e.g. 30s' })
      .option('timeout', { type: 'string', describe: 'statement timeout (default 80 % of --every)' })
      .option('deliver-to', {
        type: 'string',
        demandOption: true,
        describe: 'the Segment-compatible batch endpoint: https://WRITE_KEY@host/path',
      })
      .option('write-key-stdin', {
        type: 'boolean',
        describe: 'read the write key from standard input (then --deliver-to needs none)',
      }) as unknown as Argv<AddArgs>,
  handler: withRuntime<AddArgs>(async (rt, args) => {
    const query = queryOf(args);
    const writeKey = args.writeKeyStdin ? await readSecretStdin('--write-key-stdin', 'write key') : undefined;
    const { id } = await addSync(rt, {
      source: args.source,
      name: args.name,
      ...(args.description === undefined ? {} : { description: args.description }),
      type: args.type as 'identify',
      query,
      every: args.every,
      ...(args.startAt === undefined ? {} : { startAt: args.startAt }),
      ...(args.lookback === undefined ? {} : { lookback: args.lookback }),
      ...(args.timeout === undefined ? {} : { timeout: args.timeout }),
      deliverTo: args.deliverTo,
      ...(writeKey ? { writeKey } : {}),
    });
    printResult(rt.settings.json, { id }, () => [
      `sync ${id} added; see what it would send with: wharf retl preview ${id}; run it with: wharf retl run ${id}`,
    ]);
  }),
};

function syncLine(s: SyncView): string {
  return `${s.id}\tsource ${s.source}\t${s.name}\t${s.type}\tevery ${s.every}\t${s.deliverTo}\t${s.state}${s.stateReason ? ` (${s.stateReason})` : ''}`;
}

const list: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'list',
  describe: 'List syncs (never a write key)',
  handler: withRuntime(async (rt) => {
    const all = await listSyncs(rt);
    printResult(rt.settings.json, all, () =>
      all.length === 0 ? ['no syncs; add one with `wharf retl syncs add`'] : all.map(syncLine),
    );
  }),
};

const show: CommandModule<GlobalArgs, IdArgs> = {
  command: 'show <id>',
  describe: 'Show one sync and its latest runs (never its write key)',
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const { runs, ...sync } = await showSync(rt, args.id);
    printResult(rt.settings.json, { ...sync, runs }, () => [
      ...Object.entries(sync).map(([k, v]) => `${k}: ${v instanceof Date ? v.toISOString() : v}`),
      runs.length === 0 ? 'runs: none yet' : 'runs (newest first):',
      ...runs.map(
        (r) =>
          `  run ${r.runId}\t${r.status}\t${r.startedAt.toISOString()}\t${r.rows} rows, ${r.calls} calls (${r.delivered} delivered), ${r.rejected} rejected${r.error ? `\t${r.error}` : ''}`,
      ),
    ]);
  }),
};

const enable: CommandModule<GlobalArgs, IdArgs> = {
  command: 'enable <id>',
  describe: 'Make a sync active again (a parked one too)',
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const s = await setSyncEnabled(rt, args.id, true);
    printResult(rt.settings.json, s, () => [`sync ${s.id} active`]);
  }),
};

const disable: CommandModule<GlobalArgs, IdArgs> = {
  command: 'disable <id>',
  describe: 'Stop running a sync (its history and staged runs are kept)',
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const s = await setSyncEnabled(rt, args.id, false);
    printResult(rt.settings.json, s, () => [`sync ${s.id} disabled`]);
  }),
};

export const retlSyncsCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'syncs <action>',
  describe: 'Reverse-ETL syncs: a query on a source, its call type and its endpoint',
  builder: (y) =>
    y
      .command(add)
      .command(list)
      .command(show)
      .command(enable)
      .command(disable)
      .demandCommand(1) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
