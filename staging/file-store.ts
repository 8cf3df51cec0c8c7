import { createHash, randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { constants } from 'node:fs';
import { access, copyFile, link, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AlreadyExistsError, IntegrityError, WharfError } from '../core/errors.js';
import type { ByteRange, GetOptions, PutOptions, StagingStore, StoredObject } from './staging-store.js';

/** Where the file store lives when no staging URL is given. */
export const DEFAULT_STAGING_DIR = './wharf-data/staging';

/** The hint every refused overwrite carries. */
export const IMMUTABLE_HINT = 'staging files are immutable; export a new revision instead';

/** Names of in-flight writes; never listed, never valid as a key segment. */
const TEMP_PREFIX = '.wharf-tmp-';

/**
 * Staging in a local directory (`file:///abs/path` or a plain path). A write copies the file to a
 * temporary name beside its destination, syncs it, then hard-links it into place: the link fails when
 * the key exists, so a key is written at most once and a reader never sees a partial file.
 *
 * @example
 * const store = new FileStagingStore('file:///var/lib/wharf/staging');
 * await store.putFile('windows/w1/clicks.csv.gz', '/tmp/spool/1.spool', { sha256 });
 */
export class FileStagingStore implements StagingStore {
  /** The absolute directory holding the objects. */
  readonly root: string;
  readonly url: string;

  constructor(location: string = DEFAULT_STAGING_DIR) {
    this.root = resolve(location.startsWith('file:') ? fileURLToPath(location) : location);
    this.url = pathToFileURL(this.root).href;
  }

  async putFile(key: string, localPath: string, options: PutOptions): Promise<StoredObject> {
    const target = this.#path(key);
    const dir = dirname(target);
    const temp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    await localFileSize(localPath, key);
    let linking = false;
    try {
      await mkdir(dir, { recursive: true });
      await copyFile(localPath, temp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
      const handle = await open(temp, 'r+');
      let bytes: number;
      try {
        await handle.sync();
        bytes = (await handle.stat()).size;
      } finally {
        await handle.close();
      }
      linking = true;
      await link(temp, target);
      await syncDirectory(dir);
      return { key, bytes, sha256: options.sha256 };
    } catch (error) {
      if (linking && codeOf(error) === 'EEXIST') {
        throw new AlreadyExistsError(`staging object ${key} already exists in ${this.url}`, {
          context: { key },
          hint: IMMUTABLE_HINT,
          cause: error,
        });
      }
      throw fsError(error, `cannot write staging object ${key} to ${this.url}`, key);
    } finally {
      await unlink(temp).catch(() => {});
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const path = this.#path(key);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      throw fsError(error, `cannot read staging object ${key} from ${this.url}`, key);
    }
    let size: number;
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw missing(key);
      size = info.size;
      if (options.range) checkRange(key, options.range, size);
    } catch (error) {
      await handle.close();
      throw fsError(error, `cannot read staging object ${key} from ${this.url}`, key);
    }
    const { range } = options;
    const source =
      range === undefined
        ? handle.createReadStream()
        : range.length === 0
          ? emptyRead(handle)
          : handle.createReadStream({ start: range.offset, end: range.offset + range.length - 1 });
    const expected = { key, bytes: range?.length ?? size, sha256: options.sha256, range };
    return verifyingStream(source, expected, (error) =>
      fsError(error, `cannot read staging object ${key} from ${this.url}`, key),
    );
  }

  async *list(prefix: string): AsyncIterable<string> {
    validatePrefix(prefix);
    const cut = prefix.lastIndexOf('/') + 1;
    const base = prefix.slice(0, cut);
    yield* this.#walk(base, prefix.slice(cut));
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const path = this.#path(key);
    try {
      const info = await stat(path);
      return info.isFile() ? { key, bytes: info.size } : undefined;
    } catch (error) {
      const code = codeOf(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(error, `cannot stat staging object ${key} in ${this.url}`, key);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.#path(key));
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return;
      throw fsError(error, `cannot delete staging object ${key} from ${this.url}`, key);
    }
  }

  /** Creates the root if needed and checks it can be read and written. */
  async check(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      await access(this.root, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch (error) {
      throw fsError(error, `staging directory ${this.root} is not usable`);
    }
  }

  /** Keys under `dir` (a key prefix ending in `/`, or empty) whose first segment starts with `start`. */
  async *#walk(dir: string, start: string): AsyncGenerator<string> {
    let entries: Dirent[];
    try {
      entries = await readdir(join(this.root, dir), { withFileTypes: true });
    } catch (error) {
      const code = codeOf(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(error, `cannot list ${dir || '/'} in ${this.url}`);
    }
    // A directory sorts as `name/`, so the walk yields keys in the byte order of the whole key.
    const names = entries
      .filter((entry) => entry.name.startsWith(start) && !entry.name.startsWith(TEMP_PREFIX))
      .filter((entry) => entry.isDirectory() || entry.isFile())
      .map((entry) => (entry.isDirectory() ? `${entry.name}/` : entry.name))
      .sort(compareKeys);
    for (const name of names) {
      if (name.endsWith('/')) yield* this.#walk(dir + name, '');
      else yield dir + name;
    }
  }

  #path(key: string): string {
    validateKey(key);
    return this.root + sep + key.split('/').join(sep);
  }
}

/** The size of a local file about to be staged; a clear error when it cannot be read. */
export async function localFileSize(localPath: string, key: string): Promise<number> {
  try {
    const info = await stat(localPath);
    if (info.isFile()) return info.size;
  } catch (error) {
    if (codeOf(error) === 'ENOENT') {
      throw new WharfError(`local file ${localPath} for staging object ${key} does not exist`, {
        context: { key },
        cause: error,
        hint: 'the file was removed before it was staged; run the export again',
      });
    }
    throw fsError(error, `cannot read local file ${localPath} for staging object ${key}`, key);
  }
  throw new WharfError(`cannot stage ${localPath} as ${key}: it is not a regular file`, { context: { key } });
}

/** Orders keys as S3 does: by their UTF-8 bytes. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Checks a staging key: relative, `/`-separated, no empty, `.` or `..` segment, no backslash, no NUL.
 * Throws a terminal `WharfError` naming the key otherwise.
 */
export function validateKey(key: string): void {
  const problem = keyProblem(key, false);
  if (problem) {
    throw new WharfError(`invalid staging key ${JSON.stringify(key)}: ${problem}`, {
      context: { key },
      hint: 'keys are relative paths like windows/<window>/<stream>/<file>',
    });
  }
}

/** Checks a list prefix: like a key, but may be empty and may end with `/`. */
export function validatePrefix(prefix: string): void {
  if (prefix === '') return;
  const problem = keyProblem(prefix, true);
  if (problem) {
    throw new WharfError(`invalid staging prefix ${JSON.stringify(prefix)}: ${problem}`, {
      hint: 'prefixes are relative paths like windows/',
    });
  }
}

function keyProblem(key: string, isPrefix: boolean): string | undefined {
  if (key.length === 0) return 'it is empty';
  if (key.includes('\0')) return 'it contains a NUL character';
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.startsWith('/')) return 'it is absolute';
  const segments = key.split('/');
  if (isPrefix && segments.at(-1) === '') segments.pop();
  for (const segment of segments) {
    if (segment === '..' || segment === '.') return `it contains a "${segment}" segment`;
    if (segment === '') return 'it contains an empty segment';
    if (segment.startsWith(TEMP_PREFIX)) return `segments may not start with ${TEMP_PREFIX}`;
  }
  return undefined;
}

/** What a reader expects of an object's bytes. */
export interface ExpectedContent {
  readonly key: string;
  /** Hex sha256; unchecked when undefined. */
  readonly sha256?: string | undefined;
  /** Byte count; unchecked when undefined. */
  readonly bytes?: number | undefined;
  /** The range read, when not the whole object (for messages). */
  readonly range?: ByteRange | undefined;
}

/**
 * Refuses a range that does not lie inside an object of `size` bytes, with an `IntegrityError` (the manifest
 * promised bytes the object does not hold).
 */
export function checkRange(key: string, range: ByteRange, size: number): void {
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new WharfError(`invalid byte range ${offset}+${length} of staging object ${key}`, {
      context: { key },
    });
  }
  if (offset + length > size) {
    throw new IntegrityError(
      `staging object ${key} has ${size} bytes; bytes ${describeRange(range)} are not all there`,
      { context: { key }, hint: 'the stored file was truncated or replaced; export the window again' },
    );
  }
}

/** `a-b` (inclusive, as in an HTTP Range header). */
export function describeRange(range: ByteRange): string {
  return `${range.offset}-${range.offset + range.length - 1}`;
}

/**
 * Passes `source` through while hashing and counting it; at the end, fails with an `IntegrityError`
 * naming the key when the sha256 or byte count differs from `expected`. Errors of `source` reach the
 * reader through `mapError`.
 */
export function verifyingStream(
  source: Readable,
  expected: ExpectedContent,
  mapError: (error: unknown) => Error = (error) => error as Error,
): Readable {
  const hash = expected.sha256 === undefined ? undefined : createHash('sha256');
  const what =
    expected.range === undefined
      ? `staging object ${expected.key}`
      : `bytes ${describeRange(expected.range)} of staging object ${expected.key}`;
  let bytes = 0;
  const out = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash?.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      if (expected.bytes !== undefined && bytes !== expected.bytes) {
        callback(
          new IntegrityError(`${what} has ${bytes} bytes, expected ${expected.bytes}`, {
            context: { key: expected.key },
            hint: 'the stored file was changed or truncated; export the window again',
          }),
        );
        return;
      }
      const actual = hash?.digest('hex');
      if (actual !== undefined && actual !== expected.sha256?.toLowerCase()) {
        callback(
          new IntegrityError(`${what} has sha256 ${actual}, expected ${expected.sha256}`, {
            context: { key: expected.key },
            hint: 'the stored file was changed; export the window again',
          }),
        );
        return;
      }
      callback();
    },
  });
  source.once('error', (error) => out.destroy(mapError(error)));
  out.once('close', () => {
    if (!source.destroyed) source.destroy();
  });
  source.pipe(out);
  return out;
}

/** An empty read that closes `handle` (a zero-length range). */
function emptyRead(handle: Awaited<ReturnType<typeof open>>): Readable {
  const empty = Readable.from([]);
  empty.once('close', () => {
    handle.close().catch(() => {});
  });
  return empty;
}

const MISSING_HINT =
  'check --staging-url; if the files of a window are gone, export it again as a new revision: wharf export --window ID';

function missing(key: string): WharfError {
  return new WharfError(`staging object ${key} does not exist`, {
    context: { key },
    code: 'NoSuchKey',
    hint: MISSING_HINT,
  });
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A Node file-system error as a `WharfError`, classified by its code. */
function fsError(error: unknown, message: string, key?: string): WharfError {
  if (error instanceof WharfError) return error;
  const code = codeOf(error);
  const context = key === undefined ? {} : { key };
  const base = { context, cause: error, ...(code === undefined ? {} : { code }) };
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new WharfError(`${message}: it does not exist`, { ...base, hint: MISSING_HINT });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new WharfError(`${message}: permission denied (${code})`, {
        ...base,
        hint: 'give the user running wharf read and write access to the staging directory',
      });
    case 'ENOSPC':
    case 'EDQUOT':
      return new WharfError(`${message}: no space left (${code})`, {
        ...base,
        kind: 'transient',
        hint: 'free disk space or move staging with --staging-url',
      });
    case 'EEXIST':
      return new WharfError(`${message}: a file is in the way (${code})`, base);
    case 'EMFILE':
    case 'ENFILE':
    case 'EBUSY':
    case 'EAGAIN':
    case 'EIO':
      return new WharfError(`${message} (${code})`, { ...base, kind: 'transient' });
    default:
      return new WharfError(`${message}${code ? ` (${code})` : ''}`, base);
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // some file systems cannot sync a directory; the link itself is already in place
  } finally {
    await handle.close();
  }
}
