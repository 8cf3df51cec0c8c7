import type { Argv, CommandModule } from 'yargs';
import { parseDuration } from '../../core/duration.js';
import { UsageError, WharfError } from '../../core/errors.js';
import { type MetricsServer, startMetricsServer } from '../../scheduler/metrics.js';
import { Scheduler, settledPhaseMs, type TickReport } from '../../scheduler/scheduler.js';
import { formatCount, printResult } from '../output.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';
import { exportLines } from './export.js';
import { startApi } from './serve.js';

interface RunArgs extends GlobalArgs {
  every: string;
  concurrency: number;
  metricsPort?: number;
  metricsHost: string;
  apiPort?: number;
  apiHost: string;
  retention?: string;
  once: boolean;
}

export const runCommand: CommandModule<GlobalArgs, RunArgs> = {
  command: 'run',
  describe:
    'Run continuously: every tick, export closed windows, then run a job for every connector that is behind and every sync that is due',
  builder: (y) =>
    y
      .option('every', { type: 'string', default: '1m', describe: 'tick interval' })
      .option('concurrency', {
        type: 'number',
        default: 4,
        describe: 'jobs (connector loads, syncs) this process runs at the same time',
      })
      .option('metrics-port', {
        type: 'number',
        describe: 'serve /metrics and /healthz on this port (off by default)',
      })
      .option('metrics-host', {
        type: 'string',
        default: '127.0.0.1',
        describe: 'address the metrics server listens on',
      })
      .option('api-port', {
        type: 'number',
        describe: 'also serve the HTTP API and console (wharf serve) on this port',
      })
      .option('api-host', { type: 'string', default: '127.0.0.1', describe: 'address the API listens on' })
      .option('retention', {
        type: 'string',
        describe:
          'delete staged windows older than this (e.g. 7d) once every connector has loaded them (off by default)',
      })
      .option('once', {
        type: 'boolean',
        default: false,
        describe: 'one tick, then exit',
      }) as unknown as Argv<RunArgs>,
  handler: withRuntime<RunArgs>(async (rt, args) => {
    const everyMs = parseDuration(args.every, '--every');
    if (everyMs <= 0) throw new UsageError('--every must be more than 0');
    if (!Number.isInteger(args.concurrency) || args.concurrency < 1) {
      throw new UsageError(`invalid --concurrency ${args.concurrency}`, 'use a whole number of 1 or more');
    }
    const retentionMs =
      args.retention === undefined ? undefined : parseDuration(args.retention, '--retention');
    const { settleMs, windowMs } = rt.durations;
    const scheduler = new Scheduler(rt, {
      everyMs,
      phaseMs: settledPhaseMs(settleMs, windowMs),
      concurrency: args.concurrency,
      ...(retentionMs !== undefined ? { retentionMs } : {}),
    });
    let server: MetricsServer | undefined;
    if (args.metricsPort !== undefined) {
      server = await startMetricsServer({
        port: args.metricsPort,
        host: args.metricsHost,
        metrics: scheduler.metrics,
        health: () => scheduler.health(),
      });
      rt.logger.info({ url: server.url }, `metrics on ${server.url}/metrics`);
    }
    const api = args.apiPort === undefined ? undefined : await startApi(rt, args.apiPort, args.apiHost);
    try {
      if (args.once) {
        const report = await scheduler.tick();
        printResult(rt.settings.json, report, () => tickLines(report));
        // one line per error on stderr (the lines above on stdout say what each connector did)
        const errors = [
          ...(report.exportError ? [new WharfError(`export failed: ${report.exportError}`)] : []),
          ...report.connectors
            .filter((c) => c.status === 'failed' || c.status === 'parked')
            .map((c) => new WharfError(c.error ?? `connector ${c.connector} failed`)),
          ...report.syncs
            .filter((y) => y.status === 'failed' || y.status === 'parked')
            .map((y) => new WharfError(y.error ?? `sync ${y.connector} failed`)),
        ];
        if (errors.length === 1) throw errors[0];
        if (errors.length > 1) throw new AggregateError(errors, `${errors.length} errors`);
        return;
      }
      const stop = new AbortController();
      const onSignal = (name: string) => () => {
        rt.logger.info(
          `${name}: stopping; a load waiting for a lock ends now, a running one within ${rt.settings.stopGrace} (rolled back unless it commits first); a second ${name} stops at once`,
        );
        stop.abort();
      };
      const onTerm = onSignal('SIGTERM');
      const onInt = onSignal('SIGINT');
      process.once('SIGTERM', onTerm);
      process.once('SIGINT', onInt);
      rt.logger.info(
        { every: args.every, concurrency: args.concurrency },
        `running: a tick every ${args.every}`,
      );
      try {
        await scheduler.run(stop.signal);
      } finally {
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
      }
      rt.logger.info('stopped');
    } finally {
      await api?.close();
      await server?.close();
    }
  }),
};

/** A tick's report for a person. */
export function tickLines(report: TickReport): string[] {
  const lines: string[] = [];
  if (report.exportError) lines.push('export FAILED');
  else if (report.export) lines.push(...exportLines(report.export));
  for (const c of report.connectors) {
    switch (c.status) {
      case 'ok':
        lines.push(
          `connector ${c.connector}: ${formatCount(c.windows)} window(s), ${formatCount(c.rows)} rows loaded`,
        );
        break;
      case 'current':
        lines.push(`connector ${c.connector}: up to date`);
        break;
      case 'skipped':
        lines.push(`connector ${c.connector}: skipped (its previous load is still running)`);
        break;
      case 'failed':
        lines.push(`connector ${c.connector}: FAILED (will be retried)`);
        break;
      case 'parked':
        lines.push(`connector ${c.connector}: PARKED (state failing)`);
        break;
      case 'stopped':
        lines.push(`connector ${c.connector}: not started (stopping)`);
        break;
      case 'queued':
        lines.push(`connector ${c.connector}: queued`);
        break;
      case 'elsewhere':
        lines.push(`connector ${c.connector}: loaded by another \`wharf run\` process`);
        break;
    }
  }
  if (report.connectors.length === 0) lines.push('no active connectors; add one with `wharf connectors add`');
  for (const y of report.syncs) {
    const what: Record<typeof y.status, string> = {
      ok: `${formatCount(y.rows)} rows read`,
      current: 'not due',
      skipped: 'skipped (its previous run is still going)',
      failed: 'FAILED (will run again when due)',
      parked: 'FAILED',
      stopped: 'not started (stopping)',
      queued: 'queued',
      elsewhere: 'run by another `wharf run` process',
    };
    lines.push(`sync ${y.connector}: ${what[y.status]}`);
  }
  if (report.retention && report.retention.windows > 0) {
    lines.push(
      `retention: ${formatCount(report.retention.windows)} window(s) pruned, ${formatCount(report.retention.files)} file(s)`,
    );
  }
  return lines;
}
