import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandLoaders, commandName, commandsFor } from '../cli/commands/index.js';
import { wharf } from './helpers/cli.js';

const version = JSON.parse(readFileSync('package.json', 'utf8')).version as string;

describe('loading only the command that runs', () => {
  it('finds the command name past global options and their values', () => {
    expect(commandName(['status'])).toBe('status');
    expect(commandName(['--config', 'wharf.yaml', 'run', '--once'])).toBe('run');
    expect(commandName(['--json', '--window=1m', 'connectors', 'list'])).toBe('connectors');
    expect(commandName(['--source-url', 'postgres://x/y', '--verbose', 'retl', 'run'])).toBe('retl');
    expect(commandName(['--version'])).toBeUndefined();
    expect(commandName(['--help'])).toBeUndefined();
  });

  it('gives yargs the named command only, none for --version, all of them for help or an unknown name', async () => {
    expect((await commandsFor(['status'])).map((c) => c.command)).toEqual(['status']);
    expect((await commandsFor(['--config', 'w.yaml', 'seed'])).map((c) => c.command)).toEqual(['seed']);
    expect(await commandsFor(['--version'])).toEqual([]);
    expect((await commandsFor(['--help'])).length).toBe(commandLoaders.size);
    expect((await commandsFor(['statu'])).length).toBe(commandLoaders.size);
  });

  it('every command is listed by name: the first word of its yargs command is the name it is loaded by', async () => {
    for (const [name, load] of commandLoaders) {
      expect(String((await load()).command).split(' ')[0]).toBe(name);
    }
  });

  it('wharf --version prints the package version; --help still lists every command; a typo is suggested', async () => {
    const v = await wharf(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(version);
    const help = await wharf(['--help']);
    expect(help.code).toBe(0);
    for (const name of commandLoaders.keys()) expect(help.stdout).toContain(`wharf ${name}`);
    const typo = await wharf(['statu']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('status');
  });
});
