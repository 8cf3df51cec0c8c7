import type { Argv, CommandModule } from 'yargs';
import { seedSource } from '../../source/seed.js';
import { initSource } from '../../source/source-schema.js';
import { formatCount, printResult, progressBar } from '../output.js';
import { type GlobalArgs, withContext } from '../run-command.js';

export const sourceCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'source <action>',
  describe: 'Manage the platform (source) database',
  builder: (y: Argv<GlobalArgs>) =>
    y.command<GlobalArgs>({
      command: 'init',
      describe: 'Create the reference tracking schema in the source database (idempotent)',
      handler: withContext(async (ctx) => {
        const pool = await ctx.source();
        const client = await pool.connect();
        try {
          await initSource(client, { schema: ctx.settings.sourceSchema });
        } finally {
          client.release();
        }
        const result = { schema: ctx.settings.sourceSchema, streams: ctx.catalog.streams.map((s) => s.name) };
        printResult(ctx.settings.json, result, () => [
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
  handler: withContext<SeedArgs>(async (ctx, args) => {
    const pool = await ctx.source();
    const client = await pool.connect();
    const bar = progressBar('seed', !ctx.settings.json);
    try {
      await initSource(client, { schema: ctx.settings.sourceSchema });
      const summary = await seedSource(client, {
        accounts: args.accounts,
        rows: args.rows,
        seed: args.seed,
        days: args.days,
        schema: ctx.settings.sourceSchema,
        onProgress: (done, total) => bar.update(done, total, 'rows'),
      });
      bar.stop();
      printResult(ctx.settings.json, summary, () => [
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
