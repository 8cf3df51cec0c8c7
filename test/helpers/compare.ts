import { createHash } from 'node:crypto';
import type sql from 'mssql';
import type pg from 'pg';
import type { Column, Stream } from '../../catalog/types.js';
import { quoteMssql } from '../../db/mssql/quote.js';
import { quotePg as q } from '../../db/postgres/quote.js';

/**
 * The canonical text of a value, the same whichever engine holds it: timestamps as UTC ISO with microseconds
 * (`2026-11-23T09:20:00.123456Z`), dates `YYYY-MM-DD`, decimals with 4 places, booleans `t` / `f`, uuids in
 * lower case, `char(n)` without its padding, everything else as text. NULL stays `null` (never `''`).
 */
export type CanonicalValue = string | null;

/** Rows and a digest of a table's canonical rows (order-free: rows are sorted before hashing). */
export interface Checksum {
  readonly rows: number;
  readonly md5: string | null;
}

/** A PostgreSQL expression printing a column canonically. */
export function canonicalPg(stream: Stream, name: string): string {
  const c = column(stream, name);
  const x = q(name);
  switch (c.type) {
    case 'timestamptz':
      return `to_char(${x} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
    case 'date':
      return `to_char(${x}, 'YYYY-MM-DD')`;
    case 'numeric':
      return `(${x})::numeric(38,4)::text`;
    case 'boolean':
      return `case when ${x} then 't' when not ${x} then 'f' end`;
    case 'char':
      return `rtrim(${x}::text, ' ')`;
    default:
      return `${x}::text`;
  }
}

/** A T-SQL expression printing a column canonically (the same text `canonicalPg` prints). */
export function canonicalMssql(stream: Stream, name: string): string {
  const c = column(stream, name);
  const x = quoteMssql(name);
  switch (c.type) {
    case 'timestamptz':
      return `CONVERT(NVARCHAR(19), ${x}, 126) + N'.' + RIGHT(N'000000' + CONVERT(NVARCHAR(7), DATEPART(MICROSECOND, ${x})), 6) + N'Z'`;
    case 'date':
      return `CONVERT(NVARCHAR(10), ${x}, 23)`;
    case 'numeric':
      return `CONVERT(NVARCHAR(60), CONVERT(DECIMAL(38,4), ${x}))`;
    case 'boolean':
      return `CASE ${x} WHEN 1 THEN N't' WHEN 0 THEN N'f' END`;
    case 'uuid':
      return `LOWER(CONVERT(NVARCHAR(36), ${x}))`;
    case 'bigint':
      return `CONVERT(NVARCHAR(20), ${x})`;
    case 'char':
      return `RTRIM(${x})`;
    case 'text':
    case 'jsonb':
      return x;
  }
}

/**
 * What the SQL Server MERGE makes of a staged text (see `convertFromStaging`), printed canonically: the
 * `CONVERT` styles applied as text (126 → ISO timestamp read as UTC, 23 → date, `DECIMAL(p,s)` → s places,
 * `BIT` 1 / 0, `UNIQUEIDENTIFIER`, `NCHAR(n)` padding). This is a model of the server's conversion, not the server.
 */
export function canonicalFromStaged(c: Column, staged: CanonicalValue): CanonicalValue {
  if (staged === null) return null;
  switch (c.type) {
    case 'timestamptz':
      return `${staged}Z`;
    case 'numeric': {
      const [integer, fraction = ''] = staged.split('.');
      return `${integer}.${fraction.padEnd(4, '0').slice(0, 4)}`;
    }
    case 'boolean':
      return staged === '1' ? 't' : 'f';
    case 'uuid':
      return staged.toLowerCase();
    case 'char':
      return staged.replace(/ +$/, '');
    default:
      return staged;
  }
}

/** The checksum of canonical rows: each row as a JSON array (NULL and '' stay apart), sorted, then md5. */
export function checksumOf(rows: readonly (readonly CanonicalValue[])[]): Checksum {
  if (rows.length === 0) return { rows: 0, md5: null };
  const lines = rows.map((r) => JSON.stringify(r)).sort();
  return { rows: rows.length, md5: createHash('md5').update(lines.join('\n')).digest('hex') };
}

/** Every row of a PostgreSQL table (of one account, when given) as canonical values in catalog column order. */
export async function canonicalRowsPg(
  db: pg.Pool | pg.ClientBase,
  schema: string,
  stream: Stream,
  account?: number | string,
): Promise<CanonicalValue[][]> {
  const cols = stream.columns.map((c) => canonicalPg(stream, c.name)).join(', ');
  const where = account === undefined ? '' : ` where ${q(stream.tenantColumn)} = ${Number(account)}`;
  const result = await db.query<CanonicalValue[]>({
    text: `select ${cols} from ${q(schema)}.${q(stream.name)}${where}`,
    rowMode: 'array',
  });
  return result.rows;
}

/** Every row of a SQL Server table as canonical values in catalog column order. */
export async function canonicalRowsMssql(
  pool: sql.ConnectionPool,
  schema: string,
  stream: Stream,
): Promise<CanonicalValue[][]> {
  const cols = stream.columns.map((c, i) => `${canonicalMssql(stream, c.name)} AS [c${i}]`).join(', ');
  const result = await pool
    .request()
    .query<Record<string, CanonicalValue>>(
      `SELECT ${cols} FROM ${quoteMssql(schema)}.${quoteMssql(stream.name)}`,
    );
  return result.recordset.map((r) => stream.columns.map((_, i) => r[`c${i}`] ?? null));
}

/** Checksum over every column of every row of a PostgreSQL table (of one account, when given). */
export async function tableChecksum(
  db: pg.Pool | pg.ClientBase,
  schema: string,
  stream: Stream,
  account?: number | string,
): Promise<Checksum> {
  return checksumOf(await canonicalRowsPg(db, schema, stream, account));
}

function column(stream: Stream, name: string): Column {
  const c = stream.columns.find((x) => x.name === name);
  if (!c) throw new Error(`stream ${stream.name} has no column ${name}`);
  return c;
}
