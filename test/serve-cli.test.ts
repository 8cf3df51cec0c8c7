import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../core/embedded-postgres.js';
import { wharf } from './helpers/cli.js';
import { createDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/wharf.js';

let env: Record<string, string>;
const children: ChildProcess[] = [];

/** Starts `wharf ARGS` and resolves once it logs where the API listens. */
function startWharf(
  args: string[],
  extra: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['bin/wharf.js', ...args], {
    env: { ...process.env, ...env, ...extra, WHARF_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d) => {
      err += d;
      const m = /API and console on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) resolve({ child, url: m[1]! });
    });
    child.on('exit', (code) => reject(new Error(`wharf ${args.join(' ')} exited ${code}: ${err}`)));
  });
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });

beforeAll(async () => {
  env = {
    WHARF_SOURCE_URL: await createDatabase('wharf_serve_cli'),
    WHARF_STAGING_URL: `file://${tempDir('wharf-serve-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_SETTLE: '0s',
  };
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('wharf serve and wharf tokens', () => {
  it('serves with WHARF_API_TOKEN as an admin token and with a token from `tokens create`; stops on SIGTERM', async () => {
    const adminToken = randomBytes(24).toString('hex');
    const port = await freePort();
    const { child, url } = await startWharf(['serve', '--port', String(port), '--host', '127.0.0.1'], {
      WHARF_API_TOKEN: adminToken,
    });
    expect(url).toBe(`http://127.0.0.1:${port}`);
    const session = await fetch(`${url}/v1/session`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(await session.json()).toMatchObject({ admin: true, account: null });
    expect((await fetch(`${url}/v1/session`)).status).toBe(401);

    const created = await wharf(['tokens', 'create', '--account', '7', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    const { token } = JSON.parse(created.stdout) as { token: string };
    expect(token).toMatch(/^wharf_\d+_[A-Za-z0-9_-]{43}$/);
    const mine = await fetch(`${url}/v1/session`, { headers: { authorization: `Bearer ${token}` } });
    expect(await mine.json()).toMatchObject({ admin: false, account: '7' });

    const revoked = await wharf(['tokens', 'revoke', JSON.parse(created.stdout).id], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await fetch(`${url}/v1/session`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(
      401,
    );
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });

  it('`tokens create` needs --admin or --account (exit 2), and a short WHARF_API_TOKEN is refused', async () => {
    const none = await wharf(['tokens', 'create'], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--admin or --account');
    const admin = await wharf(['tokens', 'create', '--admin', '--json'], env);
    expect(admin.code, admin.stderr).toBe(0);
    expect(JSON.parse(admin.stdout)).toMatchObject({ account: null });
    const short = await wharf(['serve', '--port', '0'], { WHARF_API_TOKEN: 'short' });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('WHARF_API_TOKEN is too short');
  });

  it('`wharf run --api-port` serves the same API beside the scheduler', async () => {
    const adminToken = randomBytes(24).toString('hex');
    const { child, url } = await startWharf(
      ['run', '--every', '1h', '--api-port', String(await freePort())],
      {
        WHARF_API_TOKEN: adminToken,
      },
    );
    const status = await fetch(`${url}/v1/status`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ total: 0, connectors: [] });
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });
});
