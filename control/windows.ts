import type pg from 'pg';
import { quotePg } from '../db/postgres/quote.js';

/** A database handle: a pool or a checked-out client. */
type Db = pg.Pool | pg.ClientBase;

/** A committed window of one staging format, as the control `windows` table keeps it. */
export interface CommittedWindow {
  readonly id: string;
  readonly start: Date;
  readonly end: Date;
  readonly revision: number;
  readonly manifestKey: string;
  readonly files: number;
  readonly rows: number;
  readonly bytes: number;
  /** Order of commit: every window (a revision too) gets a larger number than the ones before it. */
  readonly seq: number;
}

/** What a window's export produced, to record it. */
export interface ExportedWindow {
  readonly id: string;
  readonly start: Date;
  readonly end: Date;
  readonly revision: number;
  readonly manifestKey: string;
  readonly files: number;
  readonly rows: number;
  readonly bytes: number;
}

/** Which committed windows to read. */
export interface WindowFilter {
  /** Windows ending after this instant. */
  readonly endsAfter?: Date;
  /** Windows starting before this instant. */
  readonly startsBefore?: Date;
  /** Windows committed after this `seq` (what a connector has not seen yet). */
  readonly afterSeq?: number;
}

/** A summary of a format's committed windows, with the database's clock. */
export interface WindowsSummary {
  readonly count: number;
  readonly newestEnd: Date | null;
  readonly newestSeq: number;
  readonly dbNow: Date;
}

interface WindowRow {
  window_id: string;
  start_at: Date;
  end_at: Date;
  revision: number;
  manifest_key: string;
  files: number;
  rows: string;
  bytes: string;
  seq: string;
}

const COLUMNS = 'window_id, start_at, end_at, revision, manifest_key, files, rows, bytes, seq';

function toWindow(r: WindowRow): CommittedWindow {
  return {
    id: r.window_id,
    start: r.start_at,
    end: r.end_at,
    revision: r.revision,
    manifestKey: r.manifest_key,
    files: r.files,
    rows: Number(r.rows),
    bytes: Number(r.bytes),
    seq: Number(r.seq),
  };
}

/**
 * The control `windows` table: one row per committed window and staging format. This module is the only
 * one that writes SQL against it.
 */
export class WindowsTable {
  readonly #t: string;

  constructor(controlSchema: string) {
    this.#t = `${quotePg(controlSchema)}.windows`;
  }

  /** The end of the newest exported window of `format` (where the next export starts), or null. */
  async exportedUpTo(db: Db, format: string): Promise<Date | null> {
    const r = await db.query<{ end_at: Date | null }>(
      `select max(end_at) as end_at from ${this.#t} where format = $1`,
      [format],
    );
    return r.rows[0]?.end_at ?? null;
  }

  /** Records an exported window (the manifest is written already); a second record of it changes nothing. */
  async record(db: Db, format: string, w: ExportedWindow): Promise<void> {
    await db.query(
      `insert into ${this.#t} (format, window_id, start_at, end_at, revision, manifest_key, files, rows, bytes)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (format, window_id) do nothing`,
      [format, w.id, w.start, w.end, w.revision, w.manifestKey, w.files, w.rows, w.bytes],
    );
  }

  /** Committed windows of `format` in commit order (`seq`: window order, a revision after the windows before it). */
  async committed(db: Db, format: string, filter: WindowFilter = {}): Promise<CommittedWindow[]> {
    const params: unknown[] = [format];
    let where = 'format = $1';
    if (filter.endsAfter) {
      params.push(filter.endsAfter);
      where += ` and end_at > $${params.length}`;
    }
    if (filter.startsBefore) {
      params.push(filter.startsBefore);
      where += ` and start_at < $${params.length}`;
    }
    if (filter.afterSeq !== undefined) {
      params.push(filter.afterSeq);
      where += ` and seq > $${params.length}`;
    }
    const { rows } = await db.query<WindowRow>(
      `select ${COLUMNS} from ${this.#t} where ${where} order by seq`,
      params,
    );
    return rows.map(toWindow);
  }

  /** The newest revision of each window of `format` that ends after `since` (the re-check after a long transaction). */
  async latestRevisionsEndingAfter(db: Db, format: string, since: Date): Promise<CommittedWindow[]> {
    const { rows } = await db.query<WindowRow>(
      `select distinct on (start_at) ${COLUMNS} from ${this.#t}
        where format = $1 and end_at > $2 order by start_at, revision desc`,
      [format, since],
    );
    return rows.map(toWindow);
  }

  /**
   * The newest revision of each committed window of `format` that the filter selects, in window order: the
   * windows of these spans (`spans`, start and end of each), or those in a range (`endsAfter`, `startsBefore`).
   */
  async latestRevisions(
    db: Db,
    format: string,
    filter: {
      readonly spans?: readonly { readonly start: Date; readonly end: Date }[];
      readonly endsAfter?: Date;
      readonly startsBefore?: Date;
    },
  ): Promise<CommittedWindow[]> {
    const params: unknown[] = [format];
    let where = 'format = $1';
    if (filter.spans) {
      params.push(
        filter.spans.map((w) => w.start),
        filter.spans.map((w) => w.end),
      );
      where += ` and (start_at, end_at) in (select * from unnest($2::timestamptz[], $3::timestamptz[]))`;
    }
    if (filter.endsAfter) {
      params.push(filter.endsAfter);
      where += ` and end_at > $${params.length}`;
    }
    if (filter.startsBefore) {
      params.push(filter.startsBefore);
      where += ` and start_at < $${params.length}`;
    }
    const { rows } = await db.query<WindowRow>(
      `select distinct on (start_at, end_at) ${COLUMNS} from ${this.#t}
        where ${where} order by start_at, end_at, revision desc`,
      params,
    );
    return rows.map(toWindow);
  }

  /** Count, newest end and newest `seq` of the committed windows of `format`, and the database's `now()`. */
  async summary(db: Db, format: string): Promise<WindowsSummary> {
    const { rows } = await db.query<{ n: string; newest: Date | null; seq: string | null; now: Date }>(
      `select count(*) as n, max(end_at) as newest, max(seq) as seq, now() as now from ${this.#t} where format = $1`,
      [format],
    );
    const r = rows[0]!;
    return { count: Number(r.n), newestEnd: r.newest, newestSeq: Number(r.seq ?? 0), dbNow: r.now };
  }

  /** How many committed windows of `format` end after `end` (all of them when `end` is null). */
  async countEndingAfter(db: Db, format: string, end: Date | null): Promise<number> {
    const { rows } = await db.query<{ n: string }>(
      `select count(*) as n from ${this.#t} where format = $1 and end_at > coalesce($2::timestamptz, '-infinity')`,
      [format, end],
    );
    return Number(rows[0]!.n);
  }

  /**
   * Windows of these formats that ended more than `olderThanMs` ago by the database's clock, oldest first,
   * never the newest window of a format (the exporter continues from it).
   */
  async olderThan(
    db: Db,
    formats: readonly string[],
    olderThanMs: number,
  ): Promise<(CommittedWindow & { readonly format: string })[]> {
    const { rows } = await db.query<WindowRow & { format: string }>(
      `select w.format, ${COLUMNS.split(', ')
        .map((c) => `w.${c}`)
        .join(', ')} from ${this.#t} w
        where w.format = any($1::text[])
          and w.end_at < now() - make_interval(secs => $2::double precision / 1000)
          and w.end_at < (select max(x.end_at) from ${this.#t} x where x.format = w.format)
        order by w.start_at, w.revision`,
      [formats, olderThanMs],
    );
    return rows.map((r) => ({ ...toWindow(r), format: r.format }));
  }

  /**
   * When windows of `format` were committed and where they end: the newest end committed by `since`, and each
   * window committed after it, in commit order (lag history: what a load that started at a time could load).
   */
  async endsCommittedSince(
    db: Db,
    format: string,
    since: Date,
  ): Promise<{ readonly before: Date | null; readonly after: { committedAt: Date; end: Date }[] }> {
    const before = await db.query<{ e: Date | null }>(
      `select max(end_at) as e from ${this.#t} where format = $1 and exported_at <= $2`,
      [format, since],
    );
    const { rows } = await db.query<{ exported_at: Date; end_at: Date }>(
      `select exported_at, end_at from ${this.#t} where format = $1 and exported_at > $2 order by exported_at, seq`,
      [format, since],
    );
    return {
      before: before.rows[0]?.e ?? null,
      after: rows.map((r) => ({ committedAt: r.exported_at, end: r.end_at })),
    };
  }

  /** Forgets a window (retention, after its files are deleted). */
  async delete(db: Db, format: string, windowId: string): Promise<void> {
    await db.query(`delete from ${this.#t} where format = $1 and window_id = $2`, [format, windowId]);
  }
}
