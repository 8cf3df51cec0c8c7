import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { wharf } from './helpers/cli.js';
import { createDatabase, query } from './helpers/databases.js';
import { tempDir } from './helpers/wharf.js';

let sourceUrl: string;
let warehouseUrl: string;
let env: Record<string, string>;
let connectorId: string;

interface RunRow {
  kind: string;
  connector_id: string | null;
  status: string;
  windows: number;
  rows: string;
}

const runs = () =>
  query<RunRow>(sourceUrl, 'select kind, connector_id, status, windows, rows from wharf.runs order by id');

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_runs_src');
  warehouseUrl = await createDatabase('wharf_runs_wh');
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-runs-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1m',
    WHARF_SETTLE: '0s',
    WHARF_LOG_LEVEL: 'warn',
  };
  expect((await wharf(['seed', '--accounts', '1', '--rows', '500', '--seed', '4'], env)).code).toBe(0);
  const add = await wharf(
    [
      'connectors',
      'add',
      '--account',
      '1',
      '--engine',
      'postgres',
      '--url',
      `${warehouseUrl}?sslmode=disable`,
      '--json',
    ],
    env,
  );
  expect(add.code, add.stderr).toBe(0);
  connectorId = (JSON.parse(add.stdout) as { id: string }).id;
});

describe('run history, whoever starts the job', () => {
  it('`wharf sync`, `load` and `replay` each leave their runs in the control database', async () => {
    const sync = await wharf(['sync', '--json'], env);
    expect(sync.code, sync.stderr).toBe(0);
    const windows = (JSON.parse(sync.stdout) as { export: { windows: number } }).export.windows;
    expect(windows).toBeGreaterThan(0);
    const afterSync = await runs();
    expect(afterSync.map((r) => [r.kind, r.status])).toEqual([
      ['export', 'ok'],
      ['load', 'ok'],
    ]);
    expect(afterSync[0]!.windows).toBe(windows);
    expect(afterSync[1]).toMatchObject({ connector_id: connectorId, windows });

    const load = await wharf(['load'], env);
    expect(load.code, load.stderr).toBe(0);
    const afterLoad = await runs();
    expect(afterLoad.slice(2).map((r) => [r.kind, r.connector_id, r.status, r.windows])).toEqual([
      ['load', connectorId, 'ok', 0],
    ]);

    const replay = await wharf(['replay', '--connector', connectorId], env);
    expect(replay.code, replay.stderr).toBe(0);
    const afterReplay = await runs();
    expect(afterReplay.slice(3).map((r) => [r.kind, r.connector_id, r.status, r.windows])).toEqual([
      ['load', connectorId, 'ok', windows],
    ]);
  });

  it('a failed load is recorded with its one-line reason', async () => {
    // the warehouse table is gone: the load cannot merge into it
    await query(warehouseUrl, 'drop schema tracking cascade');
    await query(warehouseUrl, 'create schema tracking');
    await query(warehouseUrl, 'create table tracking._wharf_loads (window_id int)');
    const load = await wharf(['replay', '--connector', connectorId], env);
    expect(load.code).toBe(1);
    const last = (
      await query<{ status: string; error: string }>(
        sourceUrl,
        'select status, error from wharf.runs order by id desc limit 1',
      )
    )[0]!;
    expect(last.status).toBe('failed');
    expect(last.error).toContain(`connector ${connectorId}`);
    expect(last.error).not.toContain('\n');
  });
});

describe('staging formats follow the connectors', () => {
  it('a format no connector reads is refused in one line, before anything is exported', async () => {
    const config = join(tempDir('wharf-runs-config-'), 'wharf.yaml');
    writeFileSync(config, 'format: parquet\n');
    const before = await query<{ n: string }>(sourceUrl, 'select count(*) as n from wharf.windows');
    for (const args of [
      ['run', '--once', '--config', config],
      ['export', '--format', 'json'],
    ]) {
      const r = await wharf(args, env);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/no connector reads (parquet|json) staging/);
    }
    const after = await query<{ n: string }>(sourceUrl, 'select count(*) as n from wharf.windows');
    expect(after[0]!.n).toBe(before[0]!.n);
  });

  it('a window size of 0s is a usage error (exit 2) naming the setting', async () => {
    const r = await wharf(['run', '--once'], { ...env, WHARF_WINDOW: '0s' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('WHARF_WINDOW');
  });
});
