/** A JSON value as a call carries it. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** A column of the sync query's result. */
export interface ResultColumn {
  /** The name as the server returns it (PostgreSQL folds unquoted aliases to lower case). */
  readonly name: string;
  /** The server's type (a PostgreSQL type OID as text, or a SQL Server type name), for messages. */
  readonly type: string;
}

/** Rows read in one fetch, each a JSON value per column (exact decimals as strings, ISO-8601 times). */
export interface RowBatch {
  readonly columns: readonly ResultColumn[];
  readonly rows: ReadonlyArray<readonly JsonValue[]>;
}
