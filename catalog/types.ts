/**
 * The catalog describes each stream Wharf moves: its columns and their logical types, primary key,
 * change column, tenant column and parents. Engines map logical types to their own (see each
 * dialect's type map); files carry them as described in docs/formats.md.
 */

export type LogicalType =
  | 'bigint'
  | 'text'
  | 'char'
  | 'numeric'
  | 'timestamptz'
  | 'date'
  | 'uuid'
  | 'boolean'
  | 'jsonb';

export interface Column {
  readonly name: string;
  readonly type: LogicalType;
  readonly nullable: boolean;
  /** For `char`: the fixed length; for `text`: an upper bound used by engines that need one. */
  readonly length?: number;
  /** For `numeric`. */
  readonly precision?: number;
  readonly scale?: number;
  /** For foreign keys: the stream whose primary key this column references. */
  readonly references?: string;
  /** Catalog version that added the column (additive changes only). */
  readonly since?: number;
}

export interface Stream {
  readonly name: string;
  /** Columns in file order: tenant column, primary key, change column, then the rest. */
  readonly columns: readonly Column[];
  readonly primaryKey: readonly string[];
  /** The change column that windows cut on. */
  readonly changeColumn: string;
  /** The column holding the account id (for the tenant root, its own primary key). */
  readonly tenantColumn: string;
  readonly parents: readonly string[];
  /** Catalog version that added the stream. */
  readonly since: number;
}

export interface Catalog {
  readonly name: string;
  readonly version: number;
  /** Streams in foreign-key order: parents before children. */
  readonly streams: readonly Stream[];
}

export function getStream(catalog: Catalog, name: string): Stream {
  const stream = catalog.streams.find((s) => s.name === name);
  if (!stream) {
    throw new Error(
      `unknown stream "${name}" in catalog ${catalog.name}; known: ${catalog.streams.map((s) => s.name).join(', ')}`,
    );
  }
  return stream;
}

/** The catalog as it was at an older version (for migrations and old manifests). */
export function catalogAtVersion(catalog: Catalog, version: number): Catalog {
  return {
    name: catalog.name,
    version,
    streams: catalog.streams
      .filter((s) => s.since <= version)
      .map((s) => ({ ...s, columns: s.columns.filter((c) => (c.since ?? 1) <= version) })),
  };
}

/** Columns that make up the primary key, in key order. */
export function keyColumns(stream: Stream): Column[] {
  return stream.primaryKey.map((k) => stream.columns.find((c) => c.name === k)!);
}
