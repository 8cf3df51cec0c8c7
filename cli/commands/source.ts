import type { Argv, CommandModule } from 'yargs';
import { seedSource } from '../../source/seed.js';
import { initSource } from '../../source/source-schema.js';
import { formatCount, printResult, progressBar } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

export const sourceCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'source <action>',
  describe: 'Manage the platform (source) database',
  builder: (y: Argv<GlobalArgs>) =>
    y.command<GlobalArgs>({
      command: 'init',
      describe: 'Create the reference tracking schema in the source database (idempotent)',
      handler: withRuntime(async (rt) => {
        const pool = await rt.source();
        const client = await pool.connect();
        try {
          await initSource(client, { schema: rt.settings.sourceSchema });
        } finally {
          client.release();
        }
        const result = { schema: rt.settings.sourceSchema, streams: rt.catalog.streams.map((s) => s.name) };
        printResult(rt.settings.json, result, () => [
          `source schema "${result.schema}" is ready: ${result.streams.join(', ')}`,
        ]);
      }),
    }) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};

interface SeedArgs extends GlobalArgs {
  accounts: number;
  rows: number;
  seed: number;
  days: number;
}

export const seedCommand: CommandModule<GlobalArgs, SeedArgs> = {
  command: 'seed',
  describe: 'Fill the source with realistic, deterministic synthetic tracking data',
  builder: (y) =>
    y
      .option('accounts', { type: 'number', demandOption: true, describe: 'number of customer accounts' })
      .option('rows', {
        type: 'number',
        demandOption: true,
        describe: 'clicks in all (other streams in proportion)',
      })
      .option('seed', { type: 'number', default: 1, describe: 'random seed (same seed, same data)' })
      .option('days', { type: 'number', default: 7, describe: 'days of history' }) as Argv<SeedArgs>,
  handler: withRuntime<SeedArgs>(async (rt, args) => {
    const pool = await rt.source();
    const client = await pool.connect();
    const bar = progressBar('seed', !rt.settings.json);
    try {
      await initSource(client, { schema: rt.settings.sourceSchema });
      const summary = await seedSource(client, {
        accounts: args.accounts,
        rows: args.rows,
        seed: args.seed,
        days: args.days,
        schema: rt.settings.sourceSchema,
        onProgress: (done, total) => bar.update(done, total, 'rows'),
      });
      bar.stop();
      printResult(rt.settings.json, summary, () => [
        `seeded ${Object.entries(summary.rowsByStream)
          .map(([s, n]) => `${formatCount(n)} ${s}`)
          .join(', ')} in ${summary.seconds.toFixed(1)} s`,
      ]);
    } finally {
      bar.stop();
      client.release();
    }
  }),
};
