import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { WharfError } from '../core/errors.js';
import { quotePg } from '../db/postgres/quote.js';
import { type SeedSummary, seedSource } from '../source/seed.js';
import { initSource } from '../source/source-schema.js';
import { insertLiveEvents } from '../source/source-writer.js';
import { createDatabase, query } from './helpers/databases.js';

const END = new Date('2025-03-10T12:00:00.000Z');
const BIG = { accounts: 6, rows: 200_000, seed: 42, end: END, days: 7 };

let urlA: string;
let urlB: string;
let summaryA: SeedSummary;
let summaryB: SeedSummary;
let progress: Array<[number, number]> = [];

async function seeded(options: Parameters<typeof seedSource>[1]): Promise<[string, SeedSummary]> {
  const url = await createDatabase('wharf_seed');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await initSource(client);
    return [url, await seedSource(client, options)];
  } finally {
    await client.end();
  }
}

const pkOf = (stream: string) =>
  trackingCatalog.streams.find((s) => s.name === stream)!.primaryKey.join(', ');

/** One md5 per table of its full content in key order. */
async function fingerprint(url: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const stream of trackingCatalog.streams) {
    const rows = await query<{ h: string }>(
      url,
      `select md5(string_agg(t::text, ',' order by ${pkOf(stream.name)})) as h from ${quotePg(stream.name)} t`,
    );
    out[stream.name] = rows[0]!.h;
  }
  return out;
}

beforeAll(async () => {
  progress = [];
  [urlA, summaryA] = await seeded({ ...BIG, onProgress: (done, total) => progress.push([done, total]) });
  const clicksPerSecond = Math.round(BIG.rows / summaryA.seconds);
  console.log(
    `seeded ${BIG.rows} clicks (${Object.values(summaryA.rowsByStream).reduce((a, b) => a + b, 0)} rows) ` +
      `in ${summaryA.seconds.toFixed(2)} s: ${clicksPerSecond} clicks/s`,
  );
  [urlB, summaryB] = await seeded(BIG);
});

describe('seedSource', () => {
  it('reports the rows it wrote, per stream', async () => {
    expect(Object.keys(summaryA.rowsByStream)).toEqual(trackingCatalog.streams.map((s) => s.name));
    for (const stream of trackingCatalog.streams) {
      const rows = await query<{ n: number }>(urlA, `select count(*)::int as n from ${quotePg(stream.name)}`);
      expect(rows[0]!.n, stream.name).toBe(summaryA.rowsByStream[stream.name]);
      expect(rows[0]!.n, stream.name).toBeGreaterThan(0);
    }
    expect(summaryA.rowsByStream.accounts).toBe(6);
    expect(summaryA.rowsByStream.clicks).toBe(200_000);
    const conversions = summaryA.rowsByStream.conversions!;
    expect(conversions).toBeGreaterThan(200_000 * 0.025);
    expect(conversions).toBeLessThan(200_000 * 0.035);
    const last = progress.at(-1)!;
    const total = Object.values(summaryA.rowsByStream).reduce((a, b) => a + b, 0);
    expect(last).toEqual([total, total]);
  });

  it('gives identical content for the same seed, and different content for another seed', async () => {
    const [a, b] = await Promise.all([fingerprint(urlA), fingerprint(urlB)]);
    expect(b).toEqual(a);
    expect(summaryB.rowsByStream).toEqual(summaryA.rowsByStream);
    const [urlC] = await seeded({ ...BIG, rows: 5000, seed: 43 });
    const [urlD] = await seeded({ ...BIG, rows: 5000, seed: 42 });
    const [c, d] = await Promise.all([fingerprint(urlC), fingerprint(urlD)]);
    expect(c.clicks).not.toBe(d.clicks);
    expect(c.affiliates).not.toBe(d.affiliates);
  });

  it('has NULL and empty strings both, in several text columns', async () => {
    for (const [table, column] of [
      ['affiliates', 'email'],
      ['clicks', 'referrer'],
      ['clicks', 'user_agent'],
      ['conversions', 'order_ref'],
    ] as const) {
      const rows = await query<{ nulls: number; empties: number }>(
        urlA,
        `select count(*) filter (where ${column} is null)::int as nulls, count(*) filter (where ${column} = '')::int as empties
           from ${table}`,
      );
      expect(rows[0]!.nulls, `${table}.${column}`).toBeGreaterThan(0);
      expect(rows[0]!.empties, `${table}.${column}`).toBeGreaterThan(0);
    }
    const nullable = await query<Record<string, number>>(
      urlA,
      `select (select count(*) from affiliates where country is null)::int as country,
              (select count(*) from links where metadata is null)::int as metadata,
              (select count(*) from links where traffic_source_id is null)::int as link_source,
              (select count(*) from clicks where traffic_source_id is null)::int as click_source,
              (select count(*) from conversions where click_id is null)::int as click_id,
              (select count(*) from payouts where paid_at is null)::int as paid_at`,
    );
    for (const [name, n] of Object.entries(nullable[0]!)) expect(n, name).toBeGreaterThan(0);
  });

  it('has awkward text: characters beyond the BMP, CR/LF, quotes, commas, backslashes and \\N', async () => {
    const names = await query<{ name: string }>(
      urlA,
      'select name from accounts union all select name from affiliates',
    );
    expect(names.some((r) => /[\u{10000}-\u{10FFFF}]/u.test(r.name))).toBe(true);
    const referrers = await query<{ referrer: string }>(
      urlA,
      'select distinct referrer from clicks where referrer is not null',
    );
    const values = referrers.map((r) => r.referrer);
    expect(values).toContain('\\N');
    expect(values.some((v) => v.includes('\r\n'))).toBe(true);
    expect(values.some((v) => v.includes('"') && v.includes(','))).toBe(true);
    expect(values.some((v) => v.includes('\\Users\\'))).toBe(true);
    const ips = await query<{ v4: number; v6: number }>(
      urlA,
      `select count(*) filter (where ip like '%.%')::int as v4, count(*) filter (where ip like '%:%')::int as v6 from clicks`,
    );
    expect(ips[0]!.v4).toBeGreaterThan(0);
    expect(ips[0]!.v6).toBeGreaterThan(0);
    const metadata = await query<{ n: number }>(
      urlA,
      `select count(*)::int as n from links where jsonb_typeof(metadata -> (select min(k) from jsonb_object_keys(metadata) k)) = 'object'`,
    );
    expect(metadata[0]!.n).toBeGreaterThan(0);
  });

  it('keeps money exact at scale 4, up to the largest numeric(18,4)', async () => {
    const money = await query<{ amount: string; commission: string }>(
      urlA,
      'select amount::text as amount, commission::text as commission from conversions union all select amount::text, amount::text from payouts',
    );
    expect(money.length).toBeGreaterThan(0);
    for (const row of money) {
      expect(row.amount).toMatch(/^\d{1,14}\.\d{4}$/);
      expect(row.commission).toMatch(/^\d{1,14}\.\d{4}$/);
    }
    expect(money.some((r) => r.amount === '99999999999999.9999')).toBe(true);
    expect(money.some((r) => !r.amount.endsWith('0000'))).toBe(true);
    const programmes = await query<{ types: string[] }>(
      urlA,
      `select array_agg(distinct commission_type order by commission_type) as types from programmes where scale(commission_value) = 4`,
    );
    expect(programmes[0]!.types).toEqual(['fixed', 'percentage']);
  });

  it('references parents of the same account only, created before their children', async () => {
    // generated from the catalog: every reference other than the tenant column
    for (const stream of trackingCatalog.streams) {
      for (const column of stream.columns) {
        if (!column.references || column.name === 'account_id') continue;
        const parent = trackingCatalog.streams.find((s) => s.name === column.references)!;
        const rows = await query<{ n: number }>(
          urlA,
          `select count(*)::int as n from ${quotePg(stream.name)} c join ${quotePg(parent.name)} p
             on p.${quotePg(parent.primaryKey[0]!)} = c.${quotePg(column.name)}
           where p.${quotePg(parent.tenantColumn)} <> c.account_id`,
        );
        expect(rows[0]!.n, `${stream.name}.${column.name}`).toBe(0);
      }
    }
    const late = await query<Record<string, number>>(
      urlA,
      `select
        (select count(*) from programmes c join accounts p on p.id = c.account_id where c.created_at <= p.created_at)::int as programmes,
        (select count(*) from affiliates c join accounts p on p.id = c.account_id where c.created_at <= p.created_at)::int as affiliates,
        (select count(*) from traffic_sources c join affiliates p on p.id = c.affiliate_id where c.created_at <= p.created_at)::int as sources,
        (select count(*) from links c join affiliates p on p.id = c.affiliate_id where c.created_at <= p.created_at)::int as link_aff,
        (select count(*) from links c join programmes p on p.id = c.programme_id where c.created_at <= p.created_at)::int as link_prog,
        (select count(*) from links c join traffic_sources p on p.id = c.traffic_source_id where c.created_at <= p.created_at)::int as link_src,
        (select count(*) from clicks c join links p on p.id = c.link_id where c.occurred_at <= p.created_at)::int as clicks,
        (select count(*) from conversions c join clicks p on p.event_id = c.click_id where c.occurred_at <= p.occurred_at)::int as conv_click,
        (select count(*) from conversions c join links p on p.id = c.link_id where c.occurred_at <= p.created_at)::int as conv_link,
        (select count(*) from payouts c join affiliates p on p.id = c.affiliate_id where c.created_at <= p.created_at)::int as payouts`,
    );
    for (const [name, n] of Object.entries(late[0]!)) expect(n, name).toBe(0);
    const links = await query<{ n: number }>(
      urlA,
      `select count(*)::int as n from links l join traffic_sources s on s.id = l.traffic_source_id where s.affiliate_id <> l.affiliate_id`,
    );
    expect(links[0]!.n).toBe(0);
  });

  it('spreads clicks unevenly over the accounts and over several days, with a daily cycle', async () => {
    const perAccount = await query<{ n: number }>(
      urlA,
      'select count(*)::int as n from clicks group by account_id order by 1',
    );
    expect(perAccount.length).toBe(6);
    expect(perAccount.at(-1)!.n / perAccount[0]!.n).toBeGreaterThan(2);
    const span = await query<{ days: number; hours: number[] }>(
      urlA,
      `select extract(epoch from max(updated_at) - min(updated_at)) / 86400 as days,
              (select array_agg(n order by h) from (select extract(hour from occurred_at at time zone 'UTC') h, count(*)::int n
                                                      from clicks group by 1) x) as hours
         from clicks`,
    );
    expect(Number(span[0]!.days)).toBeGreaterThan(5);
    const hours = span[0]!.hours;
    expect(Math.max(...hours) / Math.min(...hours)).toBeGreaterThan(2);
  });

  it('keeps every updated_at at or before end, with updates and soft deletes', async () => {
    for (const stream of trackingCatalog.streams) {
      const rows = await query<{ max: Date }>(
        urlA,
        `select max(updated_at) as max from ${quotePg(stream.name)}`,
      );
      expect(rows[0]!.max.getTime(), stream.name).toBeLessThanOrEqual(END.getTime());
    }
    for (const table of ['accounts', 'programmes', 'affiliates', 'traffic_sources', 'links']) {
      if (table === 'accounts') continue;
      const rows = await query<{ updated: number; deleted: number; mismatched: number; early: number }>(
        urlA,
        `select count(*) filter (where updated_at > created_at and deleted_at is null)::int as updated,
                count(*) filter (where deleted_at is not null)::int as deleted,
                count(*) filter (where deleted_at is not null and updated_at <> deleted_at)::int as mismatched,
                count(*) filter (where updated_at < created_at)::int as early
           from ${quotePg(table)}`,
      );
      expect(rows[0]!.updated, table).toBeGreaterThan(0);
      expect(rows[0]!.deleted, table).toBeGreaterThan(0);
      expect(rows[0]!.mismatched, table).toBe(0);
      expect(rows[0]!.early, table).toBe(0);
    }
  });

  it('moves conversions from pending to approved or reversed later', async () => {
    const statuses = await query<{ status: string; n: number; not_later: number }>(
      urlA,
      `select status, count(*)::int as n, count(*) filter (where updated_at <= occurred_at)::int as not_later
         from conversions group by status order by status`,
    );
    expect(statuses.map((s) => s.status)).toEqual(['approved', 'pending', 'reversed']);
    for (const s of statuses) if (s.status !== 'pending') expect(s.not_later, s.status).toBe(0);
    const payouts = await query<{ status: string }>(urlA, 'select distinct status from payouts order by 1');
    expect(payouts.map((p) => p.status)).toEqual(['cancelled', 'paid', 'pending']);
  });

  it('leaves keys, foreign keys, indexes and triggers exactly as initSource created them', async () => {
    const url = await createDatabase('wharf_seed_ddl');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const shape = async () =>
      (
        await client.query<{ d: string }>(
          `select k.conrelid::regclass::text || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) as d
             from pg_constraint k where k.connamespace = 'public'::regnamespace
           union all select pg_get_indexdef(indexrelid) from pg_index where indrelid::regclass::text in
             (select relname from pg_class where relnamespace = 'public'::regnamespace)
           union all select tgname || ' ' || tgenabled::text from pg_trigger where not tgisinternal
           order by 1`,
        )
      ).rows.map((r) => r.d);
    try {
      await initSource(client);
      const before = await shape();
      expect(before.filter((d) => d.endsWith('_stamp_updated_at O'))).toHaveLength(8);
      await seedSource(client, { accounts: 2, rows: 300, seed: 5, end: END });
      expect(await shape()).toEqual(before);
      const stamped = await client.query<{ stamped: boolean }>(
        `update clicks set referrer = 'x' where event_id = (select event_id from clicks order by event_id limit 1)
         returning updated_at = now() as stamped`,
      );
      expect(stamped.rows[0]!.stamped).toBe(true);
    } finally {
      await client.end();
    }
  });

  it('refuses to seed tables that already hold rows, and leaves them as they were', async () => {
    const before = await fingerprint(urlB);
    const client = new pg.Client({ connectionString: urlB });
    await client.connect();
    try {
      const error = await seedSource(client, { accounts: 1, rows: 10, seed: 9 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WharfError);
      expect((error as WharfError).message).toMatch(/not empty/);
      expect((error as WharfError).kind).toBe('terminal');
    } finally {
      await client.end();
    }
    expect(await fingerprint(urlB)).toEqual(before);
  });

  it('defaults end to the database clock minus a minute, and names a missing schema', async () => {
    const [url, summary] = await seeded({ accounts: 2, rows: 500, days: 1 });
    expect(summary.rowsByStream.clicks).toBe(500);
    const rows = await query<{ ok: boolean }>(
      url,
      `select max(updated_at) <= date_trunc('minute', now()) - interval '1 minute' as ok from clicks`,
    );
    expect(rows[0]!.ok).toBe(true);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const error = await seedSource(client, { accounts: 1, rows: 1, schema: 'nowhere' }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(WharfError);
      expect((error as WharfError).hint).toMatch(/source init/);
      const usage = await seedSource(client, { accounts: 0, rows: 1 }).catch((e: unknown) => e);
      expect((usage as WharfError).kind).toBe('usage');
    } finally {
      await client.end();
    }
  });
});

describe('insertLiveEvents', () => {
  it('adds clicks with normal inserts, stamped by the trigger, on links of the same account', async () => {
    const client = new pg.Client({ connectionString: urlB });
    await client.connect();
    try {
      const before = await query<{ n: number }>(urlB, 'select count(*)::int as n from clicks');
      const summary = await insertLiveEvents(client, { accounts: [1, 2, 5], clicks: 40, seed: 3 });
      expect(summary.clicks).toBe(120);
      const after = await query<{ n: number }>(urlB, 'select count(*)::int as n from clicks');
      expect(after[0]!.n - before[0]!.n).toBe(120);
      const fresh = await query<{ account_id: string; n: number; wrong: number }>(
        urlB,
        `select c.account_id::text, count(*)::int as n, count(*) filter (where l.account_id <> c.account_id)::int as wrong
           from clicks c join links l on l.id = c.link_id where c.updated_at > $1 group by 1 order by 1`,
        [END],
      );
      expect(fresh.map((r) => [r.account_id, r.n, r.wrong])).toEqual([
        ['1', 40, 0],
        ['2', 40, 0],
        ['5', 40, 0],
      ]);
      const conversions = await query<{ n: number }>(
        urlB,
        `select count(*)::int as n from conversions where updated_at > $1 and status = 'pending' and click_id is not null`,
        [END],
      );
      expect(conversions[0]!.n).toBeGreaterThanOrEqual(summary.conversions);
      const error = await insertLiveEvents(client, { accounts: [99], clicks: 1 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WharfError);
    } finally {
      await client.end();
    }
  });
});
