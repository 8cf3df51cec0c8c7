import type pg from 'pg';
import type { Catalog } from '../catalog/types.js';
import {
  deliveredWindows,
  knownDeliveries,
  pendingDeliveries,
  plannedThrough,
  recordDelivered,
  recordPlanned,
} from '../control/deliveries.js';
import { WharfError, withContext } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/logger.js';
import type { FormatName } from '../exporter/writers/file-format.js';
import { readManifest } from '../staging/manifest.js';
import type { StagingStore } from '../staging/staging-store.js';
import type { BucketClient } from './bucket-client.js';
import { type DeliveryTuning, deliver, type StagedWindow } from './deliver.js';
import {
  type CommittedWindow,
  latestRevisions,
  type PlannedDelivery,
  planDeliveries,
  planRevisions,
} from './delivery-plan.js';

/** Deliveries whose objects are written at once (their manifests still in order). */
const DELIVERIES_IN_FLIGHT = 2;

/** A bucket connector: whose rows, which streams, in what format, how often. */
export interface BucketConnector {
  readonly id: string;
  readonly account: string;
  readonly streams: readonly string[];
  readonly format: FormatName;
  /** `--every` in milliseconds. */
  readonly everyMs: number;
}

/** How one run goes. */
export interface DeliveryRun {
  /** Re-deliver the deliveries meeting `[from, to)` as new revisions (`wharf replay`). */
  readonly replay?: { readonly from?: Date; readonly to?: Date };
  readonly tuning?: DeliveryTuning & { readonly maxRowsPerDelivery?: number };
  /** `wait` (one-shot commands) blocks until another run of the connector is done; `skip` returns at once. */
  readonly lock?: 'wait' | 'skip';
  readonly logger?: Logger;
  /** Called between steps (`object`, `manifest`, `recorded`); crash tests stop the process there. */
  readonly onStep?: (step: 'object' | 'manifest' | 'recorded') => void;
}

export interface DeliverConnectorOptions {
  /** The control database and schema (delivery state). */
  readonly control: { readonly pool: pg.Pool; readonly schema: string };
  /** The staging store and its committed windows (every revision; the `windows` table's rows of the csv format). */
  readonly staging: { readonly store: StagingStore; readonly windows: readonly CommittedWindow[] };
  readonly bucket: BucketClient;
  readonly catalog: Catalog;
  readonly connector: BucketConnector;
  readonly run?: DeliveryRun;
}

export interface DeliverySummary {
  connector: string;
  /** Deliveries done by this run (with rows or without). */
  deliveries: number;
  files: number;
  /** Objects found already stored with the same bytes (deliveries completed after a crash). */
  existing: number;
  rows: number;
  bytes: number;
  seconds: number;
  /** Another run of the connector held its lock (`lock: 'skip'`). */
  skipped: boolean;
  lastDelivery: string | null;
}

/**
 * One run of a bucket connector: decide the deliveries due (closed slots after the last one; new revisions of
 * deliveries whose windows were re-exported; replays), record them pending, then deliver each pending delivery in
 * order and record it done right after its manifest. One run per connector at a time (an advisory lock); a run
 * killed anywhere is completed by the next with the same keys and bytes.
 */
export async function deliverConnector(options: DeliverConnectorOptions): Promise<DeliverySummary> {
  const started = Date.now();
  const { connector, control } = options;
  const run = options.run ?? {};
  const log = run.logger ?? silentLogger();
  const summary: DeliverySummary = {
    connector: connector.id,
    deliveries: 0,
    files: 0,
    existing: 0,
    rows: 0,
    bytes: 0,
    seconds: 0,
    skipped: false,
    lastDelivery: null,
  };
  const client = await control.pool.connect();
  const lockKey = `wharf.deliver.${control.schema}.${connector.id}`;
  let locked = false;
  try {
    if (run.lock === 'skip') {
      const r = await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [
        lockKey,
      ]);
      locked = r.rows[0]!.ok;
      if (!locked) {
        summary.skipped = true;
        return summary;
      }
    } else {
      await client.query('select pg_advisory_lock(hashtext($1))', [lockKey]);
      locked = true;
    }
    await recordPlanned(client, control.schema, connector.id, await planDue(client, options));

    const byId = new Map(options.staging.windows.map((w) => [w.id, w]));
    const pending = await pendingDeliveries(client, control.schema, connector.id);
    // two deliveries in flight: the next one's objects go up while the one before finishes; each manifest and
    // each `done` waits for the delivery before it, so manifests appear in delivery order
    const tasks: Promise<void>[] = [];
    let failed = false;
    for (const [i, delivery] of pending.entries()) {
      if (i >= DELIVERIES_IN_FLIGHT) await tasks[i - DELIVERIES_IN_FLIGHT]!.catch(() => {});
      if (failed) break;
      const windows = await stagedWindows(options, delivery, byId);
      const before = tasks[i - 1] ?? Promise.resolve();
      const task = (async () => {
        const result = await deliver(
          {
            store: options.staging.store,
            bucket: options.bucket,
            catalog: options.catalog,
            target: {
              connectorId: connector.id,
              account: connector.account,
              streams: connector.streams,
              format: connector.format,
            },
            ...(run.tuning ? { tuning: run.tuning } : {}),
            hooks: { beforeManifest: () => before, ...(run.onStep ? { onStep: run.onStep } : {}) },
          },
          delivery,
          windows,
        );
        await before;
        await recordDelivered(client, control.schema, connector.id, delivery.id, {
          manifestKey: result.manifestKey,
          files: result.files.length,
          rows: result.rows,
          bytes: result.bytes,
        });
        run.onStep?.('recorded');
        summary.deliveries++;
        summary.files += result.files.length - result.existing;
        summary.existing += result.existing;
        summary.rows += result.rows;
        summary.bytes += result.bytes;
        summary.lastDelivery = delivery.id;
        if (result.manifestKey !== undefined) {
          log.info(
            { connector: connector.id, delivery: delivery.id, files: result.files.length, rows: result.rows },
            `delivered ${delivery.id} to connector ${connector.id}`,
          );
        }
      })();
      task.catch(() => {
        failed = true;
      });
      tasks.push(task);
    }
    // the first failure in delivery order (a later delivery fails with it, before its manifest)
    for (const outcome of await Promise.allSettled(tasks)) {
      if (outcome.status === 'rejected') throw outcome.reason;
    }
  } catch (error) {
    throw withContext(error, { connector: connector.id });
  } finally {
    if (locked) await client.query('select pg_advisory_unlock(hashtext($1))', [lockKey]).catch(() => {});
    client.release();
    summary.seconds = (Date.now() - started) / 1000;
  }
  return summary;
}

/** The deliveries to decide now. */
async function planDue(client: pg.ClientBase, options: DeliverConnectorOptions): Promise<PlannedDelivery[]> {
  const { connector, control } = options;
  const windows = options.staging.windows;
  const replay = options.run?.replay;
  if (replay) {
    const known = await knownDeliveries(client, control.schema, connector.id, replay);
    return planRevisions(known, windows, replay);
  }
  const through = await plannedThrough(client, control.schema, connector.id);
  const planned: PlannedDelivery[] = [];
  if (through !== undefined) {
    // windows re-exported as a new revision after their slot was delivered: a new revision of that delivery
    const late = latestRevisions(windows).filter(
      (w) => w.revision > 0 && w.start.getTime() < through.getTime(),
    );
    if (late.length > 0) {
      const held = await deliveredWindows(
        client,
        control.schema,
        connector.id,
        late.map((w) => w.id),
      );
      const fresh = late.filter((w) => !held.has(w.id));
      if (fresh.length > 0) {
        const known = await knownDeliveries(client, control.schema, connector.id, {
          from: fresh[0]!.start,
          to: fresh[fresh.length - 1]!.end,
        });
        planned.push(...planRevisions(known, windows, { only: new Set(fresh.map((w) => w.id)) }));
      }
    }
  }
  const maxRows = options.run?.tuning?.maxRowsPerDelivery;
  planned.push(
    ...planDeliveries(windows, through, {
      everyMs: connector.everyMs,
      ...(maxRows === undefined ? {} : { maxRows }),
    }),
  );
  return planned;
}

/** The manifests of a delivery's windows, in its order. */
async function stagedWindows(
  options: DeliverConnectorOptions,
  delivery: PlannedDelivery,
  byId: ReadonlyMap<string, CommittedWindow>,
): Promise<StagedWindow[]> {
  const out: StagedWindow[] = [];
  for (const id of delivery.windows) {
    const window = byId.get(id);
    if (window === undefined) {
      throw new WharfError(`window ${id} of delivery ${delivery.id} is not committed in staging`, {
        context: { window: id },
        hint: 'was staging retention run past it? replay the delivery once the window is exported again',
      });
    }
    out.push({ id, manifest: await readManifest(options.staging.store, window.manifestKey) });
  }
  return out;
}
