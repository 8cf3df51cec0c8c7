import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { errorMessage, WharfError } from './errors.js';

const run = promisify(execFile);

/** The system user an embedded PostgreSQL runs as when Wharf runs as root (PostgreSQL refuses root). */
export interface ServerUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

const NAME = 'postgres';

/**
 * As root, the `postgres` system user, created (with its group) when missing; otherwise `undefined`: the
 * server then runs as the current user.
 */
export async function serverUser(): Promise<ServerUser | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const found = await lookUp(NAME);
  if (found) return found;
  try {
    await run('groupadd', ['-f', NAME]);
    await run('useradd', ['--system', '-g', NAME, NAME]);
  } catch (error) {
    throw new WharfError(
      `cannot start the embedded PostgreSQL: it does not run as root, and the system user ${NAME} could not be created (${errorMessage(error).split('\n')[0]})`,
      { cause: error, hint: `create a system user named ${NAME}, or run as a user other than root` },
    );
  }
  const created = await lookUp(NAME);
  if (!created) {
    throw new WharfError(
      `cannot start the embedded PostgreSQL: the system user ${NAME} was created but is not found`,
      {
        hint: `check that \`id ${NAME}\` works`,
      },
    );
  }
  return created;
}

async function lookUp(name: string): Promise<ServerUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { name, uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  } catch {
    return undefined;
  }
}

/**
 * Runs a `/bin/sh` script as `user` (with its primary group only, as Node's spawn does for the server
 * itself) and returns `undefined` when it exits 0, else what went wrong: its last line on stderr, or the
 * spawn error's code. Asking the system is exact where reading mode bits is not (ACLs, noexec mounts).
 */
export function problemAsUser(
  user: ServerUser,
  script: string,
  args: readonly string[],
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', script, 'sh', ...args], {
      uid: user.uid,
      gid: user.gid,
      cwd: '/',
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-2000);
    });
    child.once('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? errorMessage(error)));
    child.once('close', (code, signal) => {
      if (code === 0) return resolve(undefined);
      // without the shell's own "sh: 1: " prefix
      const last = stderr
        .trim()
        .split('\n')
        .pop()
        ?.replace(/^sh: \d+: /, '')
        .trim();
      resolve(last || `exit ${code ?? signal}`);
    });
  });
}
