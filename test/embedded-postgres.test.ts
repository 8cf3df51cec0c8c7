import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../core/embedded-postgres.js';
import {
  binariesAt,
  installedBinaries,
  programPath,
  runnableBinaries,
} from '../core/embedded-postgres-binaries.js';
import { WharfError } from '../core/errors.js';
import { serverUser } from '../core/server-user.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const made: string[] = [];

/** A directory only its owner can enter, as root's home is in most containers. */
function privateDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

async function scalar(url: string, sql: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ v: string }>(sql);
    return r.rows[0]?.v === undefined ? undefined : String(r.rows[0].v);
  } finally {
    await client.end();
  }
}

const busy: Server[] = [];
afterAll(async () => {
  for (const s of busy) await new Promise((done) => s.close(done));
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe('the embedded PostgreSQL started from a checkout its user cannot enter', () => {
  it('runs binaries in a mode-700 directory from one shared copy (as root), or in place (otherwise)', async () => {
    const installed = await installedBinaries();
    const checkout = join(privateDir('wharf-emb-checkout-'), 'package');
    cpSync(dirname(installed.nativeDir), checkout, { recursive: true, verbatimSymlinks: true });
    const binaries = await binariesAt(checkout);
    const cacheDir = privateDir('wharf-emb-cache-');
    const user = await serverUser();
    expect(user !== undefined).toBe(isRoot);

    // two starts at once: one copy, put in place by one of them, and nothing left half-made
    const [first, second] = await Promise.all([
      runnableBinaries(binaries, user, cacheDir),
      runnableBinaries(binaries, user, cacheDir),
    ]);
    expect(second).toBe(first);
    if (!user) {
      expect(first).toBe(binaries.nativeDir);
      expect(readdirSync(cacheDir)).toEqual([]);
      return;
    }
    expect(first).toBe(join(cacheDir, binaries.cacheKey, 'native'));
    expect(readdirSync(cacheDir)).toEqual([binaries.cacheKey]);
    expect(await runnableBinaries(binaries, user, cacheDir)).toBe(first);
    for (const program of ['postgres', 'initdb'] as const) {
      const run = spawnSync(programPath(first, program), ['-V'], {
        uid: user.uid,
        gid: user.gid,
        encoding: 'utf8',
      });
      expect(run.status, `${program}: ${run.stderr}`).toBe(0);
      expect(run.stdout).toContain('PostgreSQL');
    }
    // the installed binaries themselves cannot be run by that user: the copy was needed
    const direct = spawnSync(programPath(binaries.nativeDir, 'postgres'), ['-V'], {
      uid: user.uid,
      gid: user.gid,
    });
    expect(direct.error?.message ?? '').toContain('EACCES');
  });

  it('keeps one copy per release: another version of the package gets a cache entry of its own', async () => {
    const installed = await installedBinaries();
    const other = privateDir('wharf-emb-version-');
    const manifest = JSON.parse(readFileSync(join(dirname(installed.nativeDir), 'package.json'), 'utf8')) as {
      version: string;
    };
    writeFileSync(
      join(other, 'package.json'),
      JSON.stringify({ ...manifest, version: `${manifest.version}-next` }),
    );
    const again = await binariesAt(dirname(installed.nativeDir));
    const next = await binariesAt(other);
    expect(again.cacheKey).toBe(installed.cacheKey);
    expect(next.cacheKey).not.toBe(installed.cacheKey);
    expect(next.cacheKey).toContain(`${manifest.version}-next`);
  });

  it('starts a server whose data directory is asked for in a mode-700 directory, restarts it, and removes it', async () => {
    const requested = join(privateDir('wharf-emb-data-'), 'nested', 'data');
    const first = await startEmbeddedPostgres({ dataDir: requested, port: 0, persistent: true });
    let real: string | undefined;
    try {
      expect(first.dataDir).toBe(requested);
      real = await scalar(first.url, "select current_setting('data_directory') as v");
      // as root the directory lives where the postgres user can reach it, with a link where it was asked for
      expect(lstatSync(requested).isSymbolicLink()).toBe(isRoot);
      expect(real).toBe(realpathSync(requested));
      await scalar(first.url, 'create table kept as select 42 as v');
    } finally {
      await first.stop();
    }
    const second = await startEmbeddedPostgres({ dataDir: requested, port: 0 });
    try {
      expect(await scalar(second.url, 'select v from kept')).toBe('42');
      expect(await scalar(second.url, "select current_setting('max_connections') as v")).toBe('200');
      expect(await scalar(second.url, "select current_setting('fsync') as v")).toBe('off');
      expect(await scalar(second.url, "select current_setting('listen_addresses') as v")).toBe('127.0.0.1');
    } finally {
      await second.stop();
    }
    expect(existsSync(requested)).toBe(false);
    expect(real && existsSync(real)).toBe(false);
  });

  it('reports a failure to start as one WharfError line: a port in use, a data directory that is a file', async () => {
    const server = createServer();
    busy.push(server);
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', () => listening()));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const inUse = await startEmbeddedPostgres({
      dataDir: join(privateDir('wharf-emb-port-'), 'data'),
      port,
    }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(inUse).toBeInstanceOf(WharfError);
    const line = (inUse as WharfError).oneLine();
    expect(line).toContain(
      `cannot start the embedded PostgreSQL: the server stopped before accepting connections on 127.0.0.1:${port}`,
    );
    expect(line).toContain(`check that port ${port} is free`);
    expect(line).not.toContain('\n');

    const parent = privateDir('wharf-emb-file-');
    mkdirSync(join(parent, 'x'));
    const file = join(parent, 'x', 'data');
    writeFileSync(file, 'not a directory');
    const notADir = await startEmbeddedPostgres({ dataDir: file, port: 0 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(notADir).toBeInstanceOf(WharfError);
    expect((notADir as WharfError).oneLine()).toMatch(/^cannot start the embedded PostgreSQL: /);
    expect((notADir as WharfError).oneLine()).not.toContain('\n');
  });
});
