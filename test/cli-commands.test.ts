import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { wharf } from './helpers/cli.js';

const version = JSON.parse(readFileSync('package.json', 'utf8')).version as string;
const COMMANDS = [
  'source',
  'seed',
  'connectors',
  'export',
  'load',
  'sync',
  'replay',
  'run',
  'status',
  'retl',
  'keys',
  'serve',
  'tokens',
  'demo',
];

// The CLI loads only the module of the command named on the command line (cli/commands/index.ts): these run the
// binary as a user would and check that each way of naming a command still reaches it.
describe('loading only the command that runs', () => {
  it('wharf --version prints the package version', async () => {
    const v = await wharf(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(version);
  });

  it('wharf --help lists every command; a typo is a usage error that suggests the command', async () => {
    const help = await wharf(['--help']);
    expect(help.code).toBe(0);
    for (const name of COMMANDS) expect(help.stdout).toContain(`wharf ${name}`);
    const typo = await wharf(['statu']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('status');
  });

  it('finds the command past global options and their values, and each command answers its --help', async () => {
    const past = await wharf(['--config', 'missing.yaml', '--window=1m', '--json', 'status', '--help']);
    expect(past.code, past.stderr).toBe(0);
    expect(past.stdout).toContain('wharf status');
    for (const name of COMMANDS) {
      const r = await wharf([name, '--help']);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`wharf ${name}`);
    }
  });
});
