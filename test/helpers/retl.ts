import { rmSync } from 'node:fs';
import pg from 'pg';
import { migrateControl } from '../../control/control-schema.js';
import { Secret } from '../../core/secret.js';
import { HttpBatchSender, parseDeliverTo, type SenderOptions } from '../../reverse-etl/batch-sender.js';
import { PgSyncProgress } from '../../reverse-etl/pg-sync-progress.js';
import { parseQueryTemplate } from '../../reverse-etl/query-template.js';
import type { CallType } from '../../reverse-etl/row-to-call.js';
import type { SyncDefinition, SyncRunDeps } from '../../reverse-etl/sync-run.js';
import { PgWarehouseReader } from '../../reverse-etl/warehouse-reader.js';
import { FileStagingStore } from '../../staging/file-store.js';
import { createDatabase } from './databases.js';
import { tempDir } from './wharf.js';

export const CONTROL_SCHEMA = 'wharf';

/** A control database with the reverse-ETL tables, a file staging store and a spool directory. */
export interface RetlHarness {
  readonly controlUrl: string;
  readonly control: pg.Pool;
  readonly progress: PgSyncProgress;
  readonly stagingDir: string;
  readonly store: FileStagingStore;
  readonly spoolDir: string;
  close(): Promise<void>;
}

export async function openRetlHarness(): Promise<RetlHarness> {
  const controlUrl = await createDatabase('wharf_retl_control');
  const control = new pg.Pool({ connectionString: controlUrl, max: 4 });
  control.on('error', () => {});
  const c = await control.connect();
  try {
    await migrateControl(c, CONTROL_SCHEMA);
  } finally {
    c.release();
  }
  const stagingDir = tempDir('wharf-retl-staging-');
  const spoolDir = tempDir('wharf-retl-spool-');
  return {
    controlUrl,
    control,
    progress: new PgSyncProgress(control, CONTROL_SCHEMA),
    stagingDir,
    store: new FileStagingStore(`file://${stagingDir}`),
    spoolDir,
    close: async () => {
      await control.end();
      rmSync(stagingDir, { recursive: true, force: true });
      rmSync(spoolDir, { recursive: true, force: true });
    },
  };
}

export interface NewSync {
  readonly type: CallType;
  readonly query: string;
  readonly lookbackMs?: number;
  readonly deliverTo: string;
}

/** Records a source and a sync in the control tables; returns the sync ready to run. */
export async function addSync(h: RetlHarness, sync: NewSync): Promise<SyncDefinition> {
  const source = await h.control.query<{ id: string }>(
    `insert into wharf.retl_sources (account_id, engine, settings) values (1, 'postgres', '{}') returning id::text`,
  );
  const row = await h.control.query<{ id: string }>(
    `insert into wharf.retl_syncs (source_id, name, call_type, query, timeout_ms, lookback_ms, deliver_to)
     values ($1::bigint, 'sync-' || $1::text, $2, $3, 60000, $4, $5) returning id::text`,
    [source.rows[0]!.id, sync.type, sync.query, sync.lookbackMs ?? 0, parseDeliverTo(sync.deliverTo).url],
  );
  return {
    id: row.rows[0]!.id,
    type: sync.type,
    query: parseQueryTemplate(sync.query, 'postgres'),
    timeoutMs: 60_000,
    ...(sync.lookbackMs ? { lookbackMs: sync.lookbackMs } : {}),
  };
}

/** A reader of a warehouse database whose unqualified names resolve in `schema`. */
export function warehouseReader(url: string, schema = 'public'): PgWarehouseReader {
  return new PgWarehouseReader({ connectionString: url, options: `-c search_path=${schema}` });
}

/** The dependencies of `runSync` against a receiver. */
export function runDeps(
  h: RetlHarness,
  reader: PgWarehouseReader,
  deliverTo: string,
  options: SenderOptions = {},
): SyncRunDeps {
  return {
    reader,
    store: h.store,
    sender: new HttpBatchSender(parseDeliverTo(deliverTo), {
      ...options,
      retry: { baseDelayMs: 20, ...options.retry },
    }),
    progress: h.progress,
    ledger: h.progress,
    files: { spoolDir: h.spoolDir },
  };
}

/** `http://KEY@127.0.0.1:port/path` for a receiver. */
export function withWriteKey(url: string, key = 'wk_test_123'): string {
  const u = new URL(url);
  u.username = encodeURIComponent(key);
  return u.href;
}

export const WRITE_KEY = new Secret('wk_test_123');
