import type { Connector, ConnectorFormat } from '../connectors/connector-store.js';
import { plannedThrough } from '../control/deliveries.js';
import { ProgressTable } from '../control/progress.js';
import { type CommittedWindow, WindowsTable } from '../control/windows.js';
import { parseEvery } from '../delivery/bucket-settings.js';
import { type DeliverySummary, deliverConnector } from '../delivery/deliver-connector.js';
import { bucketSettings } from '../destinations/bucket/bucket-kind.js';
import { kindOf } from '../destinations/registry.js';
import { STAGING_FORMAT } from '../staging/manifest.js';
import type { ConnectorJobOptions } from './connector-job.js';
import { destinationTarget } from './destination-target.js';
import type { Runtime } from './runtime.js';

/**
 * The windows a bucket connector's run needs: those ending after its last planned delivery (new slots), those
 * committed since its progress (revisions of windows already delivered), or a replay's range.
 */
async function windowsToConsider(
  rt: Runtime,
  connectorId: string,
  seenSeq: number,
  replay: ConnectorJobOptions['replay'],
): Promise<CommittedWindow[]> {
  const control = await rt.control();
  const table = new WindowsTable(rt.settings.controlSchema);
  if (replay) {
    return table.committed(control, STAGING_FORMAT, {
      ...(replay.from ? { endsAfter: replay.from } : {}),
      ...(replay.to ? { startsBefore: replay.to } : {}),
    });
  }
  const through = await plannedThrough(control, rt.settings.controlSchema, connectorId);
  const fresh = through ? await table.committed(control, STAGING_FORMAT, { endsAfter: through }) : [];
  const all = through ? fresh : await table.committed(control, STAGING_FORMAT);
  const revised =
    through && seenSeq > 0 ? await table.committed(control, STAGING_FORMAT, { afterSeq: seenSeq }) : [];
  const byId = new Map([...all, ...revised].map((w) => [w.id, w]));
  return [...byId.values()].sort((a, b) => a.seq - b.seq);
}

/**
 * Delivers a bucket connector's due deliveries (or a replay's new revisions), then advances its progress: it has
 * seen every window that ends by its last planned delivery (a slot still open is seen again next time).
 */
export async function deliverBucket(
  rt: Runtime,
  connector: Connector,
  options: ConnectorJobOptions,
): Promise<DeliverySummary> {
  const id = String(connector.id);
  const control = await rt.control();
  const progress = new ProgressTable(rt.settings.controlSchema);
  const seen = (await progress.get(control, id))?.seenSeq ?? 0;
  const windows = await windowsToConsider(rt, id, seen, options.replay);
  const kind = kindOf(connector);
  if (kind.family !== 'bucket') throw new Error(`connector ${id} is not a bucket connector`);
  const bucket = await kind.open(await destinationTarget(rt, connector));
  try {
    const summary = await deliverConnector({
      control: { pool: control, schema: rt.settings.controlSchema },
      staging: { store: rt.store(), windows },
      bucket,
      catalog: rt.catalog,
      connector: {
        id,
        account: String(connector.account),
        streams: connector.streams,
        format: connector.format as ConnectorFormat,
        everyMs: parseEvery(bucketSettings(connector.settings).every),
      },
      run: { logger: rt.logger, ...(options.replay ? { replay: options.replay } : {}) },
    });
    const through = await plannedThrough(control, rt.settings.controlSchema, id);
    const covered = windows.filter((w) => through !== undefined && w.end <= through);
    const last = covered.at(-1);
    await progress.advance(control, id, {
      seenSeq: options.replay ? 0 : covered.reduce((m, w) => Math.max(m, w.seq), seen),
      lastWindowId: last?.id ?? null,
      lastWindowEnd: last?.end ?? null,
      windows: options.replay ? 0 : summary.deliveries,
      rows: options.replay ? 0 : summary.rows,
    });
    return summary;
  } finally {
    await bucket.close();
  }
}
