/**
 * SQL Server engine, checked without a server: the exact T-SQL of every statement, quoting and injection,
 * the type map, error classification, URL parsing, and the bulk rows (what each awkward value is staged as).
 * The bulk-load statement is produced by tedious' own BulkLoad, and the CSV input by a real PostgreSQL COPY.
 * What a live SQL Server does with all this is checked by test/mssql-live.test.ts.
 */
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import sql from 'mssql';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import tedious from 'tedious';
import { describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Column, Stream } from '../catalog/types.js';
import { IntegrityError, WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { classifyMssqlError } from '../db/mssql/errors.js';
import { quoteMssql } from '../db/mssql/quote.js';
import { decodeFile, rowEncoder, stageTimestamp, stageValue } from '../loaders/mssql/bulk-rows.js';
import {
  missingParentSql,
  mssqlColumnType,
  mssqlDialect,
  mssqlSql,
  stagingTableName,
} from '../loaders/mssql/mssql-dialect.js';
import { mssqlDriverConfig, parseMssqlUrl } from '../loaders/mssql/mssql-url.js';
import { stagingBulkTable } from '../loaders/mssql/mssql-warehouse.js';
import type { WindowFile } from '../loaders/warehouse.js';
import { createDatabase } from './helpers/databases.js';

const stream = (name: string): Stream => trackingCatalog.streams.find((s) => s.name === name)!;
const clicks = stream('clicks');
const conversions = stream('conversions');
const syncedParents = ['accounts', 'programmes', 'affiliates', 'traffic_sources', 'links', 'clicks'];

describe('T-SQL text of every statement (exact strings, no server)', () => {
  it('creates the schema through EXEC, the name bracket-quoted inside an N string', () => {
    expect(mssqlSql.createSchema('tracking')).toBe(
      "IF SCHEMA_ID(N'tracking') IS NULL EXEC(N'CREATE SCHEMA [tracking]')",
    );
    expect(mssqlSql.createSchema("o'brien]x")).toBe(
      "IF SCHEMA_ID(N'o''brien]x') IS NULL EXEC(N'CREATE SCHEMA [o''brien]]x]')",
    );
  });

  it('creates the migrations, ledger and quarantine tables only when missing', () => {
    expect(mssqlSql.createMigrationsTable('tracking')).toBe(
      "IF OBJECT_ID(N'[tracking].[_wharf_migrations]', N'U') IS NULL CREATE TABLE [tracking].[_wharf_migrations] (" +
        '[version] INT NOT NULL PRIMARY KEY, [catalog] NVARCHAR(128) NOT NULL, [description] NVARCHAR(400) NOT NULL, ' +
        '[applied_at] DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME())',
    );
    expect(mssqlSql.createLedger('tracking')).toBe(
      "IF OBJECT_ID(N'[tracking].[_wharf_loads]', N'U') IS NULL CREATE TABLE [tracking].[_wharf_loads] (" +
        '[window_id] NVARCHAR(200) NOT NULL, [stream] NVARCHAR(128) NOT NULL, [rows] BIGINT NOT NULL, ' +
        '[sha256] CHAR(64) NOT NULL, [files] INT NOT NULL DEFAULT 0, [window_start] DATETIME2(6) NULL, ' +
        '[window_end] DATETIME2(6) NULL, [loaded_at] DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME(), ' +
        'PRIMARY KEY ([window_id], [stream]))',
    );
    expect(mssqlSql.createQuarantine('tracking')).toBe(
      "IF OBJECT_ID(N'[tracking].[_wharf_quarantine]', N'U') IS NULL CREATE TABLE [tracking].[_wharf_quarantine] (" +
        '[id] BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY, [window_id] NVARCHAR(200) NOT NULL, ' +
        '[stream] NVARCHAR(128) NOT NULL, [primary_key] NVARCHAR(MAX) NULL, [column_name] NVARCHAR(128) NOT NULL, ' +
        '[reason] NVARCHAR(400) NOT NULL, [raw_value] NVARCHAR(MAX) NULL, ' +
        '[quarantined_at] DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME())',
    );
  });

  it('creates clicks with DATETIME2(6), UNIQUEIDENTIFIER, NCHAR, BIT, the window columns, PK, index and FKs to synced parents', () => {
    expect(mssqlSql.createTable('tracking', clicks, syncedParents)).toEqual([
      "IF OBJECT_ID(N'[tracking].[clicks]', N'U') IS NULL CREATE TABLE [tracking].[clicks] (" +
        '[account_id] BIGINT NOT NULL, [event_id] UNIQUEIDENTIFIER NOT NULL, [updated_at] DATETIME2(6) NOT NULL, ' +
        '[link_id] BIGINT NOT NULL, [affiliate_id] BIGINT NOT NULL, [traffic_source_id] BIGINT NULL, ' +
        '[occurred_at] DATETIME2(6) NOT NULL, [ip] NVARCHAR(45) NULL, [user_agent] NVARCHAR(1024) NULL, ' +
        '[referrer] NVARCHAR(2048) NULL, [country] NCHAR(2) NULL, [device] NVARCHAR(32) NULL, [is_unique] BIT NOT NULL, ' +
        '[_wharf_window] NVARCHAR(200) NOT NULL, [_wharf_loaded_at] DATETIME2(6) NOT NULL, ' +
        'CONSTRAINT [clicks_pkey] PRIMARY KEY ([event_id]))',
      "IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'[tracking].[clicks]') AND name = N'clicks_updated_at_idx') " +
        'CREATE INDEX [clicks_updated_at_idx] ON [tracking].[clicks] ([updated_at])',
      "IF OBJECT_ID(N'[tracking].[clicks_account_id_fkey]', N'F') IS NULL ALTER TABLE [tracking].[clicks] " +
        'ADD CONSTRAINT [clicks_account_id_fkey] FOREIGN KEY ([account_id]) REFERENCES [tracking].[accounts]',
      "IF OBJECT_ID(N'[tracking].[clicks_link_id_fkey]', N'F') IS NULL ALTER TABLE [tracking].[clicks] " +
        'ADD CONSTRAINT [clicks_link_id_fkey] FOREIGN KEY ([link_id]) REFERENCES [tracking].[links]',
      "IF OBJECT_ID(N'[tracking].[clicks_affiliate_id_fkey]', N'F') IS NULL ALTER TABLE [tracking].[clicks] " +
        'ADD CONSTRAINT [clicks_affiliate_id_fkey] FOREIGN KEY ([affiliate_id]) REFERENCES [tracking].[affiliates]',
      "IF OBJECT_ID(N'[tracking].[clicks_traffic_source_id_fkey]', N'F') IS NULL ALTER TABLE [tracking].[clicks] " +
        'ADD CONSTRAINT [clicks_traffic_source_id_fkey] FOREIGN KEY ([traffic_source_id]) REFERENCES [tracking].[traffic_sources]',
    ]);
  });

  it('creates conversions with DECIMAL(18,4) money, and FKs only to the parents that are synced', () => {
    expect(mssqlSql.createTable('tracking', conversions, ['links', 'clicks'])).toEqual([
      "IF OBJECT_ID(N'[tracking].[conversions]', N'U') IS NULL CREATE TABLE [tracking].[conversions] (" +
        '[account_id] BIGINT NOT NULL, [event_id] UNIQUEIDENTIFIER NOT NULL, [updated_at] DATETIME2(6) NOT NULL, ' +
        '[click_id] UNIQUEIDENTIFIER NULL, [link_id] BIGINT NOT NULL, [affiliate_id] BIGINT NOT NULL, ' +
        '[programme_id] BIGINT NOT NULL, [occurred_at] DATETIME2(6) NOT NULL, [order_ref] NVARCHAR(128) NULL, ' +
        '[amount] DECIMAL(18,4) NOT NULL, [commission] DECIMAL(18,4) NOT NULL, [currency] NCHAR(3) NOT NULL, ' +
        '[status] NVARCHAR(32) NOT NULL, [_wharf_window] NVARCHAR(200) NOT NULL, [_wharf_loaded_at] DATETIME2(6) NOT NULL, ' +
        'CONSTRAINT [conversions_pkey] PRIMARY KEY ([event_id]))',
      "IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'[tracking].[conversions]') AND name = N'conversions_updated_at_idx') " +
        'CREATE INDEX [conversions_updated_at_idx] ON [tracking].[conversions] ([updated_at])',
      "IF OBJECT_ID(N'[tracking].[conversions_click_id_fkey]', N'F') IS NULL ALTER TABLE [tracking].[conversions] " +
        'ADD CONSTRAINT [conversions_click_id_fkey] FOREIGN KEY ([click_id]) REFERENCES [tracking].[clicks]',
      "IF OBJECT_ID(N'[tracking].[conversions_link_id_fkey]', N'F') IS NULL ALTER TABLE [tracking].[conversions] " +
        'ADD CONSTRAINT [conversions_link_id_fkey] FOREIGN KEY ([link_id]) REFERENCES [tracking].[links]',
    ]);
  });

  it('gives jsonb columns NVARCHAR(MAX) with an ISJSON check, also when a newer catalog adds one', () => {
    const [create] = mssqlSql.createTable('tracking', stream('links'), []);
    expect(create).toContain(
      '[metadata] NVARCHAR(MAX) NULL CONSTRAINT [links_metadata_isjson] CHECK (ISJSON([metadata]) = 1)',
    );
    const extra: Column = { name: 'extra', type: 'jsonb', nullable: true, since: 2 };
    expect(mssqlSql.addColumn('tracking', stream('links'), extra)).toBe(
      "IF COL_LENGTH(N'[tracking].[links]', N'extra') IS NULL ALTER TABLE [tracking].[links] " +
        'ADD [extra] NVARCHAR(MAX) NULL CONSTRAINT [links_extra_isjson] CHECK (ISJSON([extra]) = 1)',
    );
  });

  it('stages into a real text table in the schema, dropping a leftover first', () => {
    expect(mssqlSql.createStaging('tracking', clicks)).toEqual([
      'DROP TABLE IF EXISTS [tracking].[_wharf_stage_clicks]',
      'CREATE TABLE [tracking].[_wharf_stage_clicks] ([account_id] NVARCHAR(20) NULL, [event_id] NVARCHAR(36) NULL, ' +
        '[updated_at] NVARCHAR(26) NULL, [link_id] NVARCHAR(20) NULL, [affiliate_id] NVARCHAR(20) NULL, ' +
        '[traffic_source_id] NVARCHAR(20) NULL, [occurred_at] NVARCHAR(26) NULL, [ip] NVARCHAR(45) NULL, ' +
        '[user_agent] NVARCHAR(1024) NULL, [referrer] NVARCHAR(2048) NULL, [country] NVARCHAR(2) NULL, ' +
        '[device] NVARCHAR(32) NULL, [is_unique] NVARCHAR(1) NULL, [_wharf_window] NVARCHAR(200) NULL)',
    ]);
    expect(mssqlSql.dropStaging('tracking', clicks)).toBe(
      'DROP TABLE IF EXISTS [tracking].[_wharf_stage_clicks]',
    );
  });

  it('bulk-loads with the column types the staging table has (statement built by tedious itself)', () => {
    const table = stagingBulkTable('tracking', conversions);
    const bulk = new tedious.BulkLoad(
      table.path!,
      undefined,
      {} as never,
      { keepNulls: true, lockTable: true },
      () => {},
    );
    for (const c of table.columns) {
      expect(c.type).toBe(sql.NVarChar);
      bulk.addColumn(c.name, tedious.TYPES.NVarChar, {
        nullable: true,
        length: (c as { length?: number }).length!,
      });
    }
    expect(bulk.getBulkInsertSql()).toBe(
      'insert bulk [tracking].[_wharf_stage_conversions]([account_id] nvarchar(20), [event_id] nvarchar(36), ' +
        '[updated_at] nvarchar(26), [click_id] nvarchar(36), [link_id] nvarchar(20), [affiliate_id] nvarchar(20), ' +
        '[programme_id] nvarchar(20), [occurred_at] nvarchar(26), [order_ref] nvarchar(128), [amount] nvarchar(20), ' +
        '[commission] nvarchar(20), [currency] nvarchar(3), [status] nvarchar(32), [_wharf_window] nvarchar(200)) ' +
        'WITH (KEEP_NULLS,TABLOCK)',
    );
    const links = stagingBulkTable('tracking', stream('links'));
    expect((links.columns.find((c) => c.name === 'metadata') as { length?: number }).length).toBe(sql.MAX);
  });

  it('merges clicks: typed CTE, dedupe by key (latest updated_at), MERGE WITH (HOLDLOCK) and the version guard', () => {
    expect(mssqlSql.merge('tracking', clicks)).toBe(
      'WITH [typed] AS (SELECT CONVERT(BIGINT, [account_id]) AS [account_id], CONVERT(UNIQUEIDENTIFIER, [event_id]) AS [event_id], ' +
        'CONVERT(DATETIME2(6), [updated_at], 126) AS [updated_at], CONVERT(BIGINT, [link_id]) AS [link_id], ' +
        'CONVERT(BIGINT, [affiliate_id]) AS [affiliate_id], CONVERT(BIGINT, [traffic_source_id]) AS [traffic_source_id], ' +
        'CONVERT(DATETIME2(6), [occurred_at], 126) AS [occurred_at], [ip], [user_agent], [referrer], ' +
        'CONVERT(NCHAR(2), [country]) AS [country], [device], CONVERT(BIT, [is_unique]) AS [is_unique], [_wharf_window] ' +
        'FROM [tracking].[_wharf_stage_clicks]), ' +
        '[src] AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY [event_id] ORDER BY [updated_at] DESC, [_wharf_window] DESC) AS [_rn] FROM [typed]) ' +
        'MERGE INTO [tracking].[clicks] WITH (HOLDLOCK) AS t ' +
        'USING (SELECT [account_id], [event_id], [updated_at], [link_id], [affiliate_id], [traffic_source_id], [occurred_at], ' +
        '[ip], [user_agent], [referrer], [country], [device], [is_unique], [_wharf_window] FROM [src] WHERE [_rn] = 1) AS s ' +
        'ON t.[event_id] = s.[event_id] ' +
        'WHEN MATCHED AND (s.[updated_at] > t.[updated_at] OR (s.[updated_at] = t.[updated_at] AND EXISTS (' +
        'SELECT s.[account_id], s.[updated_at], s.[link_id], s.[affiliate_id], s.[traffic_source_id], s.[occurred_at], s.[ip], ' +
        's.[user_agent], s.[referrer], s.[country], s.[device], s.[is_unique] EXCEPT ' +
        'SELECT t.[account_id], t.[updated_at], t.[link_id], t.[affiliate_id], t.[traffic_source_id], t.[occurred_at], t.[ip], ' +
        't.[user_agent], t.[referrer], t.[country], t.[device], t.[is_unique]))) ' +
        'THEN UPDATE SET [account_id] = s.[account_id], [updated_at] = s.[updated_at], [link_id] = s.[link_id], ' +
        '[affiliate_id] = s.[affiliate_id], [traffic_source_id] = s.[traffic_source_id], [occurred_at] = s.[occurred_at], ' +
        '[ip] = s.[ip], [user_agent] = s.[user_agent], [referrer] = s.[referrer], [country] = s.[country], ' +
        '[device] = s.[device], [is_unique] = s.[is_unique], [_wharf_window] = s.[_wharf_window], ' +
        '[_wharf_loaded_at] = SYSUTCDATETIME() ' +
        'WHEN NOT MATCHED BY TARGET THEN INSERT ([account_id], [event_id], [updated_at], [link_id], [affiliate_id], ' +
        '[traffic_source_id], [occurred_at], [ip], [user_agent], [referrer], [country], [device], [is_unique], ' +
        '[_wharf_window], [_wharf_loaded_at]) VALUES (s.[account_id], s.[event_id], s.[updated_at], s.[link_id], ' +
        's.[affiliate_id], s.[traffic_source_id], s.[occurred_at], s.[ip], s.[user_agent], s.[referrer], s.[country], ' +
        's.[device], s.[is_unique], s.[_wharf_window], SYSUTCDATETIME());',
    );
  });

  it('converts money exactly: DECIMAL from the staged text, no float on the way', () => {
    const merge = mssqlSql.merge('tracking', conversions);
    expect(merge).toContain(
      'CONVERT(DECIMAL(18,4), [amount]) AS [amount], CONVERT(DECIMAL(18,4), [commission]) AS [commission]',
    );
    expect(merge).not.toMatch(/FLOAT|REAL/i);
  });

  it('upserts a ledger row with MERGE and parameters @p1…@p7 (a replay updates, never adds)', () => {
    expect(mssqlSql.upsertLedger('tracking')).toBe(
      'MERGE INTO [tracking].[_wharf_loads] WITH (HOLDLOCK) AS l USING (SELECT @p1 AS [window_id], @p2 AS [stream], ' +
        '@p3 AS [rows], @p4 AS [sha256], @p5 AS [files], @p6 AS [window_start], @p7 AS [window_end]) AS u ' +
        'ON l.[window_id] = u.[window_id] AND l.[stream] = u.[stream] ' +
        'WHEN MATCHED THEN UPDATE SET [rows] = u.[rows], [sha256] = u.[sha256], [files] = u.[files], ' +
        '[window_start] = u.[window_start], [window_end] = u.[window_end], [loaded_at] = SYSUTCDATETIME() ' +
        'WHEN NOT MATCHED THEN INSERT ([window_id], [stream], [rows], [sha256], [files], [window_start], [window_end], [loaded_at]) ' +
        'VALUES (u.[window_id], u.[stream], u.[rows], u.[sha256], u.[files], u.[window_start], u.[window_end], SYSUTCDATETIME());',
    );
  });

  it('inserts quarantine rows with six parameters a row, and clears a window before a replay', () => {
    expect(mssqlSql.insertQuarantine('tracking', 2)).toBe(
      'INSERT INTO [tracking].[_wharf_quarantine] ([window_id], [stream], [primary_key], [column_name], [reason], [raw_value]) ' +
        'VALUES (@p1, @p2, @p3, @p4, @p5, @p6), (@p7, @p8, @p9, @p10, @p11, @p12)',
    );
    expect(() => mssqlSql.insertQuarantine('tracking', 301)).toThrow(RangeError);
    expect(mssqlSql.clearQuarantine('tracking')).toBe(
      'DELETE FROM [tracking].[_wharf_quarantine] WHERE [window_id] = @p1 AND [stream] = @p2',
    );
    expect(mssqlSql.selectLoaded('tracking')).toBe(
      'SELECT l.[window_id], l.[stream] FROM [tracking].[_wharf_loads] AS l WHERE l.[window_id] IN (SELECT [value] FROM OPENJSON(@ids))',
    );
  });
});

/** The T-SQL left once bracket identifiers (with `]]`) and N'…' strings (with `''`) are taken out. */
function bareCode(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '[' || (ch === 'N' && text[i + 1] === "'") || ch === "'") {
      const close = ch === '[' ? ']' : "'";
      i += ch === 'N' ? 2 : 1;
      for (;;) {
        if (i >= text.length) throw new Error(`unterminated ${close} in ${text}`);
        if (text[i] === close && text[i + 1] === close) i += 2;
        else if (text[i] === close) break;
        else i++;
      }
      i++;
      out += ch === '[' ? '⟦id⟧' : '⟦str⟧';
      continue;
    }
    out += ch;
    i++;
  }
  return out;
}

describe('injection: a schema `a]b; drop table x --` and a stream `evil]name` stay names', () => {
  const schema = 'a]b; drop table x --';
  const evil: Stream = { ...clicks, name: 'evil]name' };
  const statements = [
    mssqlSql.createSchema(schema),
    mssqlSql.createMigrationsTable(schema),
    mssqlSql.createLedger(schema),
    mssqlSql.createQuarantine(schema),
    ...mssqlSql.createTable(schema, evil, ['links', 'affiliates']),
    mssqlSql.addColumn(schema, evil, { name: 'x]y', type: 'text', nullable: true }),
    ...mssqlSql.createStaging(schema, evil),
    mssqlSql.merge(schema, evil),
    mssqlSql.dropStaging(schema, evil),
    mssqlSql.upsertLedger(schema),
    mssqlSql.insertQuarantine(schema, 1),
    mssqlSql.clearQuarantine(schema),
    mssqlSql.selectLoaded(schema),
  ];

  it("doubles `]` in every bracket name and `'` in every string", () => {
    for (const s of statements) {
      expect(s).toContain('[a]]b; drop table x --]');
      // no bracket name is closed early: each `]` after the `a` is the doubled one
      expect(s).not.toMatch(/\[a\]b/);
    }
    expect(statements.join('\n')).toContain('[_wharf_stage_evil]]name]');
    expect(statements.join('\n')).toContain(
      'MERGE INTO [a]]b; drop table x --].[evil]]name] WITH (HOLDLOCK)',
    );
    expect(mssqlSql.createSchema(schema)).toBe(
      "IF SCHEMA_ID(N'a]b; drop table x --') IS NULL EXEC(N'CREATE SCHEMA [a]]b; drop table x --]')",
    );
    expect(stagingTableName(evil)).toBe('_wharf_stage_evil]name');
    expect(stagingBulkTable(schema, evil).path).toBe('[a]]b; drop table x --].[_wharf_stage_evil]]name]');
  });

  it('leaves no statement text outside names and string literals (nothing of the names escapes)', () => {
    for (const s of statements) {
      const bare = bareCode(s);
      expect(bare).not.toMatch(/drop table x|evil|\]/i);
      expect(bare).not.toContain('--');
    }
    // the EXEC string itself holds a name that is quoted once more inside it
    expect(bareCode('CREATE SCHEMA [a]]b; drop table x --]')).toBe('CREATE SCHEMA ⟦id⟧');
  });

  it('carries values only as parameters: no window id, key or count is in the text', () => {
    for (const s of [
      mssqlSql.upsertLedger(schema),
      mssqlSql.insertQuarantine(schema, 1),
      mssqlSql.clearQuarantine(schema),
    ]) {
      expect(bareCode(s)).toMatch(/@p1\b/);
      expect(bareCode(s)).not.toContain('⟦str⟧');
    }
    expect(bareCode(mssqlSql.merge(schema, evil))).not.toContain('⟦str⟧');
  });

  it('refuses NUL, empty names and names over 128 characters', () => {
    expect(quoteMssql('x'.repeat(128))).toBe(`[${'x'.repeat(128)}]`);
    expect(() => quoteMssql('x'.repeat(129))).toThrow(WharfError);
    expect(() => quoteMssql('a\u0000b')).toThrow(/NUL/);
    expect(() => quoteMssql('')).toThrow(WharfError);
    expect(stagingTableName({ ...clicks, name: 's'.repeat(200) }).length).toBe(128);
  });
});

describe('type map (what each logical type becomes in SQL Server)', () => {
  const cases: Array<[Column, string]> = [
    [{ name: 'a', type: 'bigint', nullable: false }, 'BIGINT'],
    [{ name: 'a', type: 'numeric', nullable: false, precision: 18, scale: 4 }, 'DECIMAL(18,4)'],
    [{ name: 'a', type: 'timestamptz', nullable: false }, 'DATETIME2(6)'],
    [{ name: 'a', type: 'date', nullable: false }, 'DATE'],
    [{ name: 'a', type: 'uuid', nullable: false }, 'UNIQUEIDENTIFIER'],
    [{ name: 'a', type: 'boolean', nullable: false }, 'BIT'],
    [{ name: 'a', type: 'char', nullable: false, length: 3 }, 'NCHAR(3)'],
    [{ name: 'a', type: 'text', nullable: false, length: 4000 }, 'NVARCHAR(4000)'],
    [{ name: 'a', type: 'text', nullable: false, length: 4001 }, 'NVARCHAR(MAX)'],
    [{ name: 'a', type: 'text', nullable: false }, 'NVARCHAR(MAX)'],
    [{ name: 'a', type: 'jsonb', nullable: true }, 'NVARCHAR(MAX)'],
  ];
  it.each(cases)('%j → %s', (column, type) => {
    expect(mssqlColumnType(column)).toBe(type);
    expect(mssqlDialect.columnType(column)).toBe(type);
  });

  it('declares what SQL Server can do as data', () => {
    expect(mssqlDialect.name).toBe('mssql');
    expect(mssqlDialect.capabilities).toEqual({
      maxIdentifierLength: 128,
      transactionalDdl: true,
      preferredFormat: 'csv',
      deferrableForeignKeys: false,
    });
    expect(mssqlDialect.quote('a]b')).toBe('[a]]b]');
  });
});

describe("classifyError by error number and driver code (errors built with the drivers' own classes)", () => {
  /** What mssql raises for a server error: a RequestError wrapping the message with its `info.number`. */
  const serverError = (number: number) =>
    new sql.RequestError(
      Object.assign(new Error(`server error ${number}`), { info: { number } }) as never,
      'EREQUEST',
    );

  it.each([
    1205, 1222, 40197, 40501, 40613, 49918, 49919, 49920, 4060, 4221, 10928, 10929, 233, 10053, 10054, 10060,
    -2,
  ])('error %i is transient', (number) => {
    const e = serverError(number);
    expect(e.number).toBe(number);
    expect(mssqlDialect.classifyError(e)).toBe('transient');
  });

  it.each([18456, 229, 230, 262, 208, 207, 2627, 2601, 547, 8152, 2628, 242, 241, 515, 50000])(
    'error %i is terminal',
    (number) => {
      expect(classifyMssqlError(serverError(number))).toBe('terminal');
    },
  );

  it('finds the number in a wrapped cause, and a transient preceding error wins', () => {
    const outer = new WharfError('load failed', { cause: serverError(1205) });
    expect(classifyMssqlError(outer)).toBe('transient');
    const e = serverError(3621);
    Object.assign(e, { precedingErrors: [serverError(1205)] });
    expect(classifyMssqlError(e)).toBe('transient');
  });

  it('treats socket errors and timeouts as transient, login failure and TLS verification failure as terminal', () => {
    const socket = new sql.ConnectionError(
      new tedious.ConnectionError('Failed to connect', 'ESOCKET') as never,
    );
    expect(socket.code).toBe('ESOCKET');
    expect(classifyMssqlError(socket)).toBe('transient');
    expect(classifyMssqlError(new sql.RequestError('Timeout: Request failed to complete', 'ETIMEOUT'))).toBe(
      'transient',
    );
    expect(classifyMssqlError(new sql.ConnectionError('Connection is closed.', 'ECONNCLOSED'))).toBe(
      'transient',
    );
    const login = new sql.ConnectionError(new tedious.ConnectionError('Login failed.', 'ELOGIN') as never);
    expect(classifyMssqlError(login)).toBe('terminal');
    const azureBusy = new tedious.ConnectionError('database unavailable', 'ELOGIN');
    azureBusy.isTransient = true;
    expect(classifyMssqlError(new sql.ConnectionError(azureBusy as never))).toBe('transient');
    const tls = new tedious.ConnectionError('Failed to connect', 'ESOCKET', {
      cause: Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
    });
    expect(classifyMssqlError(new sql.ConnectionError(tls as never))).toBe('terminal');
    expect(classifyMssqlError(new Error('no code'))).toBe('terminal');
  });
});

describe('URL forms → driver configuration (TLS verified unless told otherwise; the password a Secret)', () => {
  const password = 'p@ss:w/rd?#[]%" x';

  it('parses mssql://user:password@host:port/database with a percent-encoded password', () => {
    const url = `mssql://wharf_loader:${encodeURIComponent(password)}@db.example.com:14330/Warehouse`;
    expect(encodeURIComponent(password)).toBe('p%40ss%3Aw%2Frd%3F%23%5B%5D%25%22%20x');
    const c = parseMssqlUrl(url);
    expect(c).toMatchObject({
      server: 'db.example.com',
      port: 14330,
      database: 'Warehouse',
      user: 'wharf_loader',
      encrypt: true,
      trustServerCertificate: false,
    });
    expect(c.password).toBeInstanceOf(Secret);
    expect(c.password!.reveal()).toBe(password);
    expect(JSON.stringify(c)).not.toContain('p@ss');
    expect(String(c.password)).toBe('********');
    const config = mssqlDriverConfig(c);
    expect(config.password).toBe(password);
    expect(config.options).toMatchObject({ encrypt: true, trustServerCertificate: false, useUTC: true });
    expect(config.port).toBe(14330);
  });

  it('defaults the port to 1433 and reads trustServerCertificate=true as turning verification off', () => {
    const c = parseMssqlUrl('mssql://sa:x@127.0.0.1/master?trustServerCertificate=true&encrypt=true');
    expect(c.port).toBe(1433);
    expect(c.trustServerCertificate).toBe(true);
    expect(mssqlDriverConfig(c).options?.trustServerCertificate).toBe(true);
    expect(parseMssqlUrl('mssql://sa:x@h/db?encrypt=strict').encrypt).toBe('strict');
  });

  it('parses sqlserver://host:port;database=…;user=…;password={…} (JDBC form, braces for ; and })', () => {
    const c = parseMssqlUrl(
      'sqlserver://db.example.com:1444;database=dw;user=loader;password={a;b}}c@d};trustServerCertificate=false',
    );
    expect(c).toMatchObject({
      server: 'db.example.com',
      port: 1444,
      database: 'dw',
      user: 'loader',
      encrypt: true,
    });
    expect(c.trustServerCertificate).toBe(false);
    expect(c.password!.reveal()).toBe('a;b}c@d');
  });

  it('lets a password from stdin replace one in the URL, and refuses unknown options and bad flags', () => {
    const c = parseMssqlUrl('mssql://sa:inurl@h/db', new Secret('fromstdin'));
    expect(c.password!.reveal()).toBe('fromstdin');
    expect(() => parseMssqlUrl('mssql://sa:x@h/db?trustServerCertficate=true')).toThrow(/unknown option/);
    expect(() => parseMssqlUrl('mssql://sa:x@h/db?encrypt=maybe')).toThrow(/encrypt=maybe/);
    expect(() => parseMssqlUrl('mssql://sa:secret@h/db?encrypt=maybe')).not.toThrow(/secret/);
  });
});

const col = (type: Column['type'], extra: Partial<Column> = {}): Column => ({
  name: 'v',
  type,
  nullable: true,
  ...extra,
});
const staged = (column: Column, raw: string | null) => stageValue(column, raw);

describe('bulk row values: what each awkward value is staged as (text the MERGE converts exactly)', () => {
  it('keeps non-BMP unicode and counts it as SQL Server does (two UTF-16 units a character)', () => {
    const ip = clicks.columns.find((c) => c.name === 'ip')!; // NVARCHAR(45)
    expect(staged(ip, '🚀'.repeat(22))).toEqual({ ok: true, value: '🚀'.repeat(22) });
    const tooLong = staged(ip, '🚀'.repeat(23));
    expect(tooLong).toEqual({
      ok: false,
      reason: '46 UTF-16 code units: longer than NVARCHAR(45) holds (it would be truncated)',
    });
  });

  it('keeps the largest DECIMAL(18,4) values digit for digit, and quarantines what would overflow or round', () => {
    const money = conversions.columns.find((c) => c.name === 'amount')!;
    expect(staged(money, '99999999999999.9999')).toEqual({ ok: true, value: '99999999999999.9999' });
    expect(staged(money, '-99999999999999.9999')).toEqual({ ok: true, value: '-99999999999999.9999' });
    // why no typed path: tedious' own Decimal encoder goes through a JS number and sends a different value
    const decimal = tedious.TYPES.Decimal;
    const value = decimal.validate('99999999999999.9999', undefined as never, undefined as never);
    const sent = Buffer.concat([
      ...decimal.generateParameterData({ value, precision: 18, scale: 4 } as never, {} as never),
    ]);
    expect(sent.readBigUInt64LE(1)).not.toBe(999999999999999999n);
    expect(staged(money, '12.3400')).toEqual({ ok: true, value: '12.3400' });
    expect(staged(money, '0.0000')).toEqual({ ok: true, value: '0.0000' });
    expect(staged(money, '100000000000000.0000')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/too large/),
    });
    expect(staged(money, '1.23456')).toMatchObject({ ok: false, reason: expect.stringMatching(/round/) });
    expect(staged(money, 'NaN')).toMatchObject({ ok: false });
    expect(staged(money, 'Infinity')).toMatchObject({ ok: false });
  });

  it('turns timestamptz text into UTC DATETIME2 text keeping the microseconds', () => {
    expect(stageTimestamp('2026-11-23 09:20:00.123456+00')).toEqual({
      ok: true,
      value: '2026-11-23T09:20:00.123456',
    });
    expect(stageTimestamp('2026-11-23 09:20:00.000001+00')).toEqual({
      ok: true,
      value: '2026-11-23T09:20:00.000001',
    });
    expect(stageTimestamp('2026-11-23 09:20:00+00')).toEqual({
      ok: true,
      value: '2026-11-23T09:20:00.000000',
    });
    expect(stageTimestamp('2026-11-23 09:20:00.5+05:30')).toEqual({
      ok: true,
      value: '2026-11-23T03:50:00.500000',
    });
    expect(stageTimestamp('2024-12-31 23:59:59.999999-01')).toEqual({
      ok: true,
      value: '2025-01-01T00:59:59.999999',
    });
    expect(stageTimestamp('2024-02-29 12:00:00+00')).toMatchObject({ ok: true });
    expect(stageTimestamp('2023-02-29 12:00:00+00')).toMatchObject({ ok: false });
    expect(stageTimestamp('2026-11-23 09:20:00')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/offset/),
    });
    expect(stageTimestamp('infinity')).toMatchObject({ ok: false });
  });

  it('holds the year 0001 and 9999 boundaries in UTC, and quarantines what falls outside', () => {
    expect(stageTimestamp('0001-01-01 00:00:00+00')).toEqual({
      ok: true,
      value: '0001-01-01T00:00:00.000000',
    });
    expect(stageTimestamp('0001-01-01 00:30:00-01')).toEqual({
      ok: true,
      value: '0001-01-01T01:30:00.000000',
    });
    expect(stageTimestamp('0001-01-01 00:30:00+01')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/before 0001-01-01/),
    });
    expect(stageTimestamp('0050-03-01 00:00:00+00')).toEqual({
      ok: true,
      value: '0050-03-01T00:00:00.000000',
    });
    expect(stageTimestamp('0001-12-31 23:59:59+00 BC')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/before/),
    });
    expect(stageTimestamp('9999-12-31 23:59:59.999999+00')).toEqual({
      ok: true,
      value: '9999-12-31T23:59:59.999999',
    });
    expect(stageTimestamp('9999-12-31 23:30:00-01')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/after 9999/),
    });
    expect(stageTimestamp('10000-01-01 00:30:00+01')).toEqual({
      ok: true,
      value: '9999-12-31T23:30:00.000000',
    });
    const date = col('date');
    expect(staged(date, '0001-01-01')).toEqual({ ok: true, value: '0001-01-01' });
    expect(staged(date, '0001-01-01 BC')).toMatchObject({ ok: false });
    expect(staged(date, '10000-01-01')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/after 9999-12-31/),
    });
  });

  it('keeps NULL and the empty string apart, and refuses NULL in a NOT NULL column', () => {
    expect(staged(col('text', { length: 10 }), null)).toEqual({ ok: true, value: null });
    expect(staged(col('text', { length: 10 }), '')).toEqual({ ok: true, value: '' });
    expect(staged(col('text', { nullable: false }), null)).toEqual({
      ok: false,
      reason: 'NULL in a NOT NULL column',
    });
  });

  it('stages booleans as 1/0, UUIDs in lower case, bigints in range, JSON objects and arrays only', () => {
    expect(staged(col('boolean'), 't')).toEqual({ ok: true, value: '1' });
    expect(staged(col('boolean'), 'f')).toEqual({ ok: true, value: '0' });
    expect(staged(col('uuid'), 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')).toEqual({
      ok: true,
      value: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    });
    expect(staged(col('uuid'), 'nope')).toMatchObject({ ok: false });
    expect(staged(col('bigint'), '9223372036854775807')).toEqual({ ok: true, value: '9223372036854775807' });
    expect(staged(col('bigint'), '9223372036854775808')).toMatchObject({ ok: false });
    expect(staged(col('jsonb'), '{"k": "v", "n": [1, 2.50]}')).toEqual({
      ok: true,
      value: '{"k": "v", "n": [1, 2.50]}',
    });
    expect(staged(col('jsonb'), '{"k": ')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not valid JSON/),
    });
    expect(staged(col('jsonb'), '"just a string"')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/scalar/),
    });
  });

  it('encodes a record in catalog order with the window id last, or names every bad value of the row', () => {
    const encode = rowEncoder(
      clicks,
      clicks.columns.map((c) => c.name),
    );
    const base = [
      '7',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      '2026-11-23 09:20:00.123456+00',
      '1',
      '2',
      null,
    ];
    const rest = ['2026-11-23 09:19:59.999999+00', '', 'ua', null, 'FR', 'desktop', 't'];
    expect(encode([...base, ...rest], 'w1')).toEqual({
      ok: true,
      values: [
        '7',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '2026-11-23T09:20:00.123456',
        '1',
        '2',
        null,
        '2026-11-23T09:19:59.999999',
        '',
        'ua',
        null,
        'FR',
        'desktop',
        '1',
        'w1',
      ],
    });
    const bad = encode(
      [...base, '2026-11-23 09:19:59+00', 'x'.repeat(46), 'ua', null, 'FRA', 'desktop', 't'],
      'w1',
    );
    expect(bad).toEqual({
      ok: false,
      primaryKey: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      problems: [
        {
          column: 'ip',
          reason: '46 UTF-16 code units: longer than NVARCHAR(45) holds (it would be truncated)',
          raw: 'x'.repeat(46),
        },
        {
          column: 'country',
          reason: '3 UTF-16 code units: longer than NCHAR(2) holds (it would be truncated)',
          raw: 'FRA',
        },
      ],
    });
  });

  it('stages columns missing from an older file as NULL, and refuses columns the catalog does not know', () => {
    const header = clicks.columns.filter((c) => c.name !== 'device').map((c) => c.name);
    const encode = rowEncoder(clicks, header);
    const row = encode(
      [
        '7',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '2026-11-23 09:20:00+00',
        '1',
        '2',
        null,
        '2026-11-23 09:20:00+00',
        null,
        null,
        null,
        null,
        'f',
      ],
      'w',
    );
    expect(row.ok && row.values[11]).toBeNull();
    expect(() => rowEncoder(clicks, [...header, 'surprise'])).toThrow(/surprise/);
  });
});

describe('a real PostgreSQL COPY (FORMAT csv) file streamed into bulk rows', () => {
  const awkward: Stream = {
    name: 'awkward',
    columns: [
      { name: 'id', type: 'bigint', nullable: false },
      { name: 'updated_at', type: 'timestamptz', nullable: false },
      { name: 'amount', type: 'numeric', nullable: true, precision: 18, scale: 4 },
      { name: 'label', type: 'text', nullable: true, length: 10 },
      { name: 'day', type: 'date', nullable: true },
      { name: 'flag', type: 'boolean', nullable: true },
      { name: 'doc', type: 'jsonb', nullable: true },
    ],
    primaryKey: ['id'],
    changeColumn: 'updated_at',
    tenantColumn: 'id',
    parents: [],
    since: 1,
  };

  async function copyCsv(url: string, select: string): Promise<Buffer> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query("set timezone = 'UTC'; set datestyle = 'ISO, YMD'");
      const chunks: Buffer[] = [];
      const out = client.query(copyTo(`copy (${select}) to stdout (format csv)`));
      for await (const chunk of out) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    } finally {
      await client.end();
    }
  }

  function windowFile(body: Buffer, rows: number, columns: readonly string[]): WindowFile {
    return {
      windowId: '20261123T092000Z-1m-r1',
      key: 'test/awkward.csv.gz',
      stream: 'awkward',
      rows,
      bytes: body.length,
      sha256: '',
      columns,
      open: async () => Readable.from([body]),
    };
  }

  it('reads µs timestamps, year 0001, NULL vs "", non-BMP text, exact money and JSON as PostgreSQL printed them', async () => {
    const url = await createDatabase('wharf_mssql_rows');
    const csv = await copyCsv(
      url,
      `select * from (values
        (1::bigint, '2026-11-23 09:20:00.123456+00'::timestamptz, 99999999999999.9999::numeric(18,4), 'a "q", b'::text, '0001-01-01'::date, true, '{"k": [1, "😀"]}'::jsonb),
        (2, '0001-01-01 00:00:00+00', -0.0001, '', '9999-12-31', false, null),
        (3, '2026-11-23 09:20:00.000001+00', null, null, null, null, '"scalar"'),
        (4, '2026-11-23 09:20:00+00', 'NaN', '🚀🚀🚀🚀🚀🚀', '2026-11-23', null, '[]')
      ) as t(id, updated_at, amount, label, day, flag, doc) order by id`,
    );
    const columns = awkward.columns.map((c) => c.name);
    const body = gzipSync(Buffer.concat([Buffer.from(`${columns.join(',')}\n`), csv]));
    const rows = [];
    for await (const row of decodeFile(awkward, windowFile(body, 4, columns))) rows.push(row);
    expect(rows[0]).toEqual({
      ok: true,
      values: [
        '1',
        '2026-11-23T09:20:00.123456',
        '99999999999999.9999',
        'a "q", b',
        '0001-01-01',
        '1',
        '{"k": [1, "😀"]}',
        '20261123T092000Z-1m-r1',
      ],
    });
    expect(rows[1]).toEqual({
      ok: true,
      values: [
        '2',
        '0001-01-01T00:00:00.000000',
        '-0.0001',
        '',
        '9999-12-31',
        '0',
        null,
        '20261123T092000Z-1m-r1',
      ],
    });
    expect(rows[2]).toMatchObject({
      ok: false,
      primaryKey: '3',
      problems: [{ column: 'doc', raw: '"scalar"' }],
    });
    expect(rows[3]).toMatchObject({
      ok: false,
      primaryKey: '4',
      problems: [
        { column: 'amount', raw: 'NaN' },
        { column: 'label', raw: '🚀🚀🚀🚀🚀🚀', reason: expect.stringMatching(/^12 UTF-16 code units/) },
      ],
    });
  });

  it('refuses a file whose header or row count differs from its manifest', async () => {
    const columns = awkward.columns.map((c) => c.name);
    const body = gzipSync(`${columns.join(',')}\n1,2026-11-23 09:20:00+00,,,,,\n`);
    const read = async (file: WindowFile) => {
      for await (const _ of decodeFile(awkward, file)) {
        // drain
      }
    };
    await expect(read(windowFile(body, 2, columns))).rejects.toThrow(IntegrityError);
    await expect(read(windowFile(body, 1, [...columns].reverse()))).rejects.toThrow(/header/);
    await expect(read(windowFile(body, 1, columns))).resolves.toBeUndefined();
    await expect(read(windowFile(Buffer.from('not gzip'), 1, columns))).rejects.toThrow();
  });
});

describe('the freshness table for analysts (_wharf_sync_status)', () => {
  it('is created and upserted with exact T-SQL, values as parameters, never moving back in time', () => {
    expect(mssqlDialect.sql.createSyncStatus('tracking')).toBe(
      "IF OBJECT_ID(N'[tracking].[_wharf_sync_status]', N'U') IS NULL CREATE TABLE [tracking].[_wharf_sync_status] (" +
        '[stream] NVARCHAR(128) NOT NULL PRIMARY KEY, [window_id] NVARCHAR(200) NOT NULL, ' +
        '[window_closed_at] DATETIME2(6) NOT NULL, [loaded_at] DATETIME2(6) NOT NULL, [lag_seconds] DECIMAL(18,3) NOT NULL)',
    );
    const upsert = mssqlDialect.sql.upsertSyncStatus('a]b');
    expect(
      upsert.startsWith(
        'MERGE INTO [a]]b].[_wharf_sync_status] WITH (HOLDLOCK) AS s USING (SELECT @p1 AS [stream], @p2 AS [window_id], @p3 AS [window_closed_at]) AS u',
      ),
    ).toBe(true);
    expect(upsert).toContain('WHEN MATCHED AND u.[window_closed_at] >= s.[window_closed_at] THEN UPDATE SET');
  });
});

describe('missing parents are found before the MERGE (SQL Server has no deferrable foreign keys)', () => {
  it('asks with exact T-SQL, only when the parent table exists, comparing converted staged text', () => {
    const clicks = trackingCatalog.streams.find((s) => s.name === 'clicks')!;
    const links = trackingCatalog.streams.find((s) => s.name === 'links')!;
    const linkId = clicks.columns.find((c) => c.name === 'link_id')!;
    expect(missingParentSql('tracking', clicks, linkId, links.columns.find((c) => c.name === 'id')!)).toBe(
      "IF OBJECT_ID(N'[tracking].[links]', N'U') IS NOT NULL SELECT TOP (1) st.[link_id] AS [value] " +
        'FROM [tracking].[_wharf_stage_clicks] AS st WHERE st.[link_id] IS NOT NULL AND NOT EXISTS ' +
        '(SELECT 1 FROM [tracking].[links] AS p WHERE p.[id] = CONVERT(BIGINT, st.[link_id]))',
    );
  });
});
