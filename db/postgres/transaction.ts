import pg from 'pg';

/**
 * Runs `work` in one transaction: commit when it resolves, rollback when it throws (the error goes on).
 * Given a pool, a client is checked out for the transaction and released after.
 */
export async function inTransaction<T>(
  db: pg.Pool | pg.ClientBase,
  work: (client: pg.ClientBase) => Promise<T>,
): Promise<T> {
  const client = db instanceof pg.Pool ? await db.connect() : (db as pg.ClientBase);
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    if (db instanceof pg.Pool) (client as pg.PoolClient).release();
  }
}
