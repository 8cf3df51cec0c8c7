import { type ChildProcess, spawn } from 'node:child_process';
import pg from 'pg';
import { sleep } from './wharf.js';

/** A `wharf` process left running (`wharf run`, a long `wharf export`): its output so far and how it ended. */
export interface WharfProcess {
  readonly child: ChildProcess;
  /** Everything written on stdout and stderr so far. */
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  running(): boolean;
}

/** Starts bin/wharf.js with `args` and `env` (added to this process's environment). */
export function startWharf(args: readonly string[], env: Record<string, string | undefined>): WharfProcess {
  const child = spawn(process.execPath, ['bin/wharf.js', ...args], {
    env: { ...process.env, WHARF_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
  };
}

/**
 * Polls `check` until it returns a value other than undefined / false (errors count as "not yet": a server may
 * be restarting). No deadline of its own: the test's timeout is the limit, so nothing here is a timed assertion.
 */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  intervalMs = 100,
): Promise<T> {
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch {
      // not yet
    }
    await sleep(intervalMs);
  }
}

/** A client for the test's own sessions (an analyst, a lock holder), that survives its server going away. */
export async function session(url: string, applicationName = 'wharf-test-session'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The non-log lines of a wharf process's stderr (JSON log lines and pretty log lines left out). */
export function errorLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => !l.startsWith('{"level"'));
}
