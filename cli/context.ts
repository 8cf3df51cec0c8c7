import { join } from 'node:path';
import type pg from 'pg';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Catalog } from '../catalog/types.js';
import { UsageError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/logger.js';
import { openPool } from '../core/pg-pool.js';
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
    if (!this.#source) {
      const opening = openPool(this.sourceUrl(), 'source', '--source-url / WHARF_SOURCE_URL');
      // a database that was down is tried again next time
      opening.catch(() => {
        if (this.#source === opening) this.#source = undefined;
      });
      this.#source = opening;
    }
    return this.#source;
  }

  control(): Promise<pg.Pool> {
    if (!this.settings.controlUrl) return this.source();
    if (!this.#control) {
      const opening = openPool(this.settings.controlUrl, 'control', '--control-url / WHARF_CONTROL_URL');
      opening.catch(() => {
        if (this.#control === opening) this.#control = undefined;
      });
      this.#control = opening;
    }
    return this.#control;
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
