import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { getStream } from '../catalog/types.js';
import { initSource, pgColumnType, sourceTableDdl } from '../source/source-schema.js';
import { createDatabase } from './helpers/databases.js';

let url: string;
let client: pg.Client;

beforeAll(async () => {
  url = await createDatabase('wharf_source_schema');
  client = new pg.Client({ connectionString: url });
  await client.connect();
  await initSource(client);
});

afterAll(async () => {
  await client?.end();
});

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

describe('initSource', () => {
  it('runs again, and concurrently, without error or duplicates', async () => {
    const others = await Promise.all([connect(), connect(), connect()]);
    try {
      await initSource(client);
      await Promise.all(others.map((c) => initSource(c)));
    } finally {
      await Promise.all(others.map((c) => c.end()));
    }
    const triggers = await client.query(
      `select c.relname from pg_trigger t join pg_class c on c.oid = t.tgrelid
        where c.relnamespace = 'public'::regnamespace and not t.tgisinternal order by 1`,
    );
    expect(triggers.rows.map((r) => r.relname)).toEqual(trackingCatalog.streams.map((s) => s.name).sort());
  });

  it('creates every catalog column in order, with its type and nullability', async () => {
    for (const stream of trackingCatalog.streams) {
      const columns = await client.query<{ name: string; type: string; notnull: boolean }>(
        `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as notnull
           from pg_attribute a where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped
          order by a.attnum`,
        [`public.${stream.name}`],
      );
      expect(columns.rows.map((c) => c.name)).toEqual(stream.columns.map((c) => c.name));
      for (const [i, column] of stream.columns.entries()) {
        const actual = columns.rows[i]!;
        const expected = pgColumnType(column)
          .replace(/^char\(/, 'character(')
          .replace(/^timestamptz$/, 'timestamp with time zone')
          .replace(/, /, ',');
        expect(actual.type, `${stream.name}.${column.name}`).toBe(expected);
        expect(actual.notnull, `${stream.name}.${column.name}`).toBe(!column.nullable);
      }
    }
  });

  it('creates primary keys, foreign keys and the updated_at / account_id indexes', async () => {
    const keys = await client.query<{ table: string; kind: string; columns: string; target: string | null }>(
      `select k.conrelid::regclass::text as table, k.contype as kind,
              (select string_agg(a.attname, ',' order by a.attnum) from pg_attribute a
                where a.attrelid = k.conrelid and a.attnum = any(k.conkey)) as columns,
              k.confrelid::regclass::text as target
         from pg_constraint k where k.connamespace = 'public'::regnamespace and k.contype in ('p', 'f')`,
    );
    for (const stream of trackingCatalog.streams) {
      const own = keys.rows.filter((k) => k.table === stream.name);
      expect(own.find((k) => k.kind === 'p')?.columns).toBe(stream.primaryKey.join(','));
      const foreign = own
        .filter((k) => k.kind === 'f')
        .map((k) => `${k.columns}->${k.target}`)
        .sort();
      const expected = stream.columns
        .filter((c) => c.references)
        .map((c) => `${c.name}->${c.references}`)
        .sort();
      expect(foreign, stream.name).toEqual(expected);
    }
    const indexes = await client.query<{ tablename: string; indexdef: string }>(
      `select tablename, indexdef from pg_indexes where schemaname = 'public'`,
    );
    for (const stream of trackingCatalog.streams) {
      const defs = indexes.rows.filter((i) => i.tablename === stream.name).map((i) => i.indexdef);
      expect(defs.some((d) => d.endsWith('(updated_at)'))).toBe(true);
      if (stream.name !== 'accounts') expect(defs.some((d) => d.endsWith('(account_id)'))).toBe(true);
    }
  });

  it('generates event ids (version 4) when none is given', async () => {
    await client.query(
      `insert into accounts (id, name, currency, timezone, created_at) values (9, 'Nine', 'EUR', 'UTC', now())`,
    );
    await client.query(
      `insert into affiliates (account_id, id, name, status, created_at) values (9, 91, 'A', 'active', now())`,
    );
    await client.query(
      `insert into programmes (account_id, id, name, commission_type, commission_value, currency, status, created_at)
       values (9, 91, 'P', 'fixed', 1.5, 'EUR', 'active', now())`,
    );
    await client.query(
      `insert into links (account_id, id, programme_id, affiliate_id, url, slug, created_at)
       values (9, 91, 91, 91, 'https://x', 's', now())`,
    );
    const inserted = await client.query<{ event_id: string }>(
      `insert into clicks (account_id, link_id, affiliate_id, occurred_at, is_unique)
       values (9, 91, 91, now(), true) returning event_id::text`,
    );
    expect(inserted.rows[0]!.event_id).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });
});

describe('the updated_at trigger', () => {
  it('stamps now() on insert, even over an explicit old value', async () => {
    await client.query('begin');
    try {
      const row = await client.query<{ stamped: boolean }>(
        `insert into accounts (id, name, currency, timezone, created_at, updated_at)
         values (1, 'One', 'EUR', 'UTC', now(), '2001-02-03T04:05:06Z') returning updated_at = now() as stamped`,
      );
      expect(row.rows[0]!.stamped).toBe(true);
      await client.query('commit');
    } catch (error) {
      await client.query('rollback');
      throw error;
    }
  });

  it('stamps now() on update, including an update that sets updated_at itself', async () => {
    await client.query('begin');
    try {
      const renamed = await client.query<{ stamped: boolean }>(
        `update accounts set name = 'Uno' where id = 1 returning updated_at = now() as stamped`,
      );
      expect(renamed.rows[0]!.stamped).toBe(true);
      const forced = await client.query<{ stamped: boolean }>(
        `update accounts set updated_at = '1999-01-01Z' where id = 1 returning updated_at = now() as stamped`,
      );
      expect(forced.rows[0]!.stamped).toBe(true);
    } finally {
      await client.query('commit');
    }
  });

  it('keeps an explicit updated_at when wharf.preserve_updated_at is on, for that transaction only', async () => {
    await client.query('begin');
    await client.query(`set local wharf.preserve_updated_at = 'on'`);
    await client.query(
      `insert into accounts (id, name, currency, timezone, created_at, updated_at)
       values (2, 'Two', 'EUR', 'UTC', '2001-01-01Z', '2001-02-03T04:05:06Z')`,
    );
    await client.query(`update accounts set updated_at = '2002-02-02T00:00:00Z', name = 'Dos' where id = 1`);
    await client.query('commit');
    const rows = await client.query<{ id: string; updated_at: Date }>(
      'select id, updated_at from accounts where id in (1, 2) order by id',
    );
    expect(rows.rows.map((r) => r.updated_at.toISOString())).toEqual([
      '2002-02-02T00:00:00.000Z',
      '2001-02-03T04:05:06.000Z',
    ]);
    // the setting was local: the next transaction is stamped again
    await client.query('begin');
    const again = await client.query<{ stamped: boolean }>(
      `update accounts set updated_at = '2001-01-01Z' where id = 2 returning updated_at = now() as stamped`,
    );
    await client.query('commit');
    expect(again.rows[0]!.stamped).toBe(true);
  });
});

describe('a schema with an awkward name', () => {
  const schema = 'we"ird; drop table accounts --';

  it('is created, quoted everywhere, and the public tables survive', async () => {
    await initSource(client, { schema });
    await initSource(client, { schema });
    const tables = await client.query<{ relname: string }>(
      `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relkind = 'r' order by 1`,
      [schema],
    );
    expect(tables.rows.map((r) => r.relname)).toEqual(trackingCatalog.streams.map((s) => s.name).sort());
    const stamped = await client.query<{ stamped: boolean }>(
      `insert into "we""ird; drop table accounts --".accounts (id, name, currency, timezone, created_at, updated_at)
       values (1, 'x', 'USD', 'UTC', now(), '2000-01-01Z') returning updated_at = now() as stamped`,
    );
    expect(stamped.rows[0]!.stamped).toBe(true);
    const survivors = await client.query(`select count(*)::int as n from public.accounts`);
    expect(survivors.rows[0].n).toBeGreaterThan(0);
  });
});

describe('sourceTableDdl', () => {
  it('describes a table from the catalog', () => {
    const ddl = sourceTableDdl(getStream(trackingCatalog, 'conversions'), 'public');
    expect(ddl).toContain('create table if not exists "public"."conversions"');
    expect(ddl).toContain('"event_id" uuid not null default gen_random_uuid()');
    expect(ddl).toContain('"updated_at" timestamptz not null default now()');
    expect(ddl).toContain('"amount" numeric(18, 4) not null');
    expect(ddl).toContain('"currency" char(3) not null');
    expect(ddl).toContain('"click_id" uuid,');
    expect(ddl).toContain('foreign key ("click_id") references "public"."clicks" ("event_id")');
    expect(ddl).toContain('on "public"."conversions" ("updated_at")');
    expect(ddl).toContain('on "public"."conversions" ("account_id")');
    expect(ddl).toContain('execute function "public"."wharf_stamp_updated_at"()');
  });
});

describe('reference schema defaults', () => {
  it('lets a row be inserted by hand with only what matters: created_at is now(), timezone is UTC', async () => {
    const url = await createDatabase('wharf_src_defaults');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await initSource(client, {});
      // an older schema without the defaults gains them on the next init
      await client.query('alter table public.accounts alter column timezone drop default');
      await initSource(client, {});
      await client.query("insert into public.accounts (id, name, currency) values (1, 'Acme', 'EUR')");
      await client.query(
        "insert into public.affiliates (id, account_id, name, email, country, status) values (10, 1, 'Ann', 'ann@example.com', 'FR', 'active')",
      );
      const { rows } = await client.query<{ timezone: string; fresh: boolean }>(
        "select a.timezone, a.created_at > now() - interval '1 minute' and f.created_at > now() - interval '1 minute' as fresh from public.accounts a join public.affiliates f on f.account_id = a.id",
      );
      expect(rows).toEqual([{ timezone: 'UTC', fresh: true }]);
    } finally {
      await client.end();
    }
  });
});
