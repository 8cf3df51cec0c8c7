import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateControl } from '../control/control-schema.js';
import { pruneRuns } from '../control/runs.js';
import { createDatabase } from './helpers/databases.js';

const SCHEMA = 'wharf "runs" prune';
let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({ connectionString: await createDatabase('wharf_runs_prune') });
  await client.connect();
  await migrateControl(client, SCHEMA);
});

afterAll(async () => {
  await client.end();
});

describe('pruning the run history', () => {
  it('deletes old export, load and delivery runs in batches, keeps recent ones and every reverse-ETL run', async () => {
    const t = `"wharf ""runs"" prune".runs`;
    // 2,500 runs 40 days old, 30 of them a sync's; 20 runs an hour old
    await client.query(
      `insert into ${t} (kind, started_at, finished_at, status)
       select case when i % 100 = 0 then 'sync' when i % 3 = 0 then 'export' when i % 3 = 1 then 'load' else 'deliver' end,
              now() - interval '40 days', now() - interval '40 days', 'ok'
         from generate_series(1, 2500) i`,
    );
    await client.query(
      `insert into ${t} (kind, started_at, finished_at, status)
       select 'load', now() - interval '1 hour', now() - interval '1 hour', 'ok' from generate_series(1, 20)`,
    );
    const deleted = await pruneRuns(client, SCHEMA, 30 * 86_400_000, 1_000);
    expect(deleted).toBe(2475);
    const left = await client.query<{ kind: string; old: boolean; n: string }>(
      `select kind, started_at < now() - interval '1 day' as old, count(*) as n from ${t} group by 1, 2 order by 1, 2`,
    );
    expect(left.rows).toEqual([
      { kind: 'load', old: false, n: '20' },
      { kind: 'sync', old: true, n: '25' },
    ]);
    expect(await pruneRuns(client, SCHEMA, 30 * 86_400_000, 1_000)).toBe(0);
  });
});
