import type pg from 'pg';
import { WharfError } from '../core/errors.js';
import { quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';

/** A delivery decided: its id, time range, revision and the windows whose rows it holds. */
export interface PlannedDelivery {
  readonly id: string;
  /** The id without its revision suffix: the same for a delivery and its replays. */
  readonly baseId: string;
  readonly revision: number;
  readonly start: Date;
  readonly end: Date;
  /** Window ids, in window order. */
  readonly windows: readonly string[];
}

/** A delivery already planned, as the delivery state lists it. */
export interface KnownDelivery {
  readonly baseId: string;
  readonly revision: number;
  readonly start: Date;
  readonly end: Date;
}

/**
 * Bucket delivery state on Wharf's side, in the control schema: a delivery is recorded `pending` when it is
 * decided (so that a retry after a crash writes the same windows under the same keys) and `done` in the step that
 * follows its manifest. What the customer does with the objects afterwards changes nothing here: a delivery
 * that is done is never sent again, except as a new revision by `wharf replay`.
 */

/** The control migration that creates the delivery tables (`sql` takes the quoted control schema). */
export const deliveryStateMigration = {
  description: 'bucket deliveries and the windows they hold',
  sql: (s: string): string => `
    create table if not exists ${s}.deliveries (
      connector_id bigint not null references ${s}.connectors (id),
      delivery_id text not null,
      base_id text not null,
      revision int not null,
      start_at timestamptz not null,
      end_at timestamptz not null,
      status text not null default 'pending' check (status in ('pending', 'done')),
      manifest_key text,
      files int not null default 0,
      rows bigint not null default 0,
      bytes bigint not null default 0,
      planned_at timestamptz not null default now(),
      delivered_at timestamptz,
      primary key (connector_id, delivery_id)
    );
    create index if not exists deliveries_range_idx on ${s}.deliveries (connector_id, end_at);
    create index if not exists deliveries_pending_idx on ${s}.deliveries (connector_id, start_at)
      where status = 'pending';
    create table if not exists ${s}.delivery_windows (
      connector_id bigint not null,
      delivery_id text not null,
      window_id text not null,
      position int not null,
      primary key (connector_id, delivery_id, position),
      foreign key (connector_id, delivery_id) references ${s}.deliveries (connector_id, delivery_id)
    );
    create index if not exists delivery_windows_window_idx on ${s}.delivery_windows (connector_id, window_id);
  `,
} as const;

type Db = pg.Pool | pg.ClientBase;

/** A delivery as recorded. */
export interface DeliveryRecord extends PlannedDelivery {
  readonly status: 'pending' | 'done';
  /** What was written: the manifest's key (none when the delivery had no rows), files, rows and bytes. */
  readonly outcome: DeliveryOutcome;
}

/** What a finished delivery wrote. */
export interface DeliveryOutcome {
  readonly manifestKey: string | undefined;
  readonly files: number;
  readonly rows: number;
  readonly bytes: number;
}

interface DeliveryRow {
  delivery_id: string;
  base_id: string;
  revision: number;
  start_at: Date;
  end_at: Date;
  status: 'pending' | 'done';
  manifest_key: string | null;
  files: number;
  rows: string;
  bytes: string;
  windows: string[] | null;
}

const SELECT = `d.delivery_id, d.base_id, d.revision, d.start_at, d.end_at, d.status, d.manifest_key, d.files,
  d.rows, d.bytes, array(select w.window_id from %s.delivery_windows w
    where w.connector_id = d.connector_id and w.delivery_id = d.delivery_id order by w.position) as windows`;

function toRecord(row: DeliveryRow): DeliveryRecord {
  return {
    id: row.delivery_id,
    baseId: row.base_id,
    revision: row.revision,
    start: row.start_at,
    end: row.end_at,
    windows: row.windows ?? [],
    status: row.status,
    outcome: {
      manifestKey: row.manifest_key ?? undefined,
      files: row.files,
      rows: Number(row.rows),
      bytes: Number(row.bytes),
    },
  };
}

/** Records deliveries as decided (`pending`) with their windows, in one transaction; known ids are left alone. */
export async function recordPlanned(
  db: Db,
  schema: string,
  connectorId: string,
  planned: readonly PlannedDelivery[],
): Promise<void> {
  if (planned.length === 0) return;
  const s = quotePg(schema);
  await inTransaction(db, async (client) => {
    for (const d of planned) {
      const inserted = await client.query(
        `insert into ${s}.deliveries (connector_id, delivery_id, base_id, revision, start_at, end_at)
         values ($1, $2, $3, $4, $5, $6) on conflict do nothing`,
        [connectorId, d.id, d.baseId, d.revision, d.start, d.end],
      );
      if (inserted.rowCount === 0) continue;
      await client.query(
        `insert into ${s}.delivery_windows (connector_id, delivery_id, window_id, position)
         select $1, $2, w.id, w.position - 1 from unnest($3::text[]) with ordinality as w (id, position)`,
        [connectorId, d.id, d.windows],
      );
    }
  });
}

/** Marks a pending delivery done with what it wrote: the step right after its manifest. */
export async function recordDelivered(
  db: Db,
  schema: string,
  connectorId: string,
  deliveryId: string,
  outcome: DeliveryOutcome,
): Promise<void> {
  const r = await db.query(
    `update ${quotePg(schema)}.deliveries
        set status = 'done', manifest_key = $3, files = $4, rows = $5, bytes = $6, delivered_at = now()
      where connector_id = $1 and delivery_id = $2 and status = 'pending'`,
    [connectorId, deliveryId, outcome.manifestKey ?? null, outcome.files, outcome.rows, outcome.bytes],
  );
  if (r.rowCount !== 1) {
    throw new WharfError(`delivery ${deliveryId} is not pending`, {
      context: { connector: connectorId },
      hint: 'another process delivered it; nothing to do',
    });
  }
}

/** The deliveries decided but not done yet, in the order they are delivered (time, then revision). */
export async function pendingDeliveries(
  db: Db,
  schema: string,
  connectorId: string,
): Promise<DeliveryRecord[]> {
  const s = quotePg(schema);
  const { rows } = await db.query<DeliveryRow>(
    `select ${SELECT.replace('%s', s)} from ${s}.deliveries d
      where d.connector_id = $1 and d.status = 'pending' order by d.start_at, d.revision`,
    [connectorId],
  );
  return rows.map(toRecord);
}

/** A connector's deliveries, newest first (for status and tests). */
export async function listDeliveries(
  db: Db,
  schema: string,
  connectorId: string,
  limit = 100,
): Promise<DeliveryRecord[]> {
  const s = quotePg(schema);
  const { rows } = await db.query<DeliveryRow>(
    `select ${SELECT.replace('%s', s)} from ${s}.deliveries d
      where d.connector_id = $1 order by d.start_at desc, d.revision desc limit $2`,
    [connectorId, limit],
  );
  return rows.map(toRecord);
}

/** The end of the last delivery decided (revision 0): new deliveries start there. */
export async function plannedThrough(db: Db, schema: string, connectorId: string): Promise<Date | undefined> {
  const { rows } = await db.query<{ end_at: Date | null }>(
    `select max(end_at) as end_at from ${quotePg(schema)}.deliveries where connector_id = $1 and revision = 0`,
    [connectorId],
  );
  return rows[0]?.end_at ?? undefined;
}

/** Every delivery decided whose range meets `[from, to)` (all when open-ended): what replays build on. */
export async function knownDeliveries(
  db: Db,
  schema: string,
  connectorId: string,
  range: { readonly from?: Date; readonly to?: Date } = {},
): Promise<KnownDelivery[]> {
  const { rows } = await db.query<{ base_id: string; revision: number; start_at: Date; end_at: Date }>(
    `select base_id, revision, start_at, end_at from ${quotePg(schema)}.deliveries
      where connector_id = $1 and ($2::timestamptz is null or end_at > $2) and ($3::timestamptz is null or start_at < $3)
      order by start_at, revision`,
    [connectorId, range.from ?? null, range.to ?? null],
  );
  return rows.map((r) => ({ baseId: r.base_id, revision: r.revision, start: r.start_at, end: r.end_at }));
}

/** Which of `windowIds` some delivery of the connector already holds. */
export async function deliveredWindows(
  db: Db,
  schema: string,
  connectorId: string,
  windowIds: readonly string[],
): Promise<Set<string>> {
  if (windowIds.length === 0) return new Set();
  const { rows } = await db.query<{ window_id: string }>(
    `select distinct window_id from ${quotePg(schema)}.delivery_windows
      where connector_id = $1 and window_id = any($2::text[])`,
    [connectorId, windowIds],
  );
  return new Set(rows.map((r) => r.window_id));
}

/** Which of `windowIds` a delivery of the connector holds that is done (what retention may prune). */
export async function doneWindows(
  db: Db,
  schema: string,
  connectorId: string,
  windowIds: readonly string[],
): Promise<Set<string>> {
  if (windowIds.length === 0) return new Set();
  const s = quotePg(schema);
  const { rows } = await db.query<{ window_id: string }>(
    `select distinct w.window_id from ${s}.delivery_windows w
       join ${s}.deliveries d on d.connector_id = w.connector_id and d.delivery_id = w.delivery_id
      where w.connector_id = $1 and d.status = 'done' and w.window_id = any($2::text[])`,
    [connectorId, windowIds],
  );
  return new Set(rows.map((r) => r.window_id));
}

/** Per bucket connector: its deliveries done, objects and bytes in all, and the last one. */
export interface DeliveryStats {
  readonly deliveries: number;
  readonly objects: number;
  readonly bytes: number;
  readonly lastDelivery: string | null;
  readonly lastDeliveredAt: Date | null;
}

/** Delivery statistics of every bucket connector that delivered something (one query). */
export async function deliveryStats(db: Db, schema: string): Promise<Map<string, DeliveryStats>> {
  const { rows } = await db.query<{
    connector_id: string;
    n: string;
    files: string;
    bytes: string;
    last: string | null;
    at: Date | null;
  }>(
    `select connector_id, count(*) as n, sum(files) as files, sum(bytes) as bytes,
            (array_agg(delivery_id order by delivered_at desc))[1] as last, max(delivered_at) as at
       from ${quotePg(schema)}.deliveries where status = 'done' group by connector_id`,
  );
  return new Map(
    rows.map((r) => [
      String(r.connector_id),
      {
        deliveries: Number(r.n),
        objects: Number(r.files),
        bytes: Number(r.bytes),
        lastDelivery: r.last,
        lastDeliveredAt: r.at,
      },
    ]),
  );
}
