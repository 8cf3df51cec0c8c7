import { join } from 'node:path';
import type pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Catalog } from '../catalog/types.js';
import { UsageError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';
import { openPool } from '../db/postgres/pool.js';
import { openStagingStore } from '../staging/open-store.js';
import type { StagingStore } from '../staging/staging-store.js';
import { durations, type ResolvedDurations, type Settings } from './settings.js';

/** What a command needs, opened on first use and closed once at the end. */
export class CommandContext {
  readonly settings: Settings;
  readonly logger: Logger;
  readonly catalog: Catalog = trackingCatalog;
  #source: Promise<pg.Pool> | undefined;
  #control: Promise<pg.Pool> | undefined;
  #store: StagingStore | undefined;

  constructor(settings: Settings) {
    this.settings = settings;
    this.logger = createLogger({
      level: settings.verbose ? 'debug' : settings.json ? 'warn' : (process.env.WHARF_LOG_LEVEL ?? 'info'),
    });
  }

  get durations(): ResolvedDurations {
    return durations(this.settings);
  }

  sourceUrl(): string {
    const url = this.settings.sourceUrl;
    if (!url) throw new UsageError('no source database given', 'pass --source-url or set WHARF_SOURCE_URL');
    return url;
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

  /** Opens a pool; when that fails, `forget` clears it so that a database that was down is tried again. */
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

  spoolDir(): string {
    return this.settings.spoolDir ?? join(process.env.WHARF_HOME ?? 'wharf-data', 'spool');
  }

  async close(): Promise<void> {
    const pools = [this.#source, this.#control].filter(Boolean) as Promise<pg.Pool>[];
    for (const p of pools) {
      try {
        await (await p).end();
      } catch {
        // a pool that never opened has nothing to close
      }
    }
  }
}
