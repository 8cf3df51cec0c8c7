// One reverse-ETL run for the bench, in its own process so that its peak RSS can be read: `runSyncJob` on the
// sync named in BENCH_RETL (JSON: control URL, staging and spool folders), as `wharf retl run` does it.
// The last line of stdout is the JSON result.
import { readFileSync } from 'node:fs';
import { Runtime } from '../pipeline/runtime.js';
import { resolveSettings } from '../pipeline/settings.js';
import { runSyncJob } from '../pipeline/sync-job.js';

interface RetlJob {
  readonly controlUrl: string;
  readonly stagingDir: string;
  readonly spoolDir: string;
  readonly syncId: string;
}

/** This process's own peak RSS (Linux `VmHWM`; see bench/wharf-child.ts). */
function peakRssMB(): number {
  try {
    const hwm = /VmHWM:\s+(\d+)\s*kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

const job = JSON.parse(process.env.BENCH_RETL ?? '{}') as RetlJob;
const rt = new Runtime(
  resolveSettings(
    { sourceUrl: job.controlUrl, stagingUrl: `file://${job.stagingDir}`, spoolDir: job.spoolDir },
    {},
  ),
  { logger: (await import('../core/logger.js')).createLogger({ level: 'warn' }) },
);
const cpu = process.cpuUsage();
const started = performance.now();
const result = await runSyncJob(rt, job.syncId);
const seconds = (performance.now() - started) / 1000;
const used = process.cpuUsage(cpu);
await rt.close();
if (result.status !== 'ok') throw new Error(`the run was ${result.status}`);
process.stdout.write(
  `${JSON.stringify({
    seconds,
    cpuSeconds: (used.user + used.system) / 1e6,
    maxRssMB: peakRssMB(),
    rows: result.summary.rows,
    calls: result.summary.calls,
    batches: result.summary.batches,
    bytes: result.summary.bytes,
  })}\n`,
);
