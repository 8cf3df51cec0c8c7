import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chown, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { installedBinaries, programPath, runnableBinaries } from './embedded-postgres-binaries.js';
import { type DataPlace, discardDataDir, placeDataDir } from './embedded-postgres-data.js';
import { errorMessage, WharfError } from './errors.js';
import { type ServerUser, serverUser } from './server-user.js';

export interface EmbeddedServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  readonly dataDir: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly user?: string;
  readonly password?: string;
  /** Keep the data directory when stopping. */
  readonly persistent?: boolean;
  /**
   * Server settings (`-c name=value`) over the defaults: 127.0.0.1 only, max_connections=200, fsync=off. A null
   * value leaves the setting to the server's configuration files (so `ALTER SYSTEM` can change it).
   */
  readonly settings?: Readonly<Record<string, string | null>>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const DEFAULT_SETTINGS: Readonly<Record<string, string>> = {
  listen_addresses: '127.0.0.1',
  max_connections: '200',
  fsync: 'off',
};

/** Messages in English whatever the system's locale: readiness is read from the server's log. */
const CHILD_ENV = { ...process.env, LC_MESSAGES: 'C' };

/**
 * Starts a real PostgreSQL from the binaries that come with the `embedded-postgres` package, on 127.0.0.1.
 * As root it runs the server as a `postgres` system user (PostgreSQL refuses to run as root); when that user
 * cannot reach the checkout (a mode-700 home), the binaries are copied once per release to a directory it can
 * reach (under TMPDIR), and so is the data directory (with a symbolic link where it was asked for). Any
 * failure is one `WharfError` line.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedServer> {
  try {
    const port = options.port || (await freePort());
    const user = options.user ?? 'postgres';
    const password = options.password ?? 'postgres';
    const runAs = await serverUser();
    const nativeDir = await runnableBinaries(await installedBinaries(), runAs);
    const place = await placeDataDir(resolve(options.dataDir), runAs);
    const settings = { ...DEFAULT_SETTINGS, ...options.settings };
    let server: ChildProcess;
    try {
      if (place.fresh) await initdb(nativeDir, place.dir, runAs, user, password);
      server = await launch(nativeDir, place.dir, port, settings, runAs);
    } catch (error) {
      if (place.created) await discardDataDir(place);
      throw error;
    }
    return {
      url: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
      port,
      dataDir: place.requested,
      stop: () => stop(server, place, options.persistent ?? false),
    };
  } catch (error) {
    if (error instanceof WharfError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new WharfError(`cannot start the embedded PostgreSQL: ${errorMessage(error)}`, {
      cause: error,
      ...(code ? { code } : {}),
      hint: `check the data directory ${options.dataDir}`,
    });
  }
}

async function initdb(
  nativeDir: string,
  dataDir: string,
  runAs: ServerUser | undefined,
  user: string,
  password: string,
): Promise<void> {
  // beside the data directory (initdb wants that empty), readable by the server's user only
  const pwfile = join(dirname(dataDir), `.${basename(dataDir)}.pw-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  try {
    if (runAs) await chown(pwfile, runAs.uid, runAs.gid);
    const args = [`--pgdata=${dataDir}`, '--auth=password', `--username=${user}`, `--pwfile=${pwfile}`];
    const child = spawnAs(programPath(nativeDir, 'initdb'), [...args, '--lc-messages=C'], nativeDir, runAs);
    const log = tail(child);
    const { code, signal } = await exited(child, 'initdb', runAs);
    if (code !== 0) {
      throw new WharfError(
        `cannot start the embedded PostgreSQL: initdb failed for ${dataDir} (${ended(code, signal)}: ${log.message()})`,
        { hint: `remove ${dataDir}, or use another data directory` },
      );
    }
  } finally {
    await rm(pwfile, { force: true });
  }
}

const READY = 'database system is ready to accept connections';

async function launch(
  nativeDir: string,
  dataDir: string,
  port: number,
  settings: Readonly<Record<string, string | null>>,
  runAs: ServerUser | undefined,
): Promise<ChildProcess> {
  const flags = Object.entries(settings).flatMap(([name, value]) =>
    value === null ? [] : ['-c', `${name}=${value}`],
  );
  const child = spawnAs(
    programPath(nativeDir, 'postgres'),
    ['-D', dataDir, '-p', String(port), ...flags],
    nativeDir,
    runAs,
  );
  const log = tail(child);
  await new Promise<void>((resolveReady, reject) => {
    const onLine = (line: string) => {
      if (!line.includes(READY)) return;
      log.lines.off('line', onLine);
      resolveReady();
    };
    log.lines.on('line', onLine);
    exited(child, 'postgres', runAs).then(({ code, signal }) => {
      reject(
        new WharfError(
          `cannot start the embedded PostgreSQL: the server stopped before accepting connections on 127.0.0.1:${port} (${ended(code, signal)}: ${log.message()})`,
          { hint: `check that port ${port} is free and the data directory ${dataDir} is a PostgreSQL one` },
        ),
      );
    }, reject);
  });
  return child;
}

async function stop(child: ChildProcess, place: DataPlace, persistent: boolean): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    // SIGINT: PostgreSQL's fast shutdown
    await new Promise<void>((resolveExit) => {
      child.once('exit', () => resolveExit());
      child.kill('SIGINT');
    });
  }
  if (!persistent) await discardDataDir(place);
}

function spawnAs(
  program: string,
  args: readonly string[],
  cwd: string,
  runAs: ServerUser | undefined,
): ChildProcess {
  const child = spawn(program, args, {
    cwd,
    env: CHILD_ENV,
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  // an 'error' without a listener would end the process; exited() reports it
  child.on('error', () => {});
  return child;
}

/** Resolves when the child ends; rejects with one line when it could not be started at all. */
function exited(
  child: ChildProcess,
  name: string,
  runAs: ServerUser | undefined,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolveExit, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      const as = runAs ? ` as user ${runAs.name}` : '';
      reject(
        new WharfError(
          `cannot start the embedded PostgreSQL: ${name} could not be run${as} (${error.code ?? error.message} on ${child.spawnfile})`,
          {
            cause: error,
            ...(error.code ? { code: error.code } : {}),
            hint: runAs
              ? `make ${dirname(child.spawnfile)} reachable by user ${runAs.name}, or set TMPDIR to a directory it can enter`
              : 'run `npm ci` again',
          },
        ),
      );
    });
    child.once('close', (code, signal) => resolveExit({ code, signal }));
  });
}

function ended(code: number | null, signal: NodeJS.Signals | null): string {
  return code === null ? `signal ${signal}` : `exit ${code}`;
}

/** What PostgreSQL and initdb put before an error. */
const LEVEL = /\b(FATAL|PANIC|ERROR|error):/;

interface LogTail {
  /** Emits 'line' for each line of the child's stderr. */
  readonly lines: EventEmitter;
  /** The line to quote when the child failed: its first error line, else its last line. */
  message(): string;
}

/** Reads the child's stderr to its end (a full pipe would stop the server) and keeps its last lines. */
function tail(child: ChildProcess): LogTail {
  const kept: string[] = [];
  const lines = new EventEmitter();
  let partial = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      kept.push(line);
      if (kept.length > 50) kept.shift();
      lines.emit('line', line);
    }
  });
  return {
    lines,
    message: () => {
      const all = [...kept, partial].map((l) => l.trim()).filter(Boolean);
      const first = all.find((l) => LEVEL.test(l));
      // without the log line's prefix (time, pid)
      if (first) return first.slice(first.search(LEVEL)).replace(/\s+/g, ' ');
      return all.at(-1) ?? 'no message';
    },
  };
}
