/**
 * One connection to a warehouse as the shared flows use it (migrate, ledger reads): a statement with named
 * parameters. PostgreSQL binds them as `$1, $2, …` in the order given; SQL Server as `@name`.
 */
export interface SqlSession {
  query<T = Record<string, unknown>>(text: string, params?: Readonly<Record<string, unknown>>): Promise<T[]>;
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T>;
}
