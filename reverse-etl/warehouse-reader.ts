import pg from 'pg';
import Cursor from 'pg-cursor';
import { hasCode, WharfError } from '../core/errors.js';
import { redactUrls } from '../core/secret.js';
import { watchClient } from '../db/postgres/connection.js';
import { classifyPgError } from '../db/postgres/errors.js';
import { type BoundParameter, bindParameter, describePgParameter } from './parameter-type.js';
import { type PgValueDecoder, pgValueDecoder } from './pg-values.js';
import type { QueryTemplate, SqlDialect } from './query-template.js';
import type { JsonValue, ResultColumn, RowBatch } from './warehouse-rows.js';

/** One read of a sync's query. */
export interface ReadRequest {
  readonly query: QueryTemplate;
  /** The instant `{{last_sync_time}}` stands for, in µs since the Unix epoch (lookback already taken off; 0 at first). */
  readonly sinceMicros: number;
  /** The statement timeout, and the longest the whole read may take. */
  readonly timeoutMs: number;
  /** Stops after this many rows (preview). */
  readonly limit?: number;
}

/** What a read gives while its transaction is open. */
export interface QueryResultStream {
  /** The warehouse's clock at the start of the read (µs since the Unix epoch): the next run's `last_sync_time`. */
  readonly startedAtMicros: number;
  /** The parameter as bound; undefined when the query has no placeholder. */
  readonly parameter: BoundParameter | undefined;
  /** The rows, fetched through a cursor a batch at a time (memory bounded by one batch). */
  readonly batches: AsyncIterable<RowBatch>;
}

/** Runs a sync's query on a customer's warehouse in a read-only transaction. */
export interface WarehouseReader {
  readonly dialect: SqlDialect;
  /** Reads once: `consume` gets the rows while the transaction is open; it is rolled back after. */
  read<T>(request: ReadRequest, consume: (result: QueryResultStream) => Promise<T>): Promise<T>;
}

/** The statements a PostgreSQL read sends around the query, in order (values are parameters). */
export const PG_READ_STATEMENTS = {
  begin: 'begin transaction isolation level repeatable read read only',
  settings: [
    "select set_config('statement_timeout', $1, true),",
    "  set_config('TimeZone', 'UTC', true),",
    "  set_config('DateStyle', 'ISO, YMD', true)",
  ].join('\n'),
  clock: 'select (extract(epoch from now()) * 1000000)::bigint::text as micros',
  end: 'rollback',
} as const;

export interface PgReaderOptions {
  /** Rows asked for in the first fetch (later fetches aim at about `fetchBytes` each). Default 1000. */
  readonly firstFetchRows?: number;
  /** Bytes of row text to aim at per fetch. Default `FETCH_BYTES`. */
  readonly fetchBytes?: number;
  /** Names the warehouse in messages (`source 7`). */
  readonly label?: string;
}

/**
 * Bytes of row text per fetch: small enough that a fetch's rows die young (a 4 MiB fetch outlived the young
 * generation and made the garbage collector the biggest cost of a read), big enough to keep round trips few.
 */
export const FETCH_BYTES = 256 * 1024;

/** Every value as the text PostgreSQL printed: `pg-values.ts` decodes it by type. */
const RAW_TYPES = { getTypeParser: () => (text: string) => text };

/**
 * PostgreSQL and Redshift. The query runs in `begin transaction … read only` (so a data-modifying CTE,
 * DDL or a write in a function fails with SQLSTATE 25006 and changes nothing), with `statement_timeout`,
 * TimeZone UTC and DateStyle ISO set for the transaction only; the transaction is always rolled back.
 * `now()` read first is the run's start on the warehouse's clock. Rows stream through a cursor (one
 * portal, fetches sized to about `FETCH_BYTES`), so memory stays flat whatever the result's size.
 */
export class PgWarehouseReader implements WarehouseReader {
  readonly dialect = 'postgres' as const;
  readonly #config: pg.ClientConfig;
  readonly #options: PgReaderOptions;

  constructor(config: pg.ClientConfig, options: PgReaderOptions = {}) {
    this.#config = config;
    this.#options = options;
  }

  async read<T>(request: ReadRequest, consume: (result: QueryResultStream) => Promise<T>): Promise<T> {
    if (request.query.dialect !== 'postgres') {
      throw new WharfError('a T-SQL query cannot run on a PostgreSQL warehouse', {
        hint: 'parse the query for the source engine',
      });
    }
    // watched: a lost connection fails the read as a transient error, never the process
    const client = watchClient(
      new pg.Client({ ...this.#config, application_name: this.#config.application_name ?? 'wharf' }),
      'warehouse',
    );
    try {
      await client.connect();
    } catch (error) {
      throw this.#connectError(error);
    }
    let cursor: Cursor | undefined;
    try {
      await client.query(PG_READ_STATEMENTS.begin);
      await client.query(PG_READ_STATEMENTS.settings, [String(Math.max(1, Math.round(request.timeoutMs)))]);
      const micros = Number(
        (await client.query<{ micros: string }>(PG_READ_STATEMENTS.clock)).rows[0]!.micros,
      );
      const type =
        request.query.placeholders > 0 ? await describePgParameter(client, request.query.sql) : undefined;
      const parameter = type === undefined ? undefined : bindParameter(type, request.sinceMicros);
      cursor = client.query(
        new Cursor(request.query.sql, parameter === undefined ? [] : [parameter.value], {
          rowMode: 'array',
          types: RAW_TYPES,
        }),
      );
      const batches = this.#batches(cursor, request);
      const result = await consume({ startedAtMicros: micros, parameter, batches });
      await cursor.close();
      await client.query(PG_READ_STATEMENTS.end);
      return result;
    } catch (error) {
      throw this.#queryError(error, request.timeoutMs);
    } finally {
      // ending the connection rolls back whatever is open
      await client.end().catch(() => {});
    }
  }

  /**
   * Fetches a batch ahead: the next Execute goes to the server before the current batch is decoded and
   * consumed, so the warehouse works while Wharf maps and writes (two fetches in memory at most).
   */
  async *#batches(cursor: Cursor, request: ReadRequest): AsyncGenerator<RowBatch> {
    const deadline = Date.now() + request.timeoutMs;
    const fetchBytes = this.#options.fetchBytes ?? FETCH_BYTES;
    let want = Math.min(this.#options.firstFetchRows ?? 1000, request.limit ?? Number.POSITIVE_INFINITY);
    let left = request.limit ?? Number.POSITIVE_INFINITY;
    let columns: ResultColumn[] | undefined;
    let decoders: PgValueDecoder[] = [];
    let yielded = false;
    let next: ReturnType<typeof readCursor> | undefined = readCursor(cursor, want);
    try {
      while (next !== undefined) {
        const asked = want;
        const { rows, fields } = await next;
        next = undefined;
        if (Date.now() > deadline) {
          throw new WharfError(`the sync query ran past its timeout of ${request.timeoutMs} ms`, {
            code: '57014',
            hint: 'make the query faster (an index on its time column), or give the sync a longer timeout',
          });
        }
        if (columns === undefined) {
          columns = fields.map((f) => ({ name: f.name, type: String(f.dataTypeID) }));
          decoders = fields.map((f) => pgValueDecoder(f.dataTypeID));
        }
        if (rows.length === 0) {
          // an empty result still tells its columns
          if (!yielded) yield { columns, rows: [] };
          return;
        }
        left -= rows.length;
        let bytes = 0;
        for (const raw of rows) for (const text of raw) if (text !== null) bytes += text.length;
        if (rows.length === asked && left > 0) {
          want = Math.max(
            50,
            Math.min(20_000, Math.floor(fetchBytes / Math.max(1, bytes / rows.length)), left),
          );
          next = readCursor(cursor, want);
          next.catch(() => {});
        }
        yielded = true;
        yield { columns, rows: decodeRows(rows, decoders) };
      }
    } finally {
      // a consumer that stops early leaves no fetch running on the connection
      if (next !== undefined) await next.catch(() => {});
    }
  }

  #connectError(error: unknown): WharfError {
    const where = `${this.#config.host ?? 'localhost'}:${this.#config.port ?? 5432}/${this.#config.database ?? ''}`;
    const code = (error as { code?: string }).code;
    return new WharfError(
      `cannot connect to the warehouse${this.#label()} at ${where}: ${redactUrls((error as Error).message || String(code))}`,
      {
        kind: classifyPgError(error) === 'transient' || code === 'ENOTFOUND' ? 'transient' : 'terminal',
        cause: error,
        hint: 'check the source URL, its sslmode, the password, and that the warehouse accepts connections from here',
        ...(code ? { code } : {}),
      },
    );
  }

  #queryError(error: unknown, timeoutMs: number): WharfError {
    if (error instanceof WharfError) return error;
    const message = (error as Error).message;
    const code = (error as { code?: string }).code;
    const base = { cause: error, ...(code ? { code } : {}) };
    if (hasCode(error, '25006')) {
      return new WharfError(`the sync query tried to write${this.#label()}: ${message}`, {
        ...base,
        hint: 'a sync query only reads: remove INSERT / UPDATE / DELETE, data-modifying WITH clauses, DDL and writing functions',
      });
    }
    if (hasCode(error, '57014')) {
      return new WharfError(`the sync query ran past its timeout of ${timeoutMs} ms${this.#label()}`, {
        ...base,
        hint: 'make the query faster (an index on its time column), or give the sync a longer timeout',
      });
    }
    return new WharfError(`the sync query failed on the warehouse${this.#label()}: ${message}`, {
      ...base,
      kind: classifyPgError(error),
      hint: 'run it with `wharf retl preview` to see the rendered SQL and its parameter',
    });
  }

  #label(): string {
    return this.#options.label ? ` (${this.#options.label})` : '';
  }
}

/** Rows of text → rows of JSON values, per column's decoder, in place (the fetch's arrays are reused). */
function decodeRows(rows: (string | null)[][], decoders: readonly PgValueDecoder[]): JsonValue[][] {
  const out = rows as unknown as JsonValue[][];
  for (let r = 0; r < rows.length; r++) {
    const raw = rows[r]!;
    const row = out[r]!;
    for (let c = 0; c < raw.length; c++) {
      const text = raw[c] as string | null;
      if (text !== null) row[c] = decoders[c]!(text);
    }
  }
  return out;
}

/** One fetch, with the result's fields (known even when no row comes back). */
function readCursor(
  cursor: Cursor,
  rows: number,
): Promise<{ rows: (string | null)[][]; fields: ReadonlyArray<{ name: string; dataTypeID: number }> }> {
  return new Promise((resolve, reject) => {
    cursor.read(rows, (error, got, result) => {
      if (error) reject(error);
      else resolve({ rows: got as (string | null)[][], fields: result?.fields ?? [] });
    });
  });
}
