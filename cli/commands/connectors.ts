import type { Argv, CommandModule } from 'yargs';
import { describeConnection, parseConnectionUrl } from '../../connectors/connection-url.js';
import type { Connector } from '../../connectors/connector-store.js';
import { UsageError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import { addConnectorFlow, connectorStore, warehouseFor } from '../connector-runtime.js';
import { printResult } from '../output.js';
import { type GlobalArgs, withContext } from '../run-command.js';
import { checkWarehouse } from '../warehouse-checks.js';

interface AddArgs extends GlobalArgs {
  account: number;
  engine: 'postgres' | 'mssql' | 'bucket';
  url: string;
  schema: string;
  streams?: string;
  format: 'csv' | 'parquet' | 'json';
  passwordStdin?: boolean;
}

interface IdArgs extends GlobalArgs {
  id: string;
}

interface RotateArgs extends IdArgs {
  url?: string;
  passwordStdin?: boolean;
}

/** Reads a password from standard input (one line; the trailing newline is dropped). */
export async function readPasswordStdin(): Promise<Secret> {
  if (process.stdin.isTTY) process.stderr.write('password: ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(Buffer.from(c as Buffer));
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text === '') throw new UsageError('--password-stdin read an empty password');
  return new Secret(text);
}

/** What is safe to show of a connector: never the password. */
export function publicView(c: Connector) {
  return {
    id: String(c.id),
    account: String(c.account),
    engine: c.engine,
    destination: describeConnection(c.settings),
    schema: c.schema,
    streams: c.streams,
    format: c.format,
    state: c.state,
    stateReason: c.stateReason ?? null,
    secretVersion: c.secretVersion,
    createdAt: c.createdAt,
  };
}

const add: CommandModule<GlobalArgs, AddArgs> = {
  command: 'add',
  describe: 'Add a connector: test the destination, run its migrations, store it (prints its id)',
  builder: (y) =>
    y
      .option('account', { type: 'number', demandOption: true, describe: 'the customer account id' })
      .option('engine', { choices: ['postgres', 'mssql', 'bucket'] as const, demandOption: true })
      .option('url', {
        type: 'string',
        demandOption: true,
        describe:
          'postgres://user@host:5432/db?sslmode=verify-full, mssql://user@host:1433/db or sqlserver://host:1433;database=db;user=u',
      })
      .option('schema', { type: 'string', default: 'tracking', describe: 'warehouse schema' })
      .option('streams', { type: 'string', describe: 'comma-separated streams (default: all)' })
      .option('format', { choices: ['csv', 'parquet', 'json'] as const, default: 'csv' as const })
      .option('password-stdin', {
        type: 'boolean',
        describe: 'read the password from standard input',
      }) as unknown as Argv<AddArgs>,
  handler: withContext<AddArgs>(async (ctx, args) => {
    const streams = args.streams
      ? args.streams
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : ctx.catalog.streams.map((s) => s.name);
    const password = args.passwordStdin ? await readPasswordStdin() : undefined;
    const result = await addConnectorFlow(ctx, {
      account: args.account,
      engine: args.engine,
      url: args.url,
      ...(password ? { password } : {}),
      schema: args.schema,
      streams,
      format: args.format,
    });
    printResult(ctx.settings.json, { id: result.id }, () => [
      ...result.checks.checks.map((c) => `  ok  ${c.name} (${c.durationMs.toFixed(0)} ms)`),
      `connector ${result.id} added for account ${args.account}; load it with: wharf load --connector ${result.id}`,
    ]);
  }),
};

const list: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'list',
  describe: 'List connectors',
  handler: withContext(async (ctx) => {
    const all = (await (await connectorStore(ctx)).list()).map(publicView);
    printResult(ctx.settings.json, all, () =>
      all.length === 0
        ? ['no connectors']
        : all.map(
            (c) =>
              `${c.id}\taccount ${c.account}\t${c.engine}\t${c.destination}\tschema ${c.schema}\t${c.state}`,
          ),
    );
  }),
};

const show: CommandModule<GlobalArgs, IdArgs> = {
  command: 'show <id>',
  describe: 'Show one connector (never its password)',
  handler: withContext<IdArgs>(async (ctx, args) => {
    const c = publicView(await (await connectorStore(ctx)).get(args.id));
    printResult(ctx.settings.json, c, () =>
      Object.entries(c).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(',') : v}`),
    );
  }),
};

const test: CommandModule<GlobalArgs, IdArgs> = {
  command: 'test <id>',
  describe: "Test a connector's connection and permissions; a parked connector becomes active again",
  handler: withContext<IdArgs>(async (ctx, args) => {
    const store = await connectorStore(ctx);
    const c = await store.get(args.id);
    const creds = await store.credentials(c.id);
    const report = await checkWarehouse(creds.settings, creds.password, c.schema);
    const wh = await warehouseFor(c.engine, creds.settings, creds.password, c.schema, String(c.id));
    try {
      await wh.migrate(ctx.catalog, c.streams);
    } finally {
      await wh.close();
    }
    if (c.state !== 'active' && c.state !== 'disabled') await store.setState(c.id, 'active');
    printResult(ctx.settings.json, { id: String(c.id), ok: true, checks: report.checks }, () => [
      ...report.checks.map((x) => `  ok  ${x.name} (${x.durationMs.toFixed(0)} ms)`),
      `connector ${c.id}: all checks passed`,
    ]);
  }),
};

const rotate: CommandModule<GlobalArgs, RotateArgs> = {
  command: 'rotate <id>',
  describe: "Replace a connector's credentials (tested first); the ledger and history go on",
  builder: (y) =>
    y.option('url', { type: 'string', describe: 'a new URL (host, user, …)' }).option('password-stdin', {
      type: 'boolean',
      describe: 'read the new password from standard input',
    }) as unknown as Argv<RotateArgs>,
  handler: withContext<RotateArgs>(async (ctx, args) => {
    if (!args.url && !args.passwordStdin) throw new UsageError('rotate needs --password-stdin or --url');
    const store = await connectorStore(ctx);
    const c = await store.get(args.id);
    const current = await store.credentials(c.id);
    const password = args.passwordStdin ? await readPasswordStdin() : undefined;
    const parsed = args.url
      ? parseConnectionUrl(args.url, password)
      : { settings: current.settings, password: password ?? current.password };
    if (parsed.settings.engine !== c.engine)
      throw new UsageError(`the new URL is for ${parsed.settings.engine}, the connector is ${c.engine}`);
    const newPassword = parsed.password ?? current.password;
    await checkWarehouse(parsed.settings, newPassword, c.schema);
    const updated = await store.rotate(c.id, {
      ...(args.url ? { settings: parsed.settings } : {}),
      ...(newPassword ? { password: newPassword } : {}),
    });
    printResult(ctx.settings.json, publicView(updated), () => [
      `connector ${c.id}: new credentials tested and stored (secret version ${updated.secretVersion})`,
    ]);
  }),
};

const disable: CommandModule<GlobalArgs, IdArgs> = {
  command: 'disable <id>',
  describe: 'Disable a connector (its warehouse and ledger are kept)',
  handler: withContext<IdArgs>(async (ctx, args) => {
    const c = await (await connectorStore(ctx)).disable(args.id);
    printResult(ctx.settings.json, publicView(c), () => [`connector ${c.id} disabled`]);
  }),
};

export const connectorsCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'connectors <action>',
  describe: 'Manage connectors (one per customer account)',
  builder: (y) =>
    y
      .command(add)
      .command(list)
      .command(show)
      .command(test)
      .command(rotate)
      .command(disable)
      .demandCommand(1) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
