import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { startEmbeddedPostgres } from '../../core/embedded-postgres.js';
import { connectClient } from '../../db/postgres/connection.js';
import { addConnector } from '../../pipeline/connector-flows.js';
import { runConnectors } from '../../pipeline/connectors-run.js';
import { runExportJob } from '../../pipeline/export-job.js';
import { Runtime } from '../../pipeline/runtime.js';
import { resolveSettings } from '../../pipeline/settings.js';
import { seedSource } from '../../source/seed.js';
import { initSource } from '../../source/source-schema.js';
import { formatBytes, formatCount } from '../output.js';
import type { GlobalArgs } from '../run-command.js';

interface DemoArgs extends GlobalArgs {
  accounts: number;
  rows: number;
  dir: string;
  keep: boolean;
}

const say = (line = '') => process.stdout.write(`${line}\n`);

export const demoCommand: CommandModule<GlobalArgs, DemoArgs> = {
  command: 'demo',
  describe: 'Start a PostgreSQL, seed a platform, add a connector, export and load, and show the result',
  builder: (y) =>
    y
      .option('accounts', { type: 'number', default: 3, describe: 'customer accounts to seed' })
      .option('rows', { type: 'number', default: 50_000, describe: 'clicks to seed' })
      .option('dir', {
        type: 'string',
        default: 'wharf-data/demo',
        describe: 'where the demo keeps its database and files',
      })
      .option('keep', {
        type: 'boolean',
        default: Boolean(process.stdin.isTTY),
        describe: 'keep the database running until Ctrl-C (default in a terminal)',
      }) as Argv<DemoArgs>,
  handler: async (args) => {
    const started = Date.now();
    const dir = resolve(args.dir);
    rmSync(dir, { recursive: true, force: true });
    say('Wharf demo');
    say(`  starting PostgreSQL (embedded) in ${dir}/pg …`);
    const server = await startEmbeddedPostgres({ dataDir: `${dir}/pg`, port: 0, persistent: true });
    try {
      await runDemo(args, server, dir, started);
    } catch (error) {
      await server.stop().catch(() => {});
      throw error;
    }
  },
};

async function runDemo(
  args: DemoArgs,
  server: Awaited<ReturnType<typeof startEmbeddedPostgres>>,
  dir: string,
  started: number,
): Promise<void> {
  const admin = await connectClient({ connectionString: server.url }, 'demo');
  await admin.query('create database wharf_source');
  await admin.query('create database wharf_warehouse');
  await admin.end();
  const sourceUrl = server.url.replace(/\/postgres$/, '/wharf_source');
  const warehouseUrl = server.url.replace(/\/postgres$/, '/wharf_warehouse');
  if (!process.env.WHARF_MASTER_KEY) process.env.WHARF_MASTER_KEY = randomBytes(32).toString('base64');
  // the demo tells its own story; logs only for warnings (or --verbose)
  process.env.WHARF_LOG_LEVEL ??= 'warn';

  const rt = new Runtime(
    resolveSettings({
      ...args,
      sourceUrl,
      stagingUrl: `file://${dir}/staging`,
      spoolDir: `${dir}/spool`,
      settle: args.settle ?? '0s',
      window: args.window ?? '1m',
    }),
  );
  try {
    const source = await rt.source();
    const client = await source.connect();
    let seeded: Awaited<ReturnType<typeof seedSource>>;
    try {
      await initSource(client, {});
      say(`  seeding ${args.accounts} accounts and ${formatCount(args.rows)} clicks over 7 days …`);
      seeded = await seedSource(client, { accounts: args.accounts, rows: args.rows, seed: 1 });
    } finally {
      client.release();
    }
    say(
      `  source: ${Object.entries(seeded.rowsByStream)
        .map(([s, n]) => `${formatCount(n)} ${s}`)
        .join(', ')}`,
    );
    const connector = await addConnector(rt, {
      account: 1,
      engine: 'postgres',
      url: `${warehouseUrl}?sslmode=disable`,
      schema: 'tracking',
      streams: rt.catalog.streams.map((s) => s.name),
      format: 'csv',
    });
    say(
      `  connector ${connector.id}: account 1 → ${warehouseUrl.replace(/:[^:@/]*@/, ':********@')} schema "tracking"`,
    );

    const exported = await runExportJob(rt);
    say();
    say(
      `Exported ${formatCount(exported.windows)} closed windows (days of history, then hours, then minutes): ${formatCount(exported.files)} files, ${formatCount(exported.rows)} rows, ${formatBytes(exported.bytes)} of csv.gz, in ${exported.seconds.toFixed(1)} s.`,
    );
    const loaded = await runConnectors(rt);
    const l = loaded.connectors[0];
    if (!l) throw new Error(loaded.failures[0]?.error ?? 'the load did not run');
    say(
      `Loaded them into account 1's warehouse in ${l.transactions} transaction(s): ${formatCount(l.rowsStaged)} rows staged, ${formatCount(l.rowsMerged)} written, in ${l.seconds.toFixed(1)} s.`,
    );
    const wh = await connectClient({ connectionString: warehouseUrl }, 'warehouse');
    try {
      say();
      say('Rows per table in the warehouse (schema "tracking"):');
      for (const s of rt.catalog.streams) {
        const r = await wh.query<{ n: string }>(`select count(*) as n from tracking."${s.name}"`);
        say(`  ${s.name.padEnd(16)} ${formatCount(Number(r.rows[0]!.n)).padStart(10)}`);
      }
      const ledger = await wh.query<{ n: string }>('select count(*) as n from tracking._wharf_loads');
      say(
        `  ${'_wharf_loads'.padEnd(16)} ${formatCount(Number(ledger.rows[0]!.n)).padStart(10)}  (one row per window and stream)`,
      );
      const analystSql = `select a.name as affiliate, count(*) as conversions, sum(c.commission) as approved_commission, c.currency
  from tracking.conversions c join tracking.affiliates a on a.id = c.affiliate_id
 where c.status = 'approved' and c.amount < 1000000
 group by a.name, c.currency order by approved_commission desc limit 5`;
      const answer = await wh.query<{
        affiliate: string;
        conversions: string;
        approved_commission: string;
        currency: string;
      }>(analystSql);
      say();
      say("An analyst's question — approved commission by affiliate (top 5):");
      say(`  ${analystSql.replace(/\n/g, '\n  ')};`);
      for (const r of answer.rows) {
        say(
          `  ${r.affiliate.padEnd(32)} ${String(r.conversions).padStart(6)} conversions  ${r.approved_commission} ${r.currency}`,
        );
      }
    } finally {
      await wh.end();
    }
    say();
    say(`Done in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
    say(`  files:     ${dir}/staging (one folder per window; _manifest.json is written last)`);
    say(`  database:  ${dir}/pg (PostgreSQL on 127.0.0.1:${server.port}, user postgres, password postgres)`);
    say(`  connect:   psql "postgres://postgres:postgres@127.0.0.1:${server.port}/wharf_warehouse"`);
    say(`  then try:  select * from tracking._wharf_loads order by window_end desc limit 5;`);
  } finally {
    await rt.close();
  }
  if (args.keep) {
    say();
    say('The database keeps running; press Ctrl-C to stop it.');
    await new Promise<void>((resolveStop) => {
      process.once('SIGINT', () => resolveStop());
      process.once('SIGTERM', () => resolveStop());
    });
  } else {
    say('  (the database was stopped; run `wharf demo --keep` to leave it running)');
  }
  await server.stop();
}
