import type { Catalog, Column, Stream } from '../catalog/types.js';
import { type ErrorContext, WharfError } from '../core/errors.js';
import type { Dialect } from './dialect.js';

/** One step of a warehouse migration. */
export type MigrationStep =
  | { readonly kind: 'create-table'; readonly stream: Stream }
  | { readonly kind: 'add-column'; readonly stream: Stream; readonly column: Column };

/**
 * What a warehouse schema needs for `streams` of `catalog`, given the columns its tables have and the
 * catalog version it was last migrated to: missing tables are created, columns added by a newer catalog
 * version are added. A column the recorded version should have but the table lacks was removed by hand:
 * that is an error naming the table, the column and the fix. Shared by every engine.
 */
export function planMigration(
  catalog: Catalog,
  streams: readonly string[],
  existing: ReadonlyMap<string, ReadonlySet<string>>,
  currentVersion: number,
  dialect: Dialect,
  schema: string,
  context: ErrorContext = {},
): MigrationStep[] {
  const steps: MigrationStep[] = [];
  for (const stream of catalog.streams) {
    if (!streams.includes(stream.name)) continue;
    const have = existing.get(stream.name);
    if (!have) {
      steps.push({ kind: 'create-table', stream });
      continue;
    }
    for (const column of stream.columns) {
      if (have.has(column.name)) continue;
      if ((column.since ?? 1) > currentVersion) {
        steps.push({ kind: 'add-column', stream, column });
        continue;
      }
      throw new WharfError(`warehouse table ${schema}.${stream.name} has no column ${column.name}`, {
        context: { ...context, stream: stream.name },
        hint: `the table was changed by hand; restore the column (${column.name} ${dialect.columnType(column)}) or drop the table and replay the connector`,
      });
    }
  }
  return steps;
}

/** The SQL statements of a step. */
export function stepStatements(
  step: MigrationStep,
  dialect: Dialect,
  schema: string,
  streams: readonly string[],
): string[] {
  return step.kind === 'create-table'
    ? dialect.sql.createTable(schema, step.stream, streams)
    : [dialect.sql.addColumn(schema, step.stream, step.column)];
}
