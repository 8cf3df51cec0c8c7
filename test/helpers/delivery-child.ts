// A bucket delivery process for crash tests: delivers one connector and kills itself with SIGKILL at a chosen step.
import pg from 'pg';
import { trackingCatalog } from '../../catalog/tracking.js';
import { deliverConnector } from '../../delivery/deliver-connector.js';
import type { FormatName } from '../../exporter/writers/file-format.js';
import { openStagingStore } from '../../staging/open-store.js';
import { committedWindows, testBucket } from './delivery.js';

const env = process.env;
let seen = 0;
const pool = new pg.Pool({ connectionString: env.SOURCE_URL, application_name: 'wharf-test' });
const bucket = testBucket({ endpoint: env.S3_ENDPOINT!, bucket: env.BUCKET! }, env.PREFIX!);
const summary = await deliverConnector({
  control: { pool, schema: env.SCHEMA! },
  staging: { store: openStagingStore(`file://${env.STAGING_DIR}`), windows: await committedWindows(pool) },
  bucket,
  catalog: trackingCatalog,
  connector: {
    id: env.CONNECTOR!,
    account: env.ACCOUNT!,
    streams: trackingCatalog.streams.map((s) => s.name),
    format: env.FORMAT as FormatName,
    everyMs: 600_000,
  },
  run: {
    tuning: { partBytes: Number(env.PART_BYTES ?? 6000), rowGroupRows: 100 },
    onStep: (step) => {
      if (step === env.KILL_AT && ++seen >= Number(env.KILL_COUNT ?? 1)) process.kill(process.pid, 'SIGKILL');
    },
  },
});
bucket.close();
await pool.end();
process.stdout.write(`${JSON.stringify(summary)}\n`);
