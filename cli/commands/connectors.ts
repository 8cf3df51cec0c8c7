import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import { destinationNames } from '../../destinations/registry.js';
import {
  addConnector,
  connectorView,
  rotateConnector,
  testConnector,
} from '../../pipeline/connector-flows.js';
import { printResult } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

interface AddArgs extends GlobalArgs {
  account: number;
  engine: string;
  url: string;
  schema: string;
  streams?: string;
  format: 'csv' | 'parquet' | 'json';
  passwordStdin?: boolean;
  accessKeyId?: string;
  secretAccessKeyStdin?: boolean;
  s3Region?: string;
  every?: string;
}

interface IdArgs extends GlobalArgs {
  id: string;
}

interface RotateArgs extends IdArgs {
  url?: string;
  passwordStdin?: boolean;
  accessKeyId?: string;
  secretAccessKeyStdin?: boolean;
}

/** Reads a secret (a password, a secret key) from standard input: one line, the trailing newline dropped. */
export async function readPasswordStdin(what = 'password'): Promise<Secret> {
  if (process.stdin.isTTY) process.stderr.write(`${what}: `);
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(Buffer.from(c as Buffer));
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text === '') throw new UsageError(`standard input held no ${what}`, `pipe the ${what} in, e.g. < file`);
  return new Secret(text);
}

const add: CommandModule<GlobalArgs, AddArgs> = {
  command: 'add',
  describe: 'Add a connector: test the destination, run its migrations, store it (prints its id)',
  builder: (y) =>
    y
      .option('account', { type: 'number', demandOption: true, describe: 'the customer account id' })
      .option('engine', { choices: destinationNames, demandOption: true })
      .option('url', {
        type: 'string',
        demandOption: true,
        describe:
          'postgres://user@host:5432/db?sslmode=verify-full, mssql://user@host:1433/db or sqlserver://host:1433;database=db;user=u',
      })
      .option('schema', { type: 'string', default: 'tracking', describe: 'warehouse schema' })
      .option('streams', { type: 'string', describe: 'comma-separated streams (default: all)' })
      .option('format', {
        choices: ['csv', 'parquet', 'json'] as const,
        default: 'csv' as const,
        describe: 'the files a bucket connector delivers (warehouses load csv)',
      })
      .option('password-stdin', {
        type: 'boolean',
        describe: 'read the password from standard input',
      })
      .option('access-key-id', { type: 'string', describe: "bucket: the customer's access key id" })
      .option('secret-access-key-stdin', {
        type: 'boolean',
        describe: 'bucket: read the secret access key from standard input',
      })
      .option('s3-region', { type: 'string', describe: "bucket: the bucket's region (default us-east-1)" })
      .option('every', {
        type: 'string',
        describe: 'bucket: one delivery per slot of this length, aligned to the clock (default 10m)',
      })
      .epilogue(
        'Warehouses: --url postgres://… or mssql://…, the password in the URL or from --password-stdin.\n' +
          'Buckets: --engine bucket --url s3://bucket/prefix --access-key-id ID --secret-access-key-stdin ' +
          '[--s3-endpoint URL --s3-path-style --s3-region R] [--format parquet|csv|json] [--every 10m].',
      ) as unknown as Argv<AddArgs>,
  handler: withRuntime<AddArgs>(async (rt, args) => {
    const streams = args.streams
      ? args.streams
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : rt.catalog.streams.map((s) => s.name);
    const password = args.passwordStdin ? await readPasswordStdin() : undefined;
    const secretAccessKey = args.secretAccessKeyStdin
      ? await readPasswordStdin('secret access key')
      : undefined;
    const bucket = args.engine === 'bucket';
    const result = await addConnector(rt, {
      account: args.account,
      engine: args.engine,
      url: args.url,
      ...(password ? { password } : {}),
      ...(secretAccessKey ? { secretAccessKey } : {}),
      ...(args.accessKeyId ? { accessKeyId: args.accessKeyId } : {}),
      ...(bucket && args.s3Endpoint ? { s3Endpoint: args.s3Endpoint } : {}),
      ...(bucket && args.s3PathStyle !== undefined ? { s3PathStyle: args.s3PathStyle } : {}),
      ...(args.s3Region ? { s3Region: args.s3Region } : {}),
      ...(args.every ? { every: args.every } : {}),
      schema: args.schema,
      streams,
      format: args.format,
    });
    printResult(rt.settings.json, { id: result.id }, () => [
      ...result.checks.checks.map((c) => `  ok  ${c.name} (${c.durationMs.toFixed(0)} ms)`),
      `connector ${result.id} added for account ${args.account}; load it with: wharf load --connector ${result.id}`,
    ]);
  }),
};

const list: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'list',
  describe: 'List connectors',
  handler: withRuntime(async (rt) => {
    const all = (await (await rt.connectors()).list()).map(connectorView);
    printResult(rt.settings.json, all, () =>
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
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const c = connectorView(await (await rt.connectors()).get(args.id));
    printResult(rt.settings.json, c, () =>
      Object.entries(c).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(',') : v}`),
    );
  }),
};

const test: CommandModule<GlobalArgs, IdArgs> = {
  command: 'test <id>',
  describe: "Test a connector's connection and permissions; a parked connector becomes active again",
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const report = await testConnector(rt, args.id);
    printResult(rt.settings.json, report, () => [
      ...report.checks.map((x) => `  ok  ${x.name} (${x.durationMs.toFixed(0)} ms)`),
      `connector ${report.id}: all checks passed`,
    ]);
  }),
};

const rotate: CommandModule<GlobalArgs, RotateArgs> = {
  command: 'rotate <id>',
  describe: "Replace a connector's credentials (tested first); the ledger and history go on",
  builder: (y) =>
    y
      .option('url', { type: 'string', describe: 'a new URL (host, user, …)' })
      .option('password-stdin', { type: 'boolean', describe: 'read the new password from standard input' })
      .option('access-key-id', { type: 'string', describe: 'bucket: a new access key id' })
      .option('secret-access-key-stdin', {
        type: 'boolean',
        describe: 'bucket: read the new secret access key from standard input',
      }) as unknown as Argv<RotateArgs>,
  handler: withRuntime<RotateArgs>(async (rt, args) => {
    if (!args.url && !args.passwordStdin && !args.secretAccessKeyStdin && !args.accessKeyId) {
      throw new UsageError(
        'rotate needs something new',
        'pass --url, --password-stdin, or for a bucket --access-key-id / --secret-access-key-stdin',
      );
    }
    const password = args.passwordStdin ? await readPasswordStdin() : undefined;
    const secretAccessKey = args.secretAccessKeyStdin
      ? await readPasswordStdin('secret access key')
      : undefined;
    const updated = await rotateConnector(rt, args.id, {
      ...(args.url ? { url: args.url } : {}),
      ...(password ? { password } : {}),
      ...(secretAccessKey ? { secretAccessKey } : {}),
      ...(args.accessKeyId ? { accessKeyId: args.accessKeyId } : {}),
    });
    printResult(rt.settings.json, connectorView(updated), () => [
      `connector ${updated.id}: new credentials tested and stored (secret version ${updated.secretVersion})`,
    ]);
  }),
};

const disable: CommandModule<GlobalArgs, IdArgs> = {
  command: 'disable <id>',
  describe: 'Disable a connector (its warehouse and ledger are kept)',
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const c = await (await rt.connectors()).disable(args.id);
    printResult(rt.settings.json, connectorView(c), () => [`connector ${c.id} disabled`]);
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
