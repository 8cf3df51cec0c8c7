// An exporter process for crash tests: exports and kills itself with SIGKILL at the chosen step.

import pg from 'pg';
import { trackingCatalog } from '../../catalog/tracking.js';
import { exportWindows } from '../../exporter/export.js';
import { formatByName } from '../../exporter/writers/formats.js';
import { openStagingStore } from '../../staging/open-store.js';

const env = process.env;
let seen = 0;
const pool = new pg.Pool({ connectionString: env.SOURCE_URL, application_name: 'wharf-test' });
await exportWindows({
  source: pool,
  control: pool,
  controlSchema: 'wharf',
  sourceSchema: 'public',
  store: openStagingStore(`file://${env.STAGING_DIR}`),
  catalog: trackingCatalog,
  format: formatByName((env.FORMAT ?? 'csv') as 'csv'),
  sizes: { fineMs: 60_000, coarseMs: 86_400_000 },
  settleMs: 0,
  longTransactionMs: 900_000,
  spoolDir: env.SPOOL_DIR!,
  uploadConcurrency: 1,
  onStep: (step) => {
    if (step === env.KILL_AT && ++seen >= Number(env.KILL_COUNT ?? 1)) process.kill(process.pid, 'SIGKILL');
  },
});
await pool.end();
