import type pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Catalog, Column, Stream } from '../catalog/types.js';
import { WharfError } from '../core/errors.js';
import { classifyPgError } from '../db/postgres/errors.js';
import { literalPg, quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';

/** Options of `initSource`. */
export interface SourceSchemaOptions {
  /** Schema that holds the tables (created when missing). Default `public`. */
  readonly schema?: string;
  /** Catalog to create tables for. Default: the reference catalog `tracking`. */
  readonly catalog?: Catalog;
}

/** Session setting that, when `'on'`, makes the trigger keep an explicitly written `updated_at`. */
export const PRESERVE_UPDATED_AT_SETTING = 'wharf.preserve_updated_at';

/** Name of the trigger function installed in the source schema. */
export const STAMP_FUNCTION = 'wharf_stamp_updated_at';

/** A named foreign key of a source table. */
export interface SourceForeignKey {
  readonly name: string;
  readonly column: string;
  /** The constraint clause, e.g. `constraint "clicks_link_id_fkey" foreign key ("link_id") references …`. */
  readonly clause: string;
}

/** The column's PostgreSQL type. */
export function pgColumnType(column: Column): string {
  switch (column.type) {
    case 'bigint':
    case 'text':
    case 'timestamptz':
    case 'date':
    case 'uuid':
    case 'boolean':
    case 'jsonb':
      return column.type;
    case 'char':
      return `char(${column.length ?? 1})`;
    case 'numeric':
      return column.precision === undefined
        ? 'numeric'
        : `numeric(${column.precision}, ${column.scale ?? 0})`;
  }
}

function table(schema: string, name: string): string {
  return `${quotePg(schema)}.${quotePg(name)}`;
}

function referencedKey(catalog: Catalog, streamName: string): string {
  const parent = catalog.streams.find((s) => s.name === streamName);
  const key = parent?.primaryKey[0];
  if (parent?.primaryKey.length !== 1 || key === undefined) {
    throw new WharfError(
      `catalog ${catalog.name}: a reference to "${streamName}" needs a one-column primary key`,
    );
  }
  return key;
}

/** The foreign keys of a source table: one per column with `references`. */
export function sourceForeignKeys(
  stream: Stream,
  schema: string,
  catalog: Catalog = trackingCatalog,
): SourceForeignKey[] {
  return stream.columns
    .filter(
      (c) =>
        c.references !== undefined && !(c.references === stream.name && stream.primaryKey.includes(c.name)),
    )
    .map((c) => {
      const name = `${stream.name}_${c.name}_fkey`;
      const target = c.references!;
      return {
        name,
        column: c.name,
        clause: `constraint ${quotePg(name)} foreign key (${quotePg(c.name)}) references ${table(schema, target)} (${quotePg(referencedKey(catalog, target))})`,
      };
    });
}

/** Name of the trigger that stamps a table's change column. */
export function stampTriggerName(stream: Stream): string {
  return `${stream.name}_stamp_${stream.changeColumn}`;
}

/**
 * Column defaults of the reference schema besides the change column's, so that a row inserted by hand needs only
 * what matters: `created_at` is the insert time, an account's `timezone` is UTC.
 */
const SOURCE_DEFAULTS: Readonly<Record<string, string>> = { created_at: 'now()', timezone: "'UTC'" };

function columnDefault(stream: Stream, column: Column): string | undefined {
  if (column.type === 'uuid' && stream.primaryKey.includes(column.name)) return 'gen_random_uuid()';
  if (column.name === stream.changeColumn) return 'now()';
  return SOURCE_DEFAULTS[column.name];
}

interface TableStatements {
  readonly createTable: string;
  /** `alter … set default` for tables made before a default was added (idempotent). */
  readonly defaults: readonly string[];
  readonly indexes: readonly string[];
  readonly triggerName: string;
  readonly trigger: string;
}

function tableStatements(stream: Stream, schema: string, catalog: Catalog): TableStatements {
  const lines = stream.columns.map((c) => {
    let line = `  ${quotePg(c.name)} ${pgColumnType(c)}`;
    if (!c.nullable) line += ' not null';
    const value = columnDefault(stream, c);
    if (value) line += ` default ${value}`;
    return line;
  });
  lines.push(
    `  constraint ${quotePg(`${stream.name}_pkey`)} primary key (${stream.primaryKey.map(quotePg).join(', ')})`,
  );
  for (const fk of sourceForeignKeys(stream, schema, catalog)) lines.push(`  ${fk.clause}`);
  const qualified = table(schema, stream.name);
  const indexes = [
    `create index if not exists ${quotePg(`${stream.name}_${stream.changeColumn}_idx`)} on ${qualified} (${quotePg(stream.changeColumn)})`,
  ];
  if (stream.tenantColumn !== stream.primaryKey[0]) {
    indexes.push(
      `create index if not exists ${quotePg(`${stream.name}_${stream.tenantColumn}_idx`)} on ${qualified} (${quotePg(stream.tenantColumn)})`,
    );
  }
  const triggerName = stampTriggerName(stream);
  const defaults = stream.columns
    .filter((c) => SOURCE_DEFAULTS[c.name] !== undefined)
    .map(
      (c) =>
        `alter table ${qualified} alter column ${quotePg(c.name)} set default ${SOURCE_DEFAULTS[c.name]}`,
    );
  return {
    createTable: `create table if not exists ${qualified} (\n${lines.join(',\n')}\n)`,
    defaults,
    indexes,
    triggerName,
    trigger:
      `create trigger ${quotePg(triggerName)} before insert or update on ${qualified}\n` +
      `  for each row execute function ${quotePg(schema)}.${quotePg(STAMP_FUNCTION)}()`,
  };
}

/**
 * The DDL `initSource` runs for one stream: the table (columns in catalog order, primary key,
 * foreign keys), its indexes and its `updated_at` trigger (created only when missing).
 */
export function sourceTableDdl(stream: Stream, schema: string, catalog: Catalog = trackingCatalog): string {
  const s = tableStatements(stream, schema, catalog);
  return [s.createTable, ...s.indexes, s.trigger].map((statement) => `${statement};`).join('\n');
}

/**
 * The trigger function: stamps `updated_at = now()` on every insert and update, unless the session
 * setting `wharf.preserve_updated_at` is `'on'` (the seeder writes historical timestamps that way).
 */
export function stampFunctionDdl(schema: string, changeColumn = 'updated_at'): string {
  return `create or replace function ${quotePg(schema)}.${quotePg(STAMP_FUNCTION)}() returns trigger
language plpgsql as $wharf_stamp$
begin
  if current_setting(${literalPg(PRESERVE_UPDATED_AT_SETTING)}, true) is distinct from 'on' then
    new.${quotePg(changeColumn)} := now();
  end if;
  return new;
end
$wharf_stamp$`;
}

/**
 * Creates the reference source schema from the catalog: one table per stream, indexes, and the
 * trigger that stamps `updated_at`. Idempotent and safe to run concurrently (one transaction
 * under an advisory lock per schema).
 *
 * @example await initSource(client, { schema: 'public' });
 */
export async function initSource(client: pg.ClientBase, options: SourceSchemaOptions = {}): Promise<void> {
  const schema = options.schema ?? 'public';
  const catalog = options.catalog ?? trackingCatalog;
  try {
    await inTransaction(client, async () => {
      await client.query(`select pg_advisory_xact_lock(hashtext('wharf.source'), hashtext($1))`, [schema]);
      await client.query(`create schema if not exists ${quotePg(schema)}`);
      await client.query(stampFunctionDdl(schema));
      const existing = await client.query<{ table: string; trigger: string }>(
        `select c.relname as table, t.tgname as trigger
         from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and not t.tgisinternal`,
        [schema],
      );
      const triggers = new Set(existing.rows.map((r) => `${r.table}\u0000${r.trigger}`));
      for (const stream of catalog.streams) {
        const s = tableStatements(stream, schema, catalog);
        await client.query(s.createTable);
        for (const statement of s.defaults) await client.query(statement);
        for (const index of s.indexes) await client.query(index);
        if (!triggers.has(`${stream.name}\u0000${s.triggerName}`)) await client.query(s.trigger);
      }
    });
  } catch (error) {
    if (error instanceof WharfError) throw error;
    const code = (error as { code?: string }).code;
    throw new WharfError(`cannot create the source schema "${schema}": ${(error as Error).message}`, {
      kind: classifyPgError(error),
      cause: error,
      hint: code === '42501' ? 'the source user needs CREATE on the database and schema' : undefined,
      ...(code ? { code } : {}),
    });
  }
}
