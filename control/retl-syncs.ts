import type pg from 'pg';
import type { MasterKeyring } from '../connectors/master-key.js';
import { WharfError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';
import { RetlSecrets } from './retl-secrets.js';
import { retlId } from './retl-sources.js';

/** `active`; `failing`: parked by a terminal error until enabled again (or a run succeeds); `disabled`. */
export type RetlSyncState = 'active' | 'failing' | 'disabled';

/** A reverse-ETL sync as stored. Never holds the write key. */
export interface RetlSync {
  readonly id: string;
  readonly sourceId: string;
  readonly name: string;
  readonly description: string | null;
  /** `identify`, `track`, `group`, `page`, `screen` or `alias`. */
  readonly type: string;
  /** The query as written, with `{{last_sync_time}}`. */
  readonly query: string;
  readonly everyMs: number;
  readonly timeoutMs: number;
  readonly lookbackMs: number;
  /**
   * The schedule's start, µs since the epoch: the sync is not due before it (its first run still binds
   * `last_sync_time` = 0).
   */
  readonly startAtMicros: number;
  /** The batch endpoint without its write key. */
  readonly deliverTo: string;
  readonly state: RetlSyncState;
  readonly stateReason: string | null;
  readonly createdAt: Date;
}

/** What a new sync is made of (checked by the caller); without `startAtMicros`, it starts now. */
export type NewRetlSync = Omit<RetlSync, 'id' | 'state' | 'stateReason' | 'createdAt' | 'startAtMicros'> & {
  readonly startAtMicros?: number;
  readonly writeKey: Secret;
};

/** A sync the scheduler should run now. */
export interface DueSync {
  readonly id: string;
  readonly everyMs: number;
  /** When its last run started (control database clock); null before its first run. */
  readonly lastStartedAt: Date | null;
}

interface SyncRow {
  id: string;
  source_id: string;
  name: string;
  description: string | null;
  call_type: string;
  query: string;
  every_ms: string;
  timeout_ms: string;
  lookback_ms: string;
  start_at_micros: string;
  deliver_to: string;
  state: RetlSyncState;
  state_reason: string | null;
  created_at: Date;
}

/**
 * Reverse-ETL syncs in the control database (`retl_syncs`), their write keys sealed in `retl_secrets`:
 * the only code that writes SQL against `retl_syncs`.
 */
export class RetlSyncStore {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #secrets: RetlSecrets;

  constructor(pool: pg.Pool, keys: MasterKeyring, schema: string) {
    this.#pool = pool;
    this.#schema = schema;
    this.#secrets = new RetlSecrets(pool, keys, schema);
  }

  /** Adds a sync and its write key in one transaction; a name already used on the source is refused. */
  async add(sync: NewRetlSync): Promise<RetlSync> {
    const s = quotePg(this.#schema);
    const id = await inTransaction(this.#pool, async (c) => {
      let row: pg.QueryResult<{ id: string }>;
      try {
        row = await c.query<{ id: string }>(
          `insert into ${s}.retl_syncs (source_id, name, description, call_type, query, every_ms, timeout_ms,
             lookback_ms, start_at_micros, deliver_to)
           values ($1, $2, $3, $4, $5, $6, $7, $8,
                   coalesce($9::bigint, (extract(epoch from now()) * 1000000)::bigint), $10)
           returning id::text`,
          [
            sync.sourceId,
            sync.name,
            sync.description,
            sync.type,
            sync.query,
            sync.everyMs,
            sync.timeoutMs,
            sync.lookbackMs,
            sync.startAtMicros ?? null,
            sync.deliverTo,
          ],
        );
      } catch (error) {
        if ((error as { code?: string }).code !== '23505') throw error;
        throw new WharfError(
          `source ${sync.sourceId} already has a sync named ${JSON.stringify(sync.name)}`,
          {
            kind: 'usage',
            code: '23505',
            hint: 'choose another --name (see `wharf retl syncs list`)',
          },
        );
      }
      const created = row.rows[0]!.id;
      await this.#secrets.seal(c, 'sync', created, { write_key: sync.writeKey });
      return created;
    });
    return this.get(id);
  }

  async get(id: string | number): Promise<RetlSync> {
    const syncId = retlId(id, 'a sync id');
    const found = (await this.#select('where y.id = $1', [syncId]))[0];
    if (found === undefined) {
      throw new WharfError(`there is no reverse-ETL sync ${syncId}`, {
        kind: 'usage',
        code: 'not_found',
        hint: 'see `wharf retl syncs list`',
      });
    }
    return found;
  }

  /** Every sync, by id. */
  list(): Promise<RetlSync[]> {
    return this.#select('', []);
  }

  /** The sync's write key. */
  async writeKey(id: string): Promise<Secret> {
    const key = (await this.#secrets.open('sync', id)).write_key;
    if (key === undefined)
      throw new WharfError(`sync ${id} has no write key`, { hint: 'add the sync again' });
    return key;
  }

  /** Sets the sync's state and the reason shown by `syncs show` and `status`. */
  async setState(id: string, state: RetlSyncState, reason?: string): Promise<RetlSync> {
    await this.#pool.query(
      `update ${quotePg(this.#schema)}.retl_syncs set state = $2, state_reason = $3, updated_at = now() where id = $1`,
      [retlId(id, 'a sync id'), state, reason ?? null],
    );
    return this.get(id);
  }

  /**
   * The active syncs of active sources whose schedule has started (`start_at_micros`) and whose last run
   * started at least their frequency ago (or that never ran), on the control database's clock, longest waiting
   * first. `aheadMs` counts a sync due that far early (a scheduler that looks every minute passes a little, so
   * that a 1-minute sync is not put off a whole tick).
   */
  async due(aheadMs = 0): Promise<DueSync[]> {
    const s = quotePg(this.#schema);
    const rows = await this.#pool.query<{ id: string; every_ms: string; last_started_at: Date | null }>(
      `select y.id::text, y.every_ms::text, last.started_at as last_started_at
         from ${s}.retl_syncs y
         join ${s}.retl_sources src on src.id = y.source_id
         left join lateral (
           select u.started_at from ${s}.retl_runs r join ${s}.runs u on u.id = r.run_id
            where r.sync_id = y.id order by r.run_id desc limit 1) last on true
        where y.state = 'active' and src.state = 'active'
          and y.start_at_micros <= (extract(epoch from now()) * 1000000)::bigint + $1::bigint * 1000
          and (last.started_at is null
               or last.started_at + (y.every_ms - $1) * interval '1 millisecond' <= now())
        order by last.started_at nulls first, y.id`,
      [Math.max(0, Math.round(aheadMs))],
    );
    return rows.rows.map((r) => ({
      id: r.id,
      everyMs: Number(r.every_ms),
      lastStartedAt: r.last_started_at,
    }));
  }

  async #select(where: string, values: unknown[]): Promise<RetlSync[]> {
    const rows = await this.#pool.query<SyncRow>(
      `select y.id::text, y.source_id::text, y.name, y.description, y.call_type, y.query, y.every_ms::text,
              y.timeout_ms::text, y.lookback_ms::text, y.start_at_micros::text, y.deliver_to, y.state,
              y.state_reason, y.created_at
         from ${quotePg(this.#schema)}.retl_syncs y ${where} order by y.id`,
      values,
    );
    return rows.rows.map((r) => ({
      id: r.id,
      sourceId: r.source_id,
      name: r.name,
      description: r.description,
      type: r.call_type,
      query: r.query,
      everyMs: Number(r.every_ms),
      timeoutMs: Number(r.timeout_ms),
      lookbackMs: Number(r.lookback_ms),
      startAtMicros: Number(r.start_at_micros),
      deliverTo: r.deliver_to,
      state: r.state,
      stateReason: r.state_reason,
      createdAt: r.created_at,
    }));
  }
}
