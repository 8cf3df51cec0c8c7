// A loader process for crash tests: loads one connector and kills itself with SIGKILL at a chosen step.
import pg from 'pg';
import { openStagingStore } from '../../staging/open-store.js';
import { load } from './load-harness.js';

const env = process.env;
const killAt = env.KILL_AT ?? '';
let seen = 0;
const control = new pg.Pool({ connectionString: env.CONTROL_URL });
await load(
  control,
  openStagingStore(`file://${env.STAGING_DIR}`),
  {
    warehouseUrl: env.WAREHOUSE_URL!,
    schema: env.SCHEMA!,
    account: Number(env.ACCOUNT),
    connectorId: 'crash',
  },
  {
    rowBudget: Number(env.ROW_BUDGET ?? 2_000_000),
    onStep: (step) => {
      if (step === killAt && ++seen >= Number(env.KILL_COUNT ?? 1)) process.kill(process.pid, 'SIGKILL');
    },
  },
);
await control.end();
process.stdout.write('finished\n');
