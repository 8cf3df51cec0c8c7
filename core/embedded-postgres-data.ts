import { createHash } from 'node:crypto';
import {
  chown,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  realpath,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { defaultCacheDir, isAlive, ownDirectory } from './embedded-postgres-binaries.js';
import { WharfError } from './errors.js';
import { problemAsUser, type ServerUser } from './server-user.js';

/** Where a server's data directory is. */
export interface DataPlace {
  /** The directory the server is given. */
  readonly dir: string;
  /** The path asked for: `dir` itself, or a symbolic link to it when it had to be moved. */
  readonly requested: string;
  /** No cluster there yet: initdb must run. */
  readonly fresh: boolean;
  /** Made by this start: removed again if the start fails. */
  readonly created: boolean;
}

/**
 * Prepares the data directory `requested` (absolute) for a server running as `user` (`undefined`: the
 * current user). When that user cannot reach where it was asked for (a checkout in a mode-700 home), the
 * directory is made in `cacheDir/data/` instead, with a symbolic link at `requested`; one such directory
 * per requested path, and those whose link is gone are removed.
 */
export async function placeDataDir(
  requested: string,
  user: ServerUser | undefined,
  cacheDir: string = defaultCacheDir(),
): Promise<DataPlace> {
  if (!user) {
    await mkdir(dirname(requested), { recursive: true });
    const created = !(await exists(requested));
    return {
      dir: requested,
      requested,
      fresh: created || !(await exists(join(requested, 'PG_VERSION'))),
      created,
    };
  }
  const st = await lstat(requested).catch(() => undefined);
  if (st?.isSymbolicLink()) {
    const target = await realpath(requested).catch(() => undefined);
    if (target) return useExisting(target, requested, user);
    await rm(requested, { force: true });
  } else if (st) {
    return useExisting(requested, requested, user);
  }
  await mkdir(dirname(requested), { recursive: true });
  if ((await problemAsUser(user, 'test -x "$1"', [dirname(requested)])) === undefined) {
    await mkdir(requested, { mode: 0o700 });
    await chown(requested, user.uid, user.gid);
    return { dir: requested, requested, fresh: true, created: true };
  }
  return relocate(requested, user, join(cacheDir, 'data'));
}

async function useExisting(dir: string, requested: string, user: ServerUser): Promise<DataPlace> {
  if (!(await stat(dir)).isDirectory()) {
    throw new WharfError(
      `cannot start the embedded PostgreSQL: its data directory ${requested} is not a directory`,
      {
        hint: `remove ${requested}, or use another data directory`,
      },
    );
  }
  const fresh = !(await exists(join(dir, 'PG_VERSION')));
  if (fresh) await chown(dir, user.uid, user.gid);
  if ((await problemAsUser(user, 'test -x "$1" && test -w "$1"', [dir])) !== undefined) {
    throw new WharfError(
      `cannot start the embedded PostgreSQL: user ${user.name} cannot enter or write its data directory ${dir}`,
      { hint: `remove ${requested}, or use a data directory that user can reach` },
    );
  }
  return { dir, requested, fresh, created: false };
}

async function relocate(requested: string, user: ServerUser, dataRoot: string): Promise<DataPlace> {
  await ownDirectory(dirname(dataRoot), 0o755);
  await ownDirectory(dataRoot, 0o711);
  await removeUnlinked(dataRoot);
  const dir = join(dataRoot, createHash('sha256').update(requested).digest('hex').slice(0, 16));
  // the same path asked for again, its link removed since (`wharf demo` starts afresh)
  const pid = await runningPid(dir);
  if (pid !== undefined) {
    throw new WharfError(
      `cannot start the embedded PostgreSQL: a server (pid ${pid}) still runs on ${dir}, the data directory for ${requested}`,
      { hint: `stop it first (kill -INT ${pid})` },
    );
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  await chown(dir, user.uid, user.gid);
  if ((await problemAsUser(user, 'test -x "$1" && test -w "$1"', [dir])) !== undefined) {
    throw new WharfError(
      `cannot start the embedded PostgreSQL: user ${user.name} can reach neither ${dirname(requested)} nor ${dir}`,
      { hint: 'set TMPDIR to a directory that user can enter, such as /tmp' },
    );
  }
  await writeFile(`${dir}.origin`, requested, { mode: 0o600 });
  await symlink(dir, requested);
  return { dir, requested, fresh: true, created: true };
}

/** Removes a data directory, and its link and note when it was moved. */
export async function discardDataDir(place: DataPlace): Promise<void> {
  await rm(place.dir, { recursive: true, force: true });
  if (place.dir === place.requested) return;
  await rm(place.requested, { force: true });
  await rm(`${place.dir}.origin`, { force: true });
}

/** Moved data directories whose link (named in `<dir>.origin`) is gone, and whose server is not running. */
async function removeUnlinked(dataRoot: string): Promise<void> {
  for (const name of await readdir(dataRoot)) {
    if (!name.endsWith('.origin')) continue;
    const dir = join(dataRoot, name.slice(0, -'.origin'.length));
    const origin = await readFile(join(dataRoot, name), 'utf8').catch(() => '');
    const linked = origin ? await readlink(origin).catch(() => undefined) : undefined;
    if (linked !== undefined && relative(linked, dir) === '') continue;
    if ((await runningPid(dir)) !== undefined) continue;
    await rm(dir, { recursive: true, force: true });
    await rm(join(dataRoot, name), { force: true });
  }
}

/** The pid in a data directory's postmaster.pid, when that process is alive. */
async function runningPid(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
