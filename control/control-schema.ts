import type pg from 'pg';
import { literalPg, quotePg } from '../db/postgres/quote.js';
import { inTransaction } from '../db/postgres/transaction.js';
import { deliveryStateMigration } from './deliveries.js';
import { retlControlMigrationSql } from './retl-control-schema.js';

/**
 * The control schema (default `wharf`, in the source database unless --control-url says otherwise):
 * exported windows, connectors, their secrets, run history. Migrations are numbered and additive.
 */
export interface ControlMigration {
  readonly version: number;
  readonly description: string;
  sql(schema: string): string;
}

export const controlMigrations: readonly ControlMigration[] = [
  {
    version: 1,
    description: 'windows, connectors, secrets, runs',
    sql: (s) => `
      create table if not exists ${s}.windows (
        format text not null,
        window_id text not null,
        start_at timestamptz not null,
        end_at timestamptz not null,
        revision int not null default 0,
        manifest_key text not null,
        files int not null,
        rows bigint not null,
        bytes bigint not null,
        exported_at timestamptz not null default now(),
        primary key (format, window_id)
      );
      create index if not exists windows_end_idx on ${s}.windows (format, end_at);
      create table if not exists ${s}.connectors (
        id bigserial primary key,
        account_id bigint not null,
        engine text not null,
        settings jsonb not null,
        streams text[] not null,
        format text not null default 'csv',
        state text not null default 'active',
        state_reason text,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      );
      create unique index if not exists connectors_one_active_per_account
        on ${s}.connectors (account_id) where state <> 'disabled';
      create table if not exists ${s}.secrets (
        connector_id bigint not null references ${s}.connectors (id),
        version int not null,
        key_id text not null,
        key_version int not null,
        wrapped_key bytea not null,
        ciphertext bytea not null,
        created_at timestamptz not null default now(),
        retired_at timestamptz,
        primary key (connector_id, version)
      );
      create table if not exists ${s}.runs (
        id bigserial primary key,
        connector_id bigint references ${s}.connectors (id),
        kind text not null,
        started_at timestamptz not null default now(),
        finished_at timestamptz,
        status text not null default 'running',
        windows int not null default 0,
        rows bigint not null default 0,
        error text
      );
      create index if not exists runs_connector_idx on ${s}.runs (connector_id, started_at desc);
      create table if not exists ${s}.long_transactions (
        pid int not null,
        xact_start timestamptz not null,
        first_seen timestamptz not null default now(),
        ended_seen timestamptz,
        rechecked_at timestamptz,
        primary key (pid, xact_start)
      );
    `,
  },
  {
    version: 2,
    description: 'connector warehouse schema, master keys',
    sql: (s) => `
      alter table ${s}.connectors add column if not exists schema text not null default 'tracking';
      create table if not exists ${s}.master_keys (
        key_id text primary key,
        version int not null unique,
        created_at timestamptz not null default now(),
        retired_at timestamptz
      );
      create index if not exists secrets_key_idx on ${s}.secrets (key_id);
    `,
  },
  {
    version: 3,
    description: 'run history by time (status, retention)',
    sql: (s) => `
      create index if not exists runs_started_idx on ${s}.runs (started_at);
    `,
  },
  {
    version: 4,
    description: 'windows in commit order (seq)',
    sql: (s) => `
      alter table ${s}.windows add column if not exists seq bigint;
      create sequence if not exists ${s}.windows_seq owned by ${s}.windows.seq;
      update ${s}.windows w set seq = o.n
        from (select format, window_id, row_number() over (order by exported_at, start_at, revision) as n
                from ${s}.windows) o
       where w.format = o.format and w.window_id = o.window_id;
      select setval(${literalPg(`${s}.windows_seq`)}::regclass, coalesce((select max(seq) from ${s}.windows), 0) + 1, false);
      alter table ${s}.windows alter column seq set default nextval(${literalPg(`${s}.windows_seq`)}::regclass);
      alter table ${s}.windows alter column seq set not null;
      create unique index if not exists windows_seq_idx on ${s}.windows (format, seq);
    `,
  },
  {
    version: 5,
    description: 'one active connector per account and family (warehouse, bucket)',
    sql: (s) => `
      alter table ${s}.connectors add column if not exists family text not null default 'warehouse';
      drop index if exists ${s}.connectors_one_active_per_account;
      create unique index if not exists connectors_one_active_per_account_family
        on ${s}.connectors (account_id, family) where state <> 'disabled';
    `,
  },
  {
    version: 6,
    description: 'connector progress: what each connector has seen and loaded',
    sql: (s) => `
      create table if not exists ${s}.connector_progress (
        connector_id bigint primary key references ${s}.connectors (id),
        seen_seq bigint not null default 0,
        catalog_version int,
        last_window_id text,
        last_window_end timestamptz,
        windows bigint not null default 0,
        rows bigint not null default 0,
        loaded_at timestamptz
      );
    `,
  },
  { version: 7, ...deliveryStateMigration },
  {
    version: 8,
    description: 'reverse ETL: sources, syncs, their secrets, runs and files, sent calls',
    sql: retlControlMigrationSql,
  },
  {
    version: 9,
    description: 'API tokens (hashed; admin or one account)',
    sql: (s) => `
      create table if not exists ${s}.api_tokens (
        id bigserial primary key,
        account_id bigint,
        name text not null default '',
        sha256 bytea not null,
        created_at timestamptz not null default now(),
        last_used_at timestamptz,
        revoked_at timestamptz
      );
    `,
  },
  {
    version: 10,
    description: 'scheduler slots: one plan per tick slot, whatever the number of `wharf run` processes',
    sql: (s) => `
      create table if not exists ${s}.scheduler_slots (
        name text primary key,
        last_slot timestamptz not null,
        planned_at timestamptz not null default now(),
        planned_by text not null default ''
      );
    `,
  },
];

/** Applies the control migrations not yet applied (idempotent, safe to run concurrently). */
export async function migrateControl(client: pg.ClientBase, schemaName: string): Promise<void> {
  const s = quotePg(schemaName);
  await inTransaction(client, async () => {
    // one migrator at a time, whatever the number of processes
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [`wharf.control.${schemaName}`]);
    await client.query(`create schema if not exists ${s}`);
    await client.query(
      `create table if not exists ${s}.migrations (version int primary key, description text not null, applied_at timestamptz not null default now())`,
    );
    const done = new Set(
      (await client.query<{ version: number }>(`select version from ${s}.migrations`)).rows.map(
        (r) => r.version,
      ),
    );
    for (const m of controlMigrations) {
      if (done.has(m.version)) continue;
      await client.query(m.sql(s));
      await client.query(`insert into ${s}.migrations (version, description) values ($1, $2)`, [
        m.version,
        m.description,
      ]);
    }
  });
}
