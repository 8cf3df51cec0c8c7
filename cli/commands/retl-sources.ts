import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import { addSource, listSources, rotateSource, showSource, testSource } from '../../pipeline/retl-flows.js';
import type { SourceCheckReport } from '../../reverse-etl/source-checks.js';
import { printResult } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

interface AddArgs extends GlobalArgs {
  account: number;
  engine: 'postgres' | 'mssql';
  url: string;
  passwordStdin?: boolean;
}

interface IdArgs extends GlobalArgs {
  id: string;
}

interface RotateArgs extends IdArgs {
  url?: string;
  passwordStdin?: boolean;
}

/** Reads a secret from standard input (one line; the trailing newline is dropped). */
export async function readSecretStdin(flag: string, what: string): Promise<Secret> {
  if (process.stdin.isTTY) process.stderr.write(`${what}: `);
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(Buffer.from(c as Buffer));
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text === '') throw new UsageError(`${flag} read an empty ${what}`);
  return new Secret(text);
}

/** The check lines for people: `ok` per step, then `warn` per warning. */
export function checkLines(report: SourceCheckReport): string[] {
  return [
    ...report.checks.map(
      (c) => `  ok    ${c.name} (${c.durationMs.toFixed(0)} ms)${c.message ? `: ${c.message}` : ''}`,
    ),
    ...report.warnings.map((w) => `  warn  ${w}`),
  ];
}

/** With --json the warnings go to stderr too, so that a person running a script still sees them. */
function warnOnStderr(json: boolean, report: SourceCheckReport): void {
  if (json) for (const w of report.warnings) process.stderr.write(`wharf: warning: ${w}\n`);
}

const URL_HELP =
  'postgres://user@host:5432/db (Redshift too; sslmode defaults to verify-full, sslmode=disable for a plain connection), mssql://user@host:1433/db or sqlserver://host:1433;database=db;user=u';

const add: CommandModule<GlobalArgs, AddArgs> = {
  command: 'add',
  describe:
    'Add a source: check the warehouse (reach, TLS, authenticate, select 1; a warning when the user can write), then store it (prints its id)',
  builder: (y) =>
    y
      .option('account', { type: 'number', demandOption: true, describe: 'the customer account id' })
      .option('engine', { choices: ['postgres', 'mssql'] as const, demandOption: true })
      .option('url', { type: 'string', demandOption: true, describe: URL_HELP })
      .option('password-stdin', {
        type: 'boolean',
        describe: 'read the password from standard input',
      }) as unknown as Argv<AddArgs>,
  handler: withRuntime<AddArgs>(async (rt, args) => {
    const password = args.passwordStdin ? await readSecretStdin('--password-stdin', 'password') : undefined;
    const { id, report } = await addSource(rt, {
      account: args.account,
      engine: args.engine,
      url: args.url,
      ...(password ? { password } : {}),
    });
    warnOnStderr(rt.settings.json, report);
    printResult(rt.settings.json, { id, warnings: report.warnings }, () => [
      ...checkLines(report),
      `source ${id} added for account ${args.account}; add a sync with: wharf retl syncs add --source ${id} …`,
    ]);
  }),
};

const list: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'list',
  describe: 'List sources (never a password)',
  handler: withRuntime(async (rt) => {
    const all = await listSources(rt);
    printResult(rt.settings.json, all, () =>
      all.length === 0
        ? ['no sources; add one with `wharf retl sources add`']
        : all.map((s) => `${s.id}\taccount ${s.account}\t${s.engine}\t${s.url}\t${s.state}`),
    );
  }),
};

const show: CommandModule<GlobalArgs, IdArgs> = {
  command: 'show <id>',
  describe: 'Show one source (never its password)',
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const s = await showSource(rt, args.id);
    printResult(rt.settings.json, s, () =>
      Object.entries(s).map(([k, v]) => `${k}: ${v instanceof Date ? v.toISOString() : v}`),
    );
  }),
};

const test: CommandModule<GlobalArgs, IdArgs> = {
  command: 'test <id>',
  describe: "Run a source's checks again with its stored credentials",
  handler: withRuntime<IdArgs>(async (rt, args) => {
    const report = await testSource(rt, args.id);
    warnOnStderr(rt.settings.json, report);
    printResult(
      rt.settings.json,
      { id: args.id, ok: true, checks: report.checks, warnings: report.warnings },
      () => [...checkLines(report), `source ${args.id}: all checks passed`],
    );
  }),
};

const rotate: CommandModule<GlobalArgs, RotateArgs> = {
  command: 'rotate <id>',
  describe: "Replace a source's URL or password (checked first); its syncs go on",
  builder: (y) =>
    y.option('url', { type: 'string', describe: `a new URL: ${URL_HELP}` }).option('password-stdin', {
      type: 'boolean',
      describe: 'read the new password from standard input',
    }) as unknown as Argv<RotateArgs>,
  handler: withRuntime<RotateArgs>(async (rt, args) => {
    if (!args.url && !args.passwordStdin) throw new UsageError('rotate needs --password-stdin or --url');
    const password = args.passwordStdin ? await readSecretStdin('--password-stdin', 'password') : undefined;
    const { source, report } = await rotateSource(rt, args.id, {
      ...(args.url ? { url: args.url } : {}),
      ...(password ? { password } : {}),
    });
    warnOnStderr(rt.settings.json, report);
    printResult(rt.settings.json, { ...source, warnings: report.warnings }, () => [
      ...checkLines(report),
      `source ${source.id}: new credentials checked and stored (secret version ${source.secretVersion})`,
    ]);
  }),
};

export const retlSourcesCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'sources <action>',
  describe: 'Customer warehouses reverse-ETL syncs read from',
  builder: (y) =>
    y
      .command(add)
      .command(list)
      .command(show)
      .command(test)
      .command(rotate)
      .demandCommand(1) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
