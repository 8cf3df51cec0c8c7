import type pg from 'pg';
import { quotePg } from '../db/postgres/quote.js';

type Db = pg.Pool | pg.ClientBase;

/** One run as the history shows it, with the account of its connector. */
export interface RunEntry {
  readonly id: string;
  readonly kind: string;
  readonly connectorId: string | null;
  readonly account: string | null;
  readonly startedAt: Date;
  readonly finishedAt: Date | null;
  readonly status: string;
  readonly windows: number;
  readonly rows: number;
  readonly error: string | null;
}

/** Which runs, newest first. */
export interface RunFilter {
  readonly connectorId?: string;
  /** Only runs of this account's connectors (runs of no connector, such as exports, are left out). */
  readonly account?: string;
  readonly status?: string;
  readonly kind?: string;
  /** Runs older than this run (the next page). */
  readonly before?: string;
  /** Runs started at or after this time. */
  readonly since?: Date;
  readonly limit: number;
}

interface RunRow {
  id: string;
  kind: string;
  connector_id: string | null;
  account_id: string | null;
  started_at: Date;
  finished_at: Date | null;
  status: string;
  windows: number;
  rows: string;
  error: string | null;
}

function toEntry(r: RunRow): RunEntry {
  return {
    id: String(r.id),
    kind: r.kind,
    connectorId: r.connector_id === null ? null : String(r.connector_id),
    account: r.account_id === null ? null : String(r.account_id),
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    status: r.status,
    windows: r.windows,
    rows: Number(r.rows),
    error: r.error,
  };
}

/** Reads the control `runs` table (written by `recordRun`): the history the API and the console show. */
export class RunHistory {
  readonly #s: string;

  constructor(controlSchema: string) {
    this.#s = quotePg(controlSchema);
  }

  /** Runs matching the filter, newest first. */
  async list(db: Db, f: RunFilter): Promise<RunEntry[]> {
    const { rows } = await db.query<RunRow>(
      `select r.id, r.kind, r.connector_id, c.account_id, r.started_at, r.finished_at, r.status, r.windows, r.rows, r.error
         from ${this.#s}.runs r left join ${this.#s}.connectors c on c.id = r.connector_id
        where ($1::bigint is null or r.connector_id = $1)
          and ($2::bigint is null or c.account_id = $2)
          and ($3::text is null or r.status = $3)
          and ($4::text is null or r.kind = $4)
          and ($5::bigint is null or (r.started_at, r.id) < (select b.started_at, b.id from ${this.#s}.runs b where b.id = $5))
          and ($6::timestamptz is null or r.started_at >= $6)
        order by r.started_at desc, r.id desc
        limit $7`,
      [
        f.connectorId ?? null,
        f.account ?? null,
        f.status ?? null,
        f.kind ?? null,
        f.before ?? null,
        f.since ?? null,
        f.limit,
      ],
    );
    return rows.map(toEntry);
  }

  /** The newest successful run of a connector's kind started before `before`, if any. */
  async lastOkBefore(db: Db, connectorId: string, kind: string, before: Date): Promise<RunEntry | undefined> {
    const { rows } = await db.query<RunRow>(
      `select r.id, r.kind, r.connector_id, null as account_id, r.started_at, r.finished_at, r.status, r.windows,
              r.rows, r.error
         from ${this.#s}.runs r
        where r.connector_id = $1 and r.kind = $2 and r.status = 'ok' and r.started_at < $3
        order by r.started_at desc limit 1`,
      [connectorId, kind, before],
    );
    return rows[0] ? toEntry(rows[0]) : undefined;
  }
}
