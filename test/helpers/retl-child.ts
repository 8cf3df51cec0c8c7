// A reverse-ETL sync run in its own process, for kill tests: the parent SIGKILLs it (or it kills itself at KILL_AT).

import pg from 'pg';
import { HttpBatchSender, parseDeliverTo } from '../../reverse-etl/batch-sender.js';
import { PgSyncProgress } from '../../reverse-etl/pg-sync-progress.js';
import { parseQueryTemplate } from '../../reverse-etl/query-template.js';
import type { CallType } from '../../reverse-etl/row-to-call.js';
import { runSync } from '../../reverse-etl/sync-run.js';
import { PgWarehouseReader } from '../../reverse-etl/warehouse-reader.js';
import { FileStagingStore } from '../../staging/file-store.js';

const env = process.env;
const control = new pg.Pool({ connectionString: env.CONTROL_URL, max: 2 });
const progress = new PgSyncProgress(control, 'wharf');
const staged = progress.staged.bind(progress);
progress.staged = async (...args) => {
  if (env.KILL_AT === 'staged') process.kill(process.pid, 'SIGKILL');
  return staged(...args);
};
await runSync(
  {
    reader: new PgWarehouseReader({ connectionString: env.WAREHOUSE_URL }),
    store: new FileStagingStore(`file://${env.STAGING_DIR}`),
    sender: new HttpBatchSender(parseDeliverTo(env.DELIVER_TO!), {
      retry: { baseDelayMs: 5 },
      limits: { maxCalls: Number(env.MAX_CALLS) },
      inFlight: Number(env.IN_FLIGHT ?? 1),
    }),
    progress,
    ledger: progress,
    files: {
      spoolDir: env.SPOOL_DIR!,
      ...(env.MAX_FILE_BYTES ? { maxFileBytes: Number(env.MAX_FILE_BYTES) } : {}),
    },
  },
  {
    id: env.SYNC_ID!,
    type: env.TYPE as CallType,
    query: parseQueryTemplate(env.QUERY!, 'postgres'),
    timeoutMs: 60_000,
  },
);
await control.end();
