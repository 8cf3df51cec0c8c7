import { BusyError, errorMessage, UsageError, WharfError } from '../core/errors.js';
import { redactUrls } from '../core/secret.js';
import { WHARF_VERSION } from '../core/version.js';
import { commandsFor } from './commands/index.js';

/** Exit codes: the work was done (or nothing was due), it failed, the command was wrong, another process holds it. */
export const EXIT = { ok: 0, failed: 1, usage: 2, busy: 3 } as const;

/** Runs the CLI; returns the exit code (`EXIT`: 0 ok, 1 failure, 2 usage error, 3 skipped: another process holds the lock). */
export async function main(argv: readonly string[]): Promise<number> {
  // `wharf --version` answers before the argument parser is even loaded
  if (argv.length === 1 && argv[0] === '--version') {
    process.stdout.write(`${WHARF_VERSION}\n`);
    return EXIT.ok;
  }
  const verbose = argv.includes('--verbose');
  const { default: yargs } = await import('yargs');
  let commands: Awaited<ReturnType<typeof commandsFor>>;
  try {
    commands = await commandsFor(argv);
  } catch (error) {
    return reportError(error, verbose);
  }
  const parser = yargs([...argv])
    .scriptName('wharf')
    .usage("$0 <command> [options]\n\nKeep a SaaS platform's data in its customers' own warehouses.")
    .option('source-url', { type: 'string', describe: 'platform PostgreSQL URL (env WHARF_SOURCE_URL)' })
    .option('source-schema', { type: 'string', describe: 'schema of the platform tables (default public)' })
    .option('staging-url', {
      type: 'string',
      describe: 'file:///dir or s3://bucket/prefix (env WHARF_STAGING_URL)',
    })
    .option('control-url', {
      type: 'string',
      describe: 'control PostgreSQL URL (env WHARF_CONTROL_URL; default: source)',
    })
    .option('control-schema', { type: 'string', describe: 'schema of the control tables (default wharf)' })
    .option('config', { type: 'string', describe: 'wharf.yaml with the same settings' })
    .option('s3-endpoint', { type: 'string', describe: 'S3-compatible endpoint (MinIO, …)' })
    .option('s3-path-style', { type: 'boolean', describe: 'path-style S3 addressing' })
    .option('window', { type: 'string', describe: 'window size, e.g. 1m, 1s (env WHARF_WINDOW)' })
    .option('settle', { type: 'string', describe: 'settle time, e.g. 30s, 0s (env WHARF_SETTLE)' })
    .option('lock-timeout', {
      type: 'string',
      describe: 'longest wait for a lock in a warehouse, e.g. 10s (env WHARF_LOCK_TIMEOUT)',
    })
    .option('statement-timeout', {
      type: 'string',
      describe: 'longest warehouse statement, e.g. 1h (env WHARF_STATEMENT_TIMEOUT)',
    })
    .option('stop-grace', {
      type: 'string',
      describe: 'time a running load gets to finish after SIGTERM, e.g. 20s (env WHARF_STOP_GRACE)',
    })
    .option('json', { type: 'boolean', describe: 'print machine-readable JSON' })
    .option('verbose', { type: 'boolean', describe: 'debug logs and stack traces' })
    .command(commands)
    .demandCommand(1, 'name a command; see wharf --help')
    .recommendCommands()
    .strict()
    .version(WHARF_VERSION)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((message, error) => {
      if (error) throw error;
      throw new UsageError(message, 'run `wharf --help` for usage');
    });
  try {
    await parser.parseAsync();
    return 0;
  } catch (error) {
    return reportError(error, verbose);
  }
}

/**
 * One line on stderr per error: what failed, where, what to do (an `AggregateError` is one line for each of
 * its errors). The stack only with --verbose. The exit code: 2 for a usage error, 3 when the only problem is
 * work another process holds (`BusyError`), 1 otherwise.
 */
export function reportError(error: unknown, verbose: boolean): number {
  const errors = error instanceof AggregateError && error.errors.length > 0 ? error.errors : [error];
  for (const e of errors) {
    const line = e instanceof WharfError ? e.oneLine() : errorMessage(e);
    const label = e instanceof BusyError ? 'skipped' : 'error';
    process.stderr.write(`wharf: ${label}: ${redactUrls(line)}\n`);
    if (verbose && e instanceof Error && e.stack) process.stderr.write(`${redactUrls(e.stack)}\n`);
  }
  if (errors.some((e) => e instanceof WharfError && e.kind === 'usage')) return EXIT.usage;
  if (errors.every((e) => e instanceof BusyError)) return EXIT.busy;
  return EXIT.failed;
}
