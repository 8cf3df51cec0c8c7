import { describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Catalog } from '../catalog/types.js';
import { PostgresWarehouse } from '../loaders/postgres/postgres-warehouse.js';
import { createDatabase, query } from './helpers/databases.js';

/** The reference catalog as a version 2 would ship it: a new nullable column and a new stream. */
const v2: Catalog = {
  ...trackingCatalog,
  version: 2,
  streams: [
    ...trackingCatalog.streams.map((s) =>
      s.name === 'clicks'
        ? {
            ...s,
            columns: [...s.columns, { name: 'campaign', type: 'text' as const, nullable: true, since: 2 }],
          }
        : s,
    ),
    {
      name: 'refunds',
      columns: [
        { name: 'account_id', type: 'bigint', nullable: false, references: 'accounts' },
        { name: 'id', type: 'bigint', nullable: false },
        { name: 'updated_at', type: 'timestamptz', nullable: false },
        { name: 'amount', type: 'numeric', precision: 18, scale: 4, nullable: false },
      ],
      primaryKey: ['id'],
      changeColumn: 'updated_at',
      tenantColumn: 'account_id',
      parents: ['accounts'],
      since: 2,
    },
  ],
};

describe('warehouse migrations', () => {
  it('are numbered and additive: a newer catalog migrates an older warehouse, keeping its rows', async () => {
    const url = await createDatabase('wharf_migrate');
    const streams = ['accounts', 'clicks'];
    const w1 = new PostgresWarehouse({ client: { connectionString: url }, schema: 'tracking' });
    await w1.migrate(trackingCatalog, streams);
    await w1.migrate(trackingCatalog, streams);
    await w1.close();
    await query(
      url,
      `insert into tracking.accounts (id, updated_at, name, currency, timezone, created_at, _wharf_window, _wharf_loaded_at)
       values (1, now(), 'A', 'EUR', 'UTC', now(), 'w', now())`,
    );
    expect(await query(url, 'select version, catalog from tracking._wharf_migrations')).toEqual([
      { version: 1, catalog: 'tracking' },
    ]);

    const w2 = new PostgresWarehouse({ client: { connectionString: url }, schema: 'tracking' });
    await w2.migrate(v2, [...streams, 'refunds']);
    await w2.close();
    const versions = await query<{ version: number }>(
      url,
      'select version from tracking._wharf_migrations order by 1',
    );
    expect(versions.map((r) => r.version)).toEqual([1, 2]);
    const cols = await query<{ column_name: string }>(
      url,
      `select column_name from information_schema.columns where table_schema = 'tracking' and table_name = 'clicks' and column_name = 'campaign'`,
    );
    expect(cols).toHaveLength(1);
    const refunds = await query(url, `select to_regclass('tracking.refunds') as t`);
    expect(refunds[0]!.t).toBe('tracking.refunds');
    expect(await query(url, 'select count(*)::int as n from tracking.accounts')).toEqual([{ n: 1 }]);
  });
});
