import type { Catalog } from '../catalog/types.js';
import { type ErrorContext, WharfError } from '../core/errors.js';
import type { Dialect } from './dialect.js';
import { addPairs } from './group-sets.js';
import { planMigration, stepStatements } from './migration-plan.js';
import type { SqlSession } from './sql-session.js';
import type { LedgerStatus } from './warehouse.js';

/**
 * Creates or migrates a warehouse schema for `streams` (idempotent, one migrator at a time): the schema, the
 * migrations table, the ledger, the freshness table and the engine's other tables, then the missing tables and
 * the columns a newer catalog version added, then the catalog version. The same flow for every engine.
 */
export async function migrateWarehouse(
  session: SqlSession,
  dialect: Dialect,
  catalog: Catalog,
  streams: readonly string[],
  schema: string,
  context: ErrorContext = {},
): Promise<void> {
  const sql = dialect.sql;
  await session.transaction(async (tx) => {
    const lock = await tx.query<{ r?: number }>(sql.lockSchema(), { resource: `wharf.warehouse.${schema}` });
    if (lock[0]?.r !== undefined && Number(lock[0].r) < 0) {
      throw new WharfError(`another process is migrating schema ${schema}`, { kind: 'transient', context });
    }
    for (const statement of sql.setup(schema)) await tx.query(statement);
    const applied = await tx.query<{ version: number | null }>(sql.currentVersion(schema));
    const current = Number(applied[0]?.version ?? 0);
    const columns = await tx.query<{ table_name: string; column_name: string }>(sql.existingColumns(), {
      schema,
    });
    const existing = addPairs(new Map(), columns, (r) => [r.table_name, r.column_name]);
    for (const step of planMigration(catalog, streams, existing, current, dialect, schema, context)) {
      for (const statement of stepStatements(step, dialect, schema, streams)) await tx.query(statement);
    }
    if (catalog.version > current) {
      await tx.query(sql.recordVersion(schema), {
        version: catalog.version,
        catalog: catalog.name,
        description: `catalog ${catalog.name} version ${catalog.version}`,
      });
    }
  });
}

/** Per stream, the window ids among `candidates` that the ledger holds. */
export async function loadedWindows(
  session: SqlSession,
  dialect: Dialect,
  schema: string,
  candidates: readonly string[],
): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (let i = 0; i < candidates.length; i += 10_000) {
    const rows = await session.query<{ window_id: string; stream: string }>(
      dialect.sql.selectLoaded(schema),
      dialect.sql.loadedParams(candidates.slice(i, i + 10_000)),
    );
    addPairs(out, rows, (r) => [r.stream, r.window_id]);
  }
  return out;
}

const NOTHING: LedgerStatus = {
  lastWindowId: null,
  lastWindowEnd: null,
  lastLoadedAt: null,
  rows: 0,
  windows: 0,
};

/** The ledger's summary (last window, rows, windows); zeros when there is no ledger yet. */
export async function ledgerStatus(
  session: SqlSession,
  dialect: Dialect,
  schema: string,
): Promise<LedgerStatus> {
  const exists = await session.query<{ t: unknown }>(dialect.sql.ledgerExists(), {
    ledger: dialect.sql.ledgerName(schema),
  });
  if (exists[0]?.t == null) return NOTHING;
  const rows = await session.query<{
    w: string | null;
    e: Date | null;
    l: Date | null;
    r: string | number;
    n: string | number;
  }>(dialect.sql.ledgerSummary(schema));
  const r = rows[0]!;
  return {
    lastWindowId: r.w,
    lastWindowEnd: r.e,
    lastLoadedAt: r.l,
    rows: Number(r.r),
    windows: Number(r.n),
  };
}
