import type pg from 'pg';
import { quotePg } from '../db/postgres/quote.js';

type Db = pg.Pool | pg.ClientBase;

/**
 * What a connector has done, kept in the control database so that a tick knows who is behind without asking
 * any warehouse, and so that it survives a restart. `seenSeq` is the newest committed window (by `seq`) the
 * connector's last successful run considered: every window up to it is in the connector's ledger, so it is a
 * safe lower bound (it is advanced only after the warehouse committed, so never ahead of the ledger).
 */
export interface ConnectorProgress {
  readonly connectorId: string;
  readonly seenSeq: number;
  /** The catalog version the connector's warehouse was last migrated to (null: not known yet). */
  readonly catalogVersion: number | null;
  readonly lastWindowId: string | null;
  readonly lastWindowEnd: Date | null;
  /** Windows and rows loaded (replays not counted). */
  readonly windows: number;
  readonly rows: number;
  readonly loadedAt: Date | null;
}

/** What a successful run adds to a connector's progress. */
export interface ProgressUpdate {
  readonly seenSeq: number;
  readonly catalogVersion?: number;
  readonly lastWindowId?: string | null;
  readonly lastWindowEnd?: Date | null;
  readonly windows: number;
  readonly rows: number;
}

interface ProgressRow {
  connector_id: string;
  seen_seq: string;
  catalog_version: number | null;
  last_window_id: string | null;
  last_window_end: Date | null;
  windows: string;
  rows: string;
  loaded_at: Date | null;
}

function toProgress(r: ProgressRow): ConnectorProgress {
  return {
    connectorId: String(r.connector_id),
    seenSeq: Number(r.seen_seq),
    catalogVersion: r.catalog_version,
    lastWindowId: r.last_window_id,
    lastWindowEnd: r.last_window_end,
    windows: Number(r.windows),
    rows: Number(r.rows),
    loadedAt: r.loaded_at,
  };
}

/** The control `connector_progress` table: the only module with SQL against it. */
export class ProgressTable {
  readonly #s: string;

  constructor(controlSchema: string) {
    this.#s = quotePg(controlSchema);
  }

  /** Every connector's progress (connectors that never ran have none). */
  async all(db: Db): Promise<Map<string, ConnectorProgress>> {
    const { rows } = await db.query<ProgressRow>(`select * from ${this.#s}.connector_progress`);
    return new Map(rows.map((r) => [String(r.connector_id), toProgress(r)]));
  }

  async get(db: Db, connectorId: string): Promise<ConnectorProgress | undefined> {
    const { rows } = await db.query<ProgressRow>(
      `select * from ${this.#s}.connector_progress where connector_id = $1`,
      [connectorId],
    );
    return rows[0] ? toProgress(rows[0]) : undefined;
  }

  /**
   * The active connectors that have committed windows of `format` they have not seen: one query, whatever the
   * number of connectors; a connector with nothing new costs nothing more.
   */
  async behind(db: Db, format: string): Promise<string[]> {
    const { rows } = await db.query<{ id: string }>(
      `select c.id from ${this.#s}.connectors c
         left join ${this.#s}.connector_progress p on p.connector_id = c.id
        where c.state = 'active'
          and coalesce(p.seen_seq, 0) < (select coalesce(max(w.seq), 0) from ${this.#s}.windows w where w.format = $1)
        order by c.id`,
      [format],
    );
    return rows.map((r) => String(r.id));
  }

  /** Adds a successful run's work; `seenSeq`, the last window and the catalog version only move forward. */
  async advance(db: Db, connectorId: string, u: ProgressUpdate): Promise<void> {
    await db.query(
      `insert into ${this.#s}.connector_progress as p
              (connector_id, seen_seq, catalog_version, last_window_id, last_window_end, windows, rows, loaded_at)
       values ($1, $2, $3, $4, $5, $6, $7, now())
       on conflict (connector_id) do update set
         seen_seq = greatest(p.seen_seq, excluded.seen_seq),
         catalog_version = coalesce(excluded.catalog_version, p.catalog_version),
         last_window_id = case when excluded.last_window_end >= coalesce(p.last_window_end, '-infinity')
                               then excluded.last_window_id else p.last_window_id end,
         last_window_end = greatest(p.last_window_end, excluded.last_window_end),
         windows = p.windows + excluded.windows,
         rows = p.rows + excluded.rows,
         loaded_at = case when excluded.windows > 0 then now() else p.loaded_at end`,
      [
        connectorId,
        u.seenSeq,
        u.catalogVersion ?? null,
        u.lastWindowId ?? null,
        u.lastWindowEnd ?? null,
        u.windows,
        u.rows,
      ],
    );
  }

  /** Sets what a warehouse's ledger says (a connector loaded before progress was kept, or after a replay). */
  async reset(
    db: Db,
    connectorId: string,
    p: Omit<ConnectorProgress, 'connectorId' | 'seenSeq'>,
  ): Promise<void> {
    await db.query(
      `insert into ${this.#s}.connector_progress as x
              (connector_id, catalog_version, last_window_id, last_window_end, windows, rows, loaded_at)
       values ($1, $2, $3, $4, $5, $6, $7)
       on conflict (connector_id) do update set catalog_version = coalesce(excluded.catalog_version, x.catalog_version),
         last_window_id = excluded.last_window_id, last_window_end = excluded.last_window_end,
         windows = excluded.windows, rows = excluded.rows, loaded_at = excluded.loaded_at`,
      [connectorId, p.catalogVersion, p.lastWindowId, p.lastWindowEnd, p.windows, p.rows, p.loadedAt],
    );
  }
}
