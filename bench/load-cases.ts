// The load section's four cases, named by what changes in the warehouse, and the warehouse states they start
// from. Each case starts Wharf and the hand-made pipeline from the same rows, and both must end with the same rows.
import { quotePg } from '../db/postgres/quote.js';
import { LOADED_AT_COLUMN, WINDOW_COLUMN } from '../loaders/dialect.js';
import { postgresDialect } from '../loaders/postgres/postgres-dialect.js';
import { clicksStream } from './bench-context.js';

const q = quotePg;
export const cols = clicksStream.columns.map((c) => q(c.name));
const change = q(clicksStream.changeColumn);
const key = clicksStream.primaryKey.map(q).join(', ');

export type CaseId = 'empty' | 'updated' | 'replay' | 'steady';

export interface LoadCase {
  readonly id: CaseId;
  readonly name: string;
  /** Wharf's speed over the hand-made pipeline's that the case must reach (none for the replay). */
  readonly goal?: number;
  /** Rows in the warehouse's clicks table once loaded (in units of the window's rows, plus history). */
  readonly what: string;
}

export const LOAD_CASES: readonly LoadCase[] = [
  {
    id: 'empty',
    name: 'empty warehouse',
    goal: 2.0,
    what: 'the warehouse has no clicks; every row of the window is new',
  },
  {
    id: 'updated',
    name: 'every row updated',
    goal: 1.0,
    what: 'the warehouse holds every key of the window with an updated_at one hour older; every row is rewritten',
  },
  {
    id: 'replay',
    name: 'identical replay',
    what: 'the warehouse already holds the same rows (a window loaded again); the version guard writes none, and the hand-made pipeline has the same guard',
  },
  {
    id: 'steady',
    name: 'steady state (90 % new, 10 % updates)',
    goal: 1.2,
    what: 'the warehouse holds as many rows of older history plus 10 % of the window’s keys one hour older: 90 % of the window is inserted, 10 % updated',
  },
];

/** The template tables in the warehouse database: the window's rows as the source has them, and older history. */
export const TEMPLATE_SCHEMA = 'tmpl';

/** DDL of the template tables (no keys: they are only read whole). */
export function templateDdl(): string[] {
  const defs = clicksStream.columns.map((c) => `${q(c.name)} ${postgresDialect.columnType(c)}`);
  return [
    `drop schema if exists ${TEMPLATE_SCHEMA} cascade`,
    `create schema ${TEMPLATE_SCHEMA}`,
    `create table ${TEMPLATE_SCHEMA}.clicks (${defs.join(', ')})`,
  ];
}

/** History: every row of the window again with another key and 30 days older (built after the template). */
export function historySql(): string {
  const exprs = clicksStream.columns.map((c) => {
    const name = q(c.name);
    if (clicksStream.primaryKey.includes(c.name)) return `md5(${name}::text || 'h')::uuid as ${name}`;
    if (c.type === 'timestamptz') return `${name} - interval '30 days' as ${name}`;
    return name;
  });
  return `create table ${TEMPLATE_SCHEMA}.history as select ${exprs.join(', ')} from ${TEMPLATE_SCHEMA}.clicks`;
}

/** The rows a case's warehouse holds before the load (a SELECT of the clicks columns), or null when empty. */
export function prefillSelect(id: CaseId): string | null {
  const older = cols.map((c) => (c === change ? `${c} - interval '1 hour' as ${c}` : c)).join(', ');
  const t = `${TEMPLATE_SCHEMA}.clicks`;
  switch (id) {
    case 'empty':
      return null;
    case 'updated':
      return `select ${older} from ${t}`;
    case 'replay':
      return `select ${cols.join(', ')} from ${t}`;
    case 'steady':
      return (
        `select ${older} from ${t} where abs(hashtext(${key}::text)) % 10 = 0` +
        ` union all select ${cols.join(', ')} from ${TEMPLATE_SCHEMA}.history`
      );
  }
}

/**
 * Statements that put Wharf's warehouse schema in the case's state: an empty case drops the schema (Wharf creates
 * it); the others create the clicks table as Wharf's migration does, fill it, build its key and index, vacuum.
 */
export function wharfPrefill(schema: string, id: CaseId): string[] {
  const select = prefillSelect(id);
  const drop = `drop schema if exists ${q(schema)} cascade`;
  if (!select) return [drop];
  const table = `${q(schema)}.${q(clicksStream.name)}`;
  const index = q(`${clicksStream.name}_${clicksStream.changeColumn}_idx`);
  return [
    drop,
    `create schema ${q(schema)}`,
    ...postgresDialect.sql.createTable(schema, clicksStream, []),
    `alter table ${table} drop constraint ${q(`${clicksStream.name}_pkey`)}`,
    `drop index ${q(schema)}.${index}`,
    `insert into ${table} (${cols.join(', ')}, ${q(WINDOW_COLUMN)}, ${q(LOADED_AT_COLUMN)}) select p.*, 'prefill', now() from (${select}) p`,
    `alter table ${table} add constraint ${q(`${clicksStream.name}_pkey`)} primary key (${key})`,
    `create index ${index} on ${table} (${change})`,
    `vacuum analyze ${table}`,
  ];
}

/** The same state for the hand-made pipeline's own table (the same columns, key and index as Wharf's). */
export function handMadePrefill(schema: string, id: CaseId): string[] {
  const defs = clicksStream.columns.map((c) => `${q(c.name)} ${postgresDialect.columnType(c)}`);
  const table = `${q(schema)}.${q(clicksStream.name)}`;
  const select = prefillSelect(id);
  return [
    `drop schema if exists ${q(schema)} cascade`,
    `create schema ${q(schema)}`,
    `create table ${table} (${defs.join(', ')})`,
    ...(select ? [`insert into ${table} select p.* from (${select}) p`] : []),
    `alter table ${table} add primary key (${key})`,
    `create index on ${table} (${change})`,
    `vacuum analyze ${table}`,
  ];
}

/** Rows and a fingerprint of (key, updated_at) of a clicks table: the two pipelines must end equal. */
export function fingerprintSql(schema: string): string {
  return `select count(*)::bigint::text as n, coalesce(sum(hashtextextended(${key}::text || ${change}::text, 0)), 0)::text as h from ${q(schema)}.${q(clicksStream.name)}`;
}

/**
 * The hand-made upsert with the same version guard as Wharf's (a row replaces a stored one only when it is newer,
 * or as new with other content), so that it does the same work: a replay rewrites nothing in either.
 */
export function handMadeUpsert(schema: string, stage: string): string {
  const nonKey = clicksStream.columns
    .filter((c) => !clicksStream.primaryKey.includes(c.name))
    .map((c) => q(c.name));
  const t = `${q(schema)}.${q(clicksStream.name)}`;
  const sets = nonKey.map((c) => `${c} = excluded.${c}`).join(', ');
  const tRow = nonKey.map((c) => `t.${c}`).join(', ');
  const eRow = nonKey.map((c) => `excluded.${c}`).join(', ');
  return (
    `insert into ${t} as t select * from ${stage} on conflict (${key}) do update set ${sets}` +
    ` where t.${change} < excluded.${change} or (t.${change} = excluded.${change} and (${tRow}) is distinct from (${eRow}))`
  );
}
