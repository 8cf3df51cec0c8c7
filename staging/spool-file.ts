import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface SpooledFile {
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
}

/**
 * A local file being written before it is published to staging. `out` hashes and counts the bytes on
 * their way to disk; `done` resolves once the file is complete.
 */
export interface Spool {
  readonly out: Transform;
  readonly done: Promise<SpooledFile>;
  discard(): Promise<void>;
}

export function openSpool(dir: string): Spool {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${randomUUID()}.spool`);
  const hash = createHash('sha256');
  let bytes = 0;
  const out = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  const done = pipeline(out, createWriteStream(path)).then(() => ({
    path,
    sha256: hash.digest('hex'),
    bytes,
  }));
  // the caller awaits `done`; keep an early failure from becoming an unhandled rejection meanwhile
  done.catch(() => {});
  return {
    out,
    done,
    discard: async () => {
      out.destroy();
      await rm(path, { force: true });
    },
  };
}
