/**
 * The control tables of reverse ETL, as one additive migration for the control schema (`s` is the
 * schema, already quoted). It extends `runs` (one row per run of any job) with `sync_id`, `calls` and
 * `rejected`, and adds:
 *
 * - `retl_sources`: a customer's warehouse to read from (settings without the password);
 * - `retl_secrets`: the encrypted credentials of sources (`password`) and syncs (`write_key`), in the
 *   envelope of `secrets` (a data key wrapped by the master key), versioned for rotation;
 * - `retl_syncs`: a query, its call type, its frequency, timeout, lookback and start, its endpoint
 *   (without the write key), and its state (`active`, `failing` with the reason, `disabled`);
 * - `retl_runs`: a run's reverse-ETL state beside its `runs` row: the staged manifest, the bound
 *   instant, the warehouse-clock start (the next `last_sync_time`), counts, and the batches acknowledged
 *   (the first `batches_acked`, and any acknowledged out of order after them in `acked_ahead`);
 * - `retl_run_files`: a run's call files, each recorded once it is staged (delivery starts on a file as
 *   soon as it is recorded, before the run has read all its rows);
 * - `retl_sent_calls`: the messageIds a sync delivered lately, each with its run's warehouse start, so
 *   that a re-read (a lookback, or a run that died while reading) leaves them out; rows no later run can
 *   re-read are pruned.
 */
export function retlControlMigrationSql(s: string): string {
  return `
    create table if not exists ${s}.retl_sources (
      id bigserial primary key,
      account_id bigint not null,
      engine text not null check (engine in ('postgres', 'mssql')),
      settings jsonb not null,
      state text not null default 'active' check (state in ('active', 'disabled')),
      state_reason text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create index if not exists retl_sources_account_idx on ${s}.retl_sources (account_id);
    create table if not exists ${s}.retl_syncs (
      id bigserial primary key,
      source_id bigint not null references ${s}.retl_sources (id),
      name text not null,
      description text,
      call_type text not null check (call_type in ('identify', 'track', 'group', 'page', 'screen', 'alias')),
      query text not null,
      every_ms bigint not null default 60000 check (every_ms >= 60000),
      timeout_ms bigint not null,
      lookback_ms bigint not null default 0,
      start_at_micros bigint not null default 0,
      deliver_to text not null,
      state text not null default 'active' check (state in ('active', 'failing', 'disabled')),
      state_reason text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (source_id, name)
    );
    create table if not exists ${s}.retl_secrets (
      owner_kind text not null check (owner_kind in ('source', 'sync')),
      owner_id bigint not null,
      version int not null,
      key_id text not null,
      key_version int not null,
      wrapped_key bytea not null,
      ciphertext bytea not null,
      created_at timestamptz not null default now(),
      retired_at timestamptz,
      primary key (owner_kind, owner_id, version)
    );
    alter table ${s}.runs add column if not exists sync_id bigint references ${s}.retl_syncs (id);
    alter table ${s}.runs add column if not exists calls bigint not null default 0;
    alter table ${s}.runs add column if not exists rejected bigint not null default 0;
    create index if not exists runs_sync_idx on ${s}.runs (sync_id, started_at desc) where sync_id is not null;
    create table if not exists ${s}.retl_runs (
      run_id bigint primary key references ${s}.runs (id),
      sync_id bigint not null references ${s}.retl_syncs (id),
      status text not null default 'reading' check (status in ('reading', 'delivering', 'ok', 'failed')),
      manifest_key text,
      since_micros bigint,
      started_at_micros bigint,
      rows bigint not null default 0,
      calls bigint not null default 0,
      rejected bigint not null default 0,
      already_sent bigint not null default 0,
      batches_acked int not null default 0,
      acked_ahead int[] not null default '{}',
      calls_acked bigint not null default 0,
      bytes_acked bigint not null default 0,
      finished_at timestamptz
    );
    create index if not exists retl_runs_sync_idx on ${s}.retl_runs (sync_id, run_id desc);
    create table if not exists ${s}.retl_run_files (
      run_id bigint not null references ${s}.retl_runs (run_id),
      seq int not null,
      key text not null,
      calls bigint not null,
      bytes bigint not null,
      sha256 text not null,
      primary key (run_id, seq)
    );
    create table if not exists ${s}.retl_sent_calls (
      sync_id bigint not null references ${s}.retl_syncs (id),
      message_id text not null,
      run_started_micros bigint not null,
      primary key (sync_id, message_id)
    );
    create index if not exists retl_sent_calls_age_idx on ${s}.retl_sent_calls (sync_id, run_started_micros);
  `;
}
