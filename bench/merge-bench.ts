import { join } from 'node:path';
import pg from 'pg';
import { quotePg } from '../db/postgres/quote.js';
import { LOADED_AT_COLUMN, WINDOW_COLUMN } from '../loaders/dialect.js';
import { mergeSql, postgresDialect, stagingTableName } from '../loaders/postgres/postgres-dialect.js';
import {
  type BenchContext,
  COARSE_MS,
  clicksSelect,
  clicksStream,
  exportedWindow,
  prepareBigSource,
  round,
} from './bench-context.js';
import { createBenchDatabase } from './bench-postgres.js';
import { runWharfChild, timeShell } from './bench-shell.js';

const q = quotePg;
const SCHEMA = 'mrg';
const stage = `${q(SCHEMA)}.${q(stagingTableName(clicksStream))}`;
const target = `${q(SCHEMA)}.${q(clicksStream.name)}`;
const cols = clicksStream.columns.map((c) => q(c.name));

/** The version-guarded merge as a MERGE statement (PostgreSQL 15+), equivalent to `mergeSql(…, 'upsert')`. */
export function mergeStatement(): string {
  const key = q('event_id');
  const change = q(clicksStream.changeColumn);
  const nonKey = clicksStream.columns.filter((c) => c.name !== 'event_id').map((c) => q(c.name));
  const source =
    `select distinct on (${key}) ${cols.join(', ')}, ${q(WINDOW_COLUMN)} from ${q(stagingTableName(clicksStream))}` +
    ` order by ${key}, ${change} desc, ${q(WINDOW_COLUMN)} desc`;
  const sets = [...nonKey, q(WINDOW_COLUMN)].map((c) => `${c} = s.${c}`);
  sets.push(`${q(LOADED_AT_COLUMN)} = now()`);
  return (
    `merge into ${target} as t using (${source}) as s on t.${key} = s.${key}` +
    ` when matched and (t.${change} < s.${change} or (t.${change} = s.${change} and (${nonKey.map((c) => `t.${c}`).join(', ')}) is distinct from (${nonKey.map((c) => `s.${c}`).join(', ')})))` +
    ` then update set ${sets.join(', ')}` +
    ` when not matched then insert (${cols.join(', ')}, ${q(WINDOW_COLUMN)}, ${q(LOADED_AT_COLUMN)})` +
    ` values (${cols.map((c) => `s.${c}`).join(', ')}, s.${q(WINDOW_COLUMN)}, now())`
  );
}

interface MergeCase {
  readonly name: string;
  /** Share of the staged keys already in the target. */
  readonly conflicts: 0 | 0.5 | 1;
  /** `older`: target rows have an older updated_at (they get updated); `same`: identical rows (a replay). */
  readonly prefill: 'older' | 'same';
  readonly statement: 'insert' | 'upsert' | 'merge' | 'insert-then-keys';
}

const CASES: readonly MergeCase[] = [
  { name: 'INSERT, empty target with PK', conflicts: 0, prefill: 'older', statement: 'insert' },
  {
    name: 'INSERT, empty target without indexes, then PK + index',
    conflicts: 0,
    prefill: 'older',
    statement: 'insert-then-keys',
  },
  { name: 'ON CONFLICT, 0 % conflicts (empty target)', conflicts: 0, prefill: 'older', statement: 'upsert' },
  { name: 'MERGE, 0 % conflicts (empty target)', conflicts: 0, prefill: 'older', statement: 'merge' },
  { name: 'ON CONFLICT, 50 % conflicts (newer rows)', conflicts: 0.5, prefill: 'older', statement: 'upsert' },
  { name: 'MERGE, 50 % conflicts (newer rows)', conflicts: 0.5, prefill: 'older', statement: 'merge' },
  { name: 'ON CONFLICT, 100 % conflicts (newer rows)', conflicts: 1, prefill: 'older', statement: 'upsert' },
  { name: 'MERGE, 100 % conflicts (newer rows)', conflicts: 1, prefill: 'older', statement: 'merge' },
  {
    name: 'ON CONFLICT, 100 % conflicts (replay, same rows)',
    conflicts: 1,
    prefill: 'same',
    statement: 'upsert',
  },
  { name: 'MERGE, 100 % conflicts (replay, same rows)', conflicts: 1, prefill: 'same', statement: 'merge' },
];

/** INSERT … ON CONFLICT against MERGE and the empty-table paths, on clicks already in a staging table. */
export async function mergeBench(ctx: BenchContext): Promise<void> {
  const source = await prepareBigSource(ctx);
  const url = await createBenchDatabase(ctx.server, 'bench_merge');
  // the same window Wharf exports, staged once from a dump of it
  const probe = await runWharfChild({
    kind: 'export',
    format: 'csv',
    sourceUrl: source.url,
    streams: ['clicks'],
    sizes: { fineMs: 60_000, coarseMs: COARSE_MS },
    settleMs: 0,
    maxWindows: 1,
    controlSchema: 'bench_merge_probe',
    stagingDir: join(ctx.workDir, 'merge-probe'),
  });
  const window = await exportedWindow(source.url, 'bench_merge_probe');
  const limit = Math.min(ctx.options.mergeRows, probe.export!.rows);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`create schema ${q(SCHEMA)}; set search_path = ${q(SCHEMA)}, public`);
    const stageDefs = postgresDialect.sql
      .createStaging(SCHEMA, clicksStream)[0]!
      .replace('create temp table if not exists', 'create unlogged table')
      .replace(' on commit drop', '')
      .replace(q(stagingTableName(clicksStream)), stage);
    await client.query(stageDefs);
    await client.query(`alter table ${stage} alter column ${q(WINDOW_COLUMN)} set default 'w1'`);
    await timeShell(
      `psql -X -q -d "$SRC" -c "\\copy (${clicksSelect(window.start, window.end)} limit ${limit}) to stdout (format csv)" | ` +
        `psql -X -q -v ON_ERROR_STOP=1 -d "$DST" -c "\\copy ${SCHEMA}.${stagingTableName(clicksStream)} (${cols.join(', ').replace(/"/g, '')}) from stdin (format csv)"`,
      { SRC: source.url, DST: url },
    );
    await client.query(`vacuum analyze ${stage}`);
    const results: { name: string; seconds: number; rows: number }[] = [];
    for (const c of CASES) {
      ctx.log(`merge: ${c.name}`);
      await client.query(`drop table if exists ${target}`);
      const ddl = postgresDialect.sql.createTable(SCHEMA, clicksStream, ['clicks']);
      if (c.statement === 'insert-then-keys') {
        await client.query(ddl[0]!.replace(/, primary key \("event_id"\)\)$/, ')'));
      } else {
        for (const s of ddl) await client.query(s);
      }
      if (c.conflicts > 0) {
        const where = c.conflicts === 1 ? '' : ` where substr(event_id::text, 1, 1) < '8'`;
        const values = cols.map((col) =>
          c.prefill === 'older' && col === q('updated_at') ? `${col} - interval '1 hour'` : col,
        );
        await client.query(
          `insert into ${target} (${cols.join(', ')}, ${q(WINDOW_COLUMN)}, ${q(LOADED_AT_COLUMN)}) select ${values.join(', ')}, ${q(WINDOW_COLUMN)}, now() from ${stage}${where}`,
        );
      }
      await client.query(`vacuum analyze ${target}`);
      await client.query('checkpoint');
      const started = performance.now();
      await client.query('begin');
      let affected = 0;
      if (c.statement === 'merge') {
        affected = (await client.query(mergeStatement())).rowCount ?? 0;
      } else if (c.statement === 'insert-then-keys') {
        affected = (await client.query(mergeSql(SCHEMA, clicksStream, 'insert'))).rowCount ?? 0;
        await client.query(`alter table ${target} add primary key (event_id)`);
        await client.query(ddl[1]!);
      } else {
        affected = (await client.query(mergeSql(SCHEMA, clicksStream, c.statement))).rowCount ?? 0;
      }
      await client.query('commit');
      const seconds = (performance.now() - started) / 1000;
      results.push({ name: c.name, seconds, rows: affected });
      ctx.rows.push({
        section: 'merge',
        name: c.name,
        seconds: round(seconds),
        rows: limit,
        rowsPerSecond: Math.round(limit / seconds),
        note: `${affected} rows written`,
      });
    }
    ctx.extra.merge = { stagedRows: limit, results };
  } finally {
    await client.query(`drop schema if exists ${q(SCHEMA)} cascade`).catch(() => {});
    await client.end();
  }
}
