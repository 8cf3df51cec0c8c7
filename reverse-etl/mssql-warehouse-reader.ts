import sql from 'mssql';
import { WharfError } from '../core/errors.js';
import { classifyMssqlError } from '../db/mssql/errors.js';
import {
  type BoundParameter,
  boundValue,
  MSSQL_DESCRIBE_PARAMETERS_SQL,
  mssqlParameterKind,
  type ParameterKind,
} from './parameter-type.js';
import type { QueryResultStream, ReadRequest, WarehouseReader } from './warehouse-reader.js';
import type { JsonValue, ResultColumn, RowBatch } from './warehouse-rows.js';

/**
 * The T-SQL a SQL Server read sends around the query (inside a transaction the driver begins and
 * always rolls back). SQL Server has no read-only transaction: the query template refuses any
 * keyword that writes or starts another statement, the transaction is rolled back whatever happens,
 * and the service user should hold `db_datareader` only (docs/reverse-etl.md).
 */
export const MSSQL_READ_STATEMENTS = {
  settings: 'SET XACT_ABORT ON; SET NOCOUNT ON;',
  clock:
    "SELECT CAST(DATEDIFF_BIG(MICROSECOND, CAST('19700101' AS datetime2(7)), SYSUTCDATETIME()) AS varchar(20)) AS micros;",
  describe: MSSQL_DESCRIBE_PARAMETERS_SQL,
} as const;

/** The driver type `@p1` is bound as, per kind. */
export function mssqlParameterDriverType(kind: ParameterKind): sql.ISqlType | (() => sql.ISqlType) {
  switch (kind) {
    case 'seconds':
      return sql.BigInt;
    case 'timestamptz':
      return sql.DateTimeOffset(7);
    case 'timestamp':
      return sql.DateTime2(7);
    case 'date':
      return sql.Date;
    case 'text':
      return sql.NVarChar(40);
  }
}

/** The value bound for `@p1`: a number for seconds, a Date (milliseconds) for times, text for text. */
export function mssqlParameterValue(kind: ParameterKind, instantMicros: number): number | Date | string {
  if (kind === 'seconds') return Math.floor(instantMicros / 1_000_000);
  if (kind === 'text') return boundValue('text', instantMicros);
  return new Date(Math.floor(instantMicros / 1000));
}

/** A value the mssql driver returns → JSON: Dates as ISO-8601 UTC, bigint text as a number while safe, bytes as hex. */
export function mssqlJsonValue(value: unknown): JsonValue {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `0x${value.toString('hex')}`;
  if (typeof value === 'string' && /^-?\d{16,}$/.test(value)) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value as JsonValue;
}

const ROWS_PER_BATCH = 1000;

/**
 * SQL Server, built to the driver's streaming API (`toReadableStream`, array rows) and Microsoft's
 * `sp_describe_undeclared_parameters`. Decimals come back from the driver as doubles: cast a column to
 * `varchar` in the query to keep every digit.
 */
export class MssqlWarehouseReader implements WarehouseReader {
  readonly dialect = 'mssql' as const;
  readonly #config: sql.config;

  constructor(config: sql.config) {
    this.#config = config;
  }

  async read<T>(request: ReadRequest, consume: (result: QueryResultStream) => Promise<T>): Promise<T> {
    if (request.query.dialect !== 'mssql') {
      throw new WharfError('a PostgreSQL query cannot run on a SQL Server warehouse', {
        hint: 'parse the query for the source engine',
      });
    }
    const pool = new sql.ConnectionPool({
      ...this.#config,
      requestTimeout: request.timeoutMs,
      arrayRowMode: true,
      options: { ...this.#config.options, useUTC: true },
    });
    pool.on('error', () => {});
    try {
      await pool.connect();
    } catch (error) {
      throw mssqlError(
        error,
        'cannot connect to the warehouse',
        'check the source URL, the password and the TLS settings',
      );
    }
    const tx = new sql.Transaction(pool);
    let running: sql.Request | undefined;
    try {
      await tx.begin();
      await new sql.Request(tx).batch(MSSQL_READ_STATEMENTS.settings);
      const clock = await new sql.Request(tx).query<{ micros: string }>(MSSQL_READ_STATEMENTS.clock);
      const micros = Number(firstRow(clock.recordset, 'micros'));
      const parameter = request.query.placeholders > 0 ? await this.#describe(tx, request) : undefined;
      const query = new sql.Request(tx);
      running = query;
      query.arrayRowMode = true;
      if (parameter !== undefined) {
        query.input(
          'p1',
          mssqlParameterDriverType(parameter.kind),
          mssqlParameterValue(parameter.kind, request.sinceMicros),
        );
      }
      let columns: ResultColumn[] = [];
      query.on('recordset', (meta: Array<{ name: string; type: { declaration?: string } }>) => {
        columns = meta.map((c) => ({ name: c.name, type: c.type?.declaration ?? 'unknown' }));
      });
      const stream = query.toReadableStream();
      void query.query(request.query.sql);
      const batches = rowBatches(stream, () => columns, request.limit);
      const result = await consume({ startedAtMicros: micros, parameter, batches });
      stream.destroy();
      return result;
    } catch (error) {
      if (error instanceof WharfError) throw error;
      throw mssqlError(
        error,
        'the sync query failed on the warehouse',
        'run it with `wharf retl preview` to see the rendered SQL and its parameter',
      );
    } finally {
      // a read stopped early (preview's limit) cancels the rest of the query first
      running?.cancel();
      await tx.rollback().catch(() => {});
      await pool.close().catch(() => {});
    }
  }

  async #describe(tx: sql.Transaction, request: ReadRequest): Promise<BoundParameter> {
    const describe = new sql.Request(tx);
    describe.arrayRowMode = false;
    describe.input('tsql', sql.NVarChar(sql.MAX), request.query.sql);
    const result = await describe.query<{ name: string; suggested_system_type_name: string }>(
      MSSQL_READ_STATEMENTS.describe,
    );
    const row = result.recordset.find((r) => r.name === '@p1');
    if (row === undefined) throw new WharfError('SQL Server described no parameter @p1 in the sync query');
    const kind = mssqlParameterKind(row.suggested_system_type_name);
    return {
      name: row.suggested_system_type_name,
      kind,
      value: boundValue(kind, request.sinceMicros),
      instantMicros: request.sinceMicros,
    };
  }
}

async function* rowBatches(
  stream: AsyncIterable<unknown>,
  columns: () => ResultColumn[],
  limit: number | undefined,
): AsyncGenerator<RowBatch> {
  let rows: JsonValue[][] = [];
  let left = limit ?? Number.POSITIVE_INFINITY;
  let yielded = false;
  for await (const raw of stream) {
    rows.push((raw as unknown[]).map(mssqlJsonValue));
    if (--left <= 0 || rows.length >= ROWS_PER_BATCH) {
      yielded = true;
      yield { columns: columns(), rows };
      rows = [];
      if (left <= 0) return;
    }
  }
  if (rows.length > 0 || !yielded) yield { columns: columns(), rows };
}

function firstRow(rows: readonly unknown[], column: string): unknown {
  const row = rows[0] as Record<string, unknown> | unknown[] | undefined;
  if (Array.isArray(row)) return row[0];
  return row?.[column];
}

function mssqlError(error: unknown, what: string, hint: string): WharfError {
  const number = (error as { number?: number }).number;
  return new WharfError(`${what}: ${(error as Error).message}`, {
    kind: classifyMssqlError(error),
    cause: error,
    hint,
    ...(number === undefined ? {} : { code: String(number) }),
  });
}
