import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../run-command.js';
import { connectorsCommand } from './connectors.js';
import { demoCommand } from './demo.js';
import { exportCommand } from './export.js';
import { keysCommand } from './keys.js';
import { loadCommand, replayCommand, syncCommand } from './load.js';
import { retlCommand } from './retl.js';
import { runCommand } from './run.js';
import { serveCommand } from './serve.js';
import { seedCommand, sourceCommand } from './source.js';
import { statusCommand } from './status.js';
import { tokensCommand } from './tokens.js';

// biome-ignore lint/suspicious/noExplicitAny: yargs command modules have differing argument types
export const commands: CommandModule<GlobalArgs, any>[] = [
  sourceCommand,
  seedCommand,
  connectorsCommand,
  exportCommand,
  loadCommand,
  syncCommand,
  replayCommand,
  runCommand,
  statusCommand,
  retlCommand,
  keysCommand,
  serveCommand,
  tokensCommand,
  demoCommand,
];
