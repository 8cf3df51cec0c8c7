import type { Catalog, Column, Stream } from './types.js';

const col = (name: string, type: Column['type'], extra: Partial<Column> = {}): Column => ({
  name,
  type,
  nullable: true,
  ...extra,
});
const req = (name: string, type: Column['type'], extra: Partial<Column> = {}): Column =>
  col(name, type, { ...extra, nullable: false });
const money = (name: string, nullable = false): Column =>
  col(name, 'numeric', { precision: 18, scale: 4, nullable });
const ref = (name: string, stream: string, nullable = false): Column =>
  col(name, 'bigint', { references: stream, nullable });

const accountId = req('account_id', 'bigint', { references: 'accounts' });
const updatedAt = req('updated_at', 'timestamptz');

function stream(name: string, key: Column, columns: Column[], parents: string[], tenantRoot = false): Stream {
  return {
    name,
    columns: tenantRoot ? [key, updatedAt, ...columns] : [accountId, key, updatedAt, ...columns],
    primaryKey: [key.name],
    changeColumn: 'updated_at',
    tenantColumn: tenantRoot ? key.name : 'account_id',
    parents,
    since: 1,
  };
}

/**
 * The reference catalog `tracking`: an affiliate / tracking platform's data. Streams are listed
 * parents first, which is the order a window is loaded in.
 */
export const trackingCatalog: Catalog = {
  name: 'tracking',
  version: 1,
  streams: [
    stream(
      'accounts',
      req('id', 'bigint'),
      [
        req('name', 'text', { length: 200 }),
        req('currency', 'char', { length: 3 }),
        req('timezone', 'text', { length: 64 }),
        req('created_at', 'timestamptz'),
        col('deleted_at', 'timestamptz'),
      ],
      [],
      true,
    ),
    stream(
      'programmes',
      req('id', 'bigint'),
      [
        req('name', 'text', { length: 200 }),
        req('commission_type', 'text', { length: 32 }),
        money('commission_value'),
        req('currency', 'char', { length: 3 }),
        req('status', 'text', { length: 32 }),
        req('created_at', 'timestamptz'),
        col('deleted_at', 'timestamptz'),
      ],
      ['accounts'],
    ),
    stream(
      'affiliates',
      req('id', 'bigint'),
      [
        req('name', 'text', { length: 200 }),
        col('email', 'text', { length: 320 }),
        col('country', 'char', { length: 2 }),
        req('status', 'text', { length: 32 }),
        req('created_at', 'timestamptz'),
        col('deleted_at', 'timestamptz'),
      ],
      ['accounts'],
    ),
    stream(
      'traffic_sources',
      req('id', 'bigint'),
      [
        ref('affiliate_id', 'affiliates'),
        req('name', 'text', { length: 200 }),
        req('kind', 'text', { length: 32 }),
        req('created_at', 'timestamptz'),
        col('deleted_at', 'timestamptz'),
      ],
      ['affiliates'],
    ),
    stream(
      'links',
      req('id', 'bigint'),
      [
        ref('programme_id', 'programmes'),
        ref('affiliate_id', 'affiliates'),
        ref('traffic_source_id', 'traffic_sources', true),
        req('url', 'text', { length: 2048 }),
        req('slug', 'text', { length: 128 }),
        col('metadata', 'jsonb'),
        req('created_at', 'timestamptz'),
        col('deleted_at', 'timestamptz'),
      ],
      ['programmes', 'affiliates', 'traffic_sources'],
    ),
    stream(
      'clicks',
      req('event_id', 'uuid'),
      [
        ref('link_id', 'links'),
        ref('affiliate_id', 'affiliates'),
        ref('traffic_source_id', 'traffic_sources', true),
        req('occurred_at', 'timestamptz'),
        col('ip', 'text', { length: 45 }),
        col('user_agent', 'text', { length: 1024 }),
        col('referrer', 'text', { length: 2048 }),
        col('country', 'char', { length: 2 }),
        col('device', 'text', { length: 32 }),
        req('is_unique', 'boolean'),
      ],
      ['links', 'affiliates'],
    ),
    stream(
      'conversions',
      req('event_id', 'uuid'),
      [
        col('click_id', 'uuid', { references: 'clicks' }),
        ref('link_id', 'links'),
        ref('affiliate_id', 'affiliates'),
        ref('programme_id', 'programmes'),
        req('occurred_at', 'timestamptz'),
        col('order_ref', 'text', { length: 128 }),
        money('amount'),
        money('commission'),
        req('currency', 'char', { length: 3 }),
        req('status', 'text', { length: 32 }),
      ],
      ['clicks', 'links', 'affiliates', 'programmes'],
    ),
    stream(
      'payouts',
      req('id', 'bigint'),
      [
        ref('affiliate_id', 'affiliates'),
        req('period_start', 'date'),
        req('period_end', 'date'),
        money('amount'),
        req('currency', 'char', { length: 3 }),
        req('status', 'text', { length: 32 }),
        col('paid_at', 'timestamptz'),
        req('created_at', 'timestamptz'),
      ],
      ['affiliates'],
    ),
  ],
};
