import type { Connector } from '../connectors/connector-store.js';
import { RunHistory } from '../control/run-history.js';
import { WindowsTable } from '../control/windows.js';
import { STAGING_FORMAT } from '../staging/manifest.js';
import type { Runtime } from './runtime.js';

/** The lag of a connector at the end of one of its runs (loads of a warehouse, deliveries of a bucket). */
export interface LagPoint {
  readonly at: Date;
  /** Seconds from the end of the newest window it had loaded to the end of the run; null before any load. */
  readonly lagSeconds: number | null;
  readonly status: string;
}

/** At most this many runs are read for one history (a run a minute for 24 hours is 1,440). */
const MAX_RUNS = 5000;

/**
 * A connector's lag over the last `hours`, one point per load run, from run history and the windows' commit
 * times: a successful load loads every window committed before it started, so after it the newest window
 * loaded is the newest one committed by its start; a failed or skipped run leaves it where it was.
 */
export async function lagHistory(
  rt: Runtime,
  connector: Pick<Connector, 'id' | 'family'>,
  hours: number,
): Promise<LagPoint[]> {
  const connectorId = String(connector.id);
  const kind = connector.family === 'bucket' ? 'deliver' : 'load';
  const control = await rt.control();
  const history = new RunHistory(rt.settings.controlSchema);
  const since = new Date(Date.now() - hours * 3_600_000);
  const runs = (await history.list(control, { connectorId, kind, since, limit: MAX_RUNS })).reverse();
  const previous = await history.lastOkBefore(control, connectorId, kind, since);
  const from = previous && previous.startedAt < since ? previous.startedAt : since;
  const windows = await new WindowsTable(rt.settings.controlSchema).endsCommittedSince(
    control,
    STAGING_FORMAT,
    from,
  );
  let committedEnd = windows.before;
  let next = 0;
  const committedBy = (t: Date): Date | null => {
    while (next < windows.after.length && windows.after[next]!.committedAt <= t) {
      const end = windows.after[next++]!.end;
      if (!committedEnd || end > committedEnd) committedEnd = end;
    }
    return committedEnd;
  };
  let loadedEnd: Date | null = previous ? committedBy(previous.startedAt) : null;
  const points: LagPoint[] = [];
  for (const run of runs) {
    if (run.status === 'ok') loadedEnd = committedBy(run.startedAt) ?? loadedEnd;
    const at = run.finishedAt ?? run.startedAt;
    points.push({
      at,
      lagSeconds: loadedEnd ? Math.max(0, Math.round((at.getTime() - loadedEnd.getTime()) / 1000)) : null,
      status: run.status,
    });
  }
  return points;
}
