import { join } from 'node:path';
import type pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Catalog } from '../catalog/types.js';
import { ConnectorStore } from '../connectors/connector-store.js';
import { masterKeysFromEnv } from '../connectors/master-key.js';
import { migrateControl } from '../control/control-schema.js';
import { UsageError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';
import { openPool } from '../db/postgres/pool.js';
import type { SessionLimits } from '../loaders/warehouse.js';
import { openStagingStore } from '../staging/open-store.js';
import type { StagingStore } from '../staging/staging-store.js';
import { exportFormat } from './export-job.js';
import { PipelineMetrics } from './metrics.js';
import { durations, type ResolvedDurations, type Settings } from './settings.js';

/** What the runtime is built from besides the settings (tests and the daemon pass their own). */
export interface RuntimeOptions {
  readonly logger?: Logger;
  readonly metrics?: PipelineMetrics;
}

/**
 * What every job needs, opened on first use and closed once at the end: the source and control pools, the
 * staging store, the connector store (the control schema migrated once), a logger and the metrics.
 * Knows nothing of the command line: the CLI, the daemon, the API server and tests build one from `Settings`.
 */
export class Runtime {
  readonly settings: Settings;
  readonly logger: Logger;
  readonly catalog: Catalog = trackingCatalog;
  readonly metrics: PipelineMetrics;
  readonly durations: ResolvedDurations;
  #source: Promise<pg.Pool> | undefined;
  #control: Promise<pg.Pool> | undefined;
  #store: StagingStore | undefined;
  #connectors: Promise<ConnectorStore> | undefined;

  constructor(settings: Settings, options: RuntimeOptions = {}) {
    // a staging format no connector reads is refused before any work starts
    exportFormat(settings.format);
    this.settings = settings;
    this.durations = durations(settings);
    this.metrics = options.metrics ?? new PipelineMetrics();
    this.logger =
      options.logger ??
      createLogger({
        level: settings.verbose ? 'debug' : settings.json ? 'warn' : (process.env.WHARF_LOG_LEVEL ?? 'info'),
      });
  }

  /** The source URL; a usage error when none was given. */
  sourceUrl(): string {
    const url = this.settings.sourceUrl;
    if (!url) throw new UsageError('no source database given', 'pass --source-url or set WHARF_SOURCE_URL');
    return url;
  }

  /** The control database URL (the source's unless `--control-url` names another). */
  controlUrl(): string {
    return this.settings.controlUrl ?? this.sourceUrl();
  }

  source(): Promise<pg.Pool> {
    this.#source ??= this.#open('source', this.sourceUrl(), '--source-url / WHARF_SOURCE_URL', () => {
      this.#source = undefined;
    });
    return this.#source;
  }

  control(): Promise<pg.Pool> {
    const url = this.settings.controlUrl;
    if (!url) return this.source();
    this.#control ??= this.#open('control', url, '--control-url / WHARF_CONTROL_URL', () => {
      this.#control = undefined;
    });
    return this.#control;
  }

  /** Opens a pool; when that fails, it is forgotten so that a database that was down is tried again. */
  #open(role: string, url: string, flagHint: string, forget: () => void): Promise<pg.Pool> {
    const opening = openPool(url, role, flagHint);
    opening.catch(forget);
    return opening;
  }

  store(): StagingStore {
    this.#store ??= openStagingStore(this.settings.stagingUrl, {
      ...(this.settings.s3Endpoint ? { s3Endpoint: this.settings.s3Endpoint } : {}),
      ...(this.settings.s3PathStyle !== undefined ? { s3PathStyle: this.settings.s3PathStyle } : {}),
    });
    return this.#store;
  }

  /** The connector store on the control database, its schema migrated on first use. */
  connectors(): Promise<ConnectorStore> {
    this.#connectors ??= (async () => {
      const control = await this.control();
      const client = await control.connect();
      try {
        await migrateControl(client, this.settings.controlSchema);
      } finally {
        client.release();
      }
      return new ConnectorStore(control, masterKeysFromEnv(), this.settings.controlSchema);
    })();
    this.#connectors.catch(() => {
      this.#connectors = undefined;
    });
    return this.#connectors;
  }

  /** The limits of every warehouse session (`--lock-timeout`, `--statement-timeout`, `--stop-grace`), with a stop signal. */
  sessionLimits(signal?: AbortSignal): SessionLimits {
    const d = this.durations;
    return {
      lockTimeoutMs: d.lockTimeoutMs,
      statementTimeoutMs: d.statementTimeoutMs,
      stopGraceMs: d.stopGraceMs,
      ...(signal ? { signal } : {}),
    };
  }

  spoolDir(): string {
    return this.settings.spoolDir ?? join(process.env.WHARF_HOME ?? 'wharf-data', 'spool');
  }

  async close(): Promise<void> {
    const pools = [this.#source, this.#control].filter(Boolean) as Promise<pg.Pool>[];
    this.#source = undefined;
    this.#control = undefined;
    this.#connectors = undefined;
    for (const p of pools) {
      try {
        await (await p).end();
      } catch {
        // a pool that never opened has nothing to close
      }
    }
  }
}
