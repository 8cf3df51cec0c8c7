import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../run-command.js';

// biome-ignore lint/suspicious/noExplicitAny: yargs command modules have differing argument types
type AnyCommand = CommandModule<GlobalArgs, any>;

/**
 * The commands, by the name typed first, each loaded only when it runs: a command's module pulls in its stages
 * and their drivers (the AWS SDK, mssql, the HTTP server…), so `wharf --version` or `wharf status` need not load
 * what `wharf serve` needs. In the order `wharf --help` lists them.
 */
export const commandLoaders: ReadonlyMap<string, () => Promise<AnyCommand>> = new Map<
  string,
  () => Promise<AnyCommand>
>([
  ['source', async () => (await import('./source.js')).sourceCommand],
  ['seed', async () => (await import('./source.js')).seedCommand],
  ['connectors', async () => (await import('./connectors.js')).connectorsCommand],
  ['export', async () => (await import('./export.js')).exportCommand],
  ['load', async () => (await import('./load.js')).loadCommand],
  ['sync', async () => (await import('./load.js')).syncCommand],
  ['replay', async () => (await import('./load.js')).replayCommand],
  ['run', async () => (await import('./run.js')).runCommand],
  ['status', async () => (await import('./status.js')).statusCommand],
  ['retl', async () => (await import('./retl.js')).retlCommand],
  ['keys', async () => (await import('./keys.js')).keysCommand],
  ['serve', async () => (await import('./serve.js')).serveCommand],
  ['tokens', async () => (await import('./tokens.js')).tokensCommand],
  ['demo', async () => (await import('./demo.js')).demoCommand],
]);

/** Global options that take a value (`--config FILE`), so that FILE is not taken for the command's name. */
const VALUE_OPTIONS = new Set([
  '--source-url',
  '--source-schema',
  '--staging-url',
  '--control-url',
  '--control-schema',
  '--config',
  '--s3-endpoint',
  '--window',
  '--settle',
  '--lock-timeout',
  '--statement-timeout',
  '--stop-grace',
]);

/** The command named on the command line, or undefined when none is (e.g. `wharf --version`, `wharf --help`). */
export function commandName(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return argv[i + 1];
    if (!arg.startsWith('-')) return arg;
    if (VALUE_OPTIONS.has(arg)) i++;
  }
  return undefined;
}

/**
 * The command modules to give yargs for this command line: only the named command's when it is known; none for
 * a bare `--version`; all of them otherwise (help, an unknown command and its suggestions).
 */
export async function commandsFor(argv: readonly string[]): Promise<AnyCommand[]> {
  const name = commandName(argv);
  const load = name === undefined ? undefined : commandLoaders.get(name);
  if (load) return [await load()];
  if (name === undefined && argv.includes('--version') && !argv.includes('--help')) {
    return [];
  }
  return Promise.all([...commandLoaders.values()].map((l) => l()));
}
