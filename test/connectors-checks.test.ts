import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectionSettings, parseConnectionUrl } from '../connectors/connection-url.js';
import { freePort } from '../core/embedded-postgres.js';
import { Secret } from '../core/secret.js';
import { literalPg, quotePg } from '../db/postgres/quote.js';
import { type CheckReport, checkFailure } from '../destinations/check-report.js';
import { checkPostgresWarehouse, pgConnectionConfig } from '../destinations/postgres/postgres-checks.js';
import { createDatabase, query, serverUrl } from './helpers/databases.js';

const suffix = randomBytes(4).toString('hex');
const CANARY = `Canary-${randomBytes(6).toString('hex')}-p@ss:w/o?r#d'"x y`;
const roles = {
  plain: `wharf_chk_plain_${suffix}`,
  full: `wharf_chk_full_${suffix}`,
  notemp: `wharf_chk_notemp_${suffix}`,
};
let dbUrl: string;
let noTempUrl: string;
let port: number;

function target(user: string, database: string, extra = '', portOverride?: number): ConnectionSettings {
  return parseConnectionUrl(
    `postgres://${user}@127.0.0.1:${portOverride ?? port}/${database}?sslmode=disable${extra}`,
  ).settings;
}

const dbName = (url: string) => new URL(url).pathname.slice(1);

/** The canary must show nowhere: report, messages, the error and all its renderings. */
function expectNoCanary(report: CheckReport, secret = CANARY): void {
  const error = checkFailure(report);
  const texts = [JSON.stringify(report), inspect(report, { depth: 10 })];
  if (error)
    texts.push(String(error), error.stack ?? '', JSON.stringify(error), inspect(error), error.oneLine());
  for (const text of texts) {
    for (const form of [secret, encodeURIComponent(secret), 'Canary-']) expect(text).not.toContain(form);
  }
}

function failed(report: CheckReport) {
  expect(report.ok).toBe(false);
  const last = report.checks.at(-1)!;
  expect(last.ok).toBe(false);
  expect(report.checks.slice(0, -1).every((c) => c.ok)).toBe(true);
  return last;
}

beforeAll(async () => {
  port = Number(new URL(serverUrl()).port);
  dbUrl = await createDatabase('wharf_checks');
  noTempUrl = await createDatabase('wharf_checks_notemp');
  for (const role of Object.values(roles)) {
    await query(serverUrl(), `create role ${quotePg(role)} login password ${literalPg(CANARY)}`);
  }
  await query(serverUrl(), `grant create on database ${quotePg(dbName(dbUrl))} to ${quotePg(roles.full)}`);
  await query(serverUrl(), `revoke temporary on database ${quotePg(dbName(noTempUrl))} from public`);
  await query(
    serverUrl(),
    `grant create on database ${quotePg(dbName(noTempUrl))} to ${quotePg(roles.notemp)}`,
  );
  await query(
    dbUrl,
    `create schema existing_ro; grant usage on schema existing_ro to ${quotePg(roles.plain)}`,
  );
});

afterAll(async () => {
  for (const url of [dbUrl, noTempUrl]) {
    if (url) await query(serverUrl(), `drop database if exists ${quotePg(dbName(url))} with (force)`);
  }
  for (const role of Object.values(roles)) await query(serverUrl(), `drop role if exists ${quotePg(role)}`);
});

describe('PostgreSQL warehouse checks', () => {
  it('passes every check for a role with the least privileges, and leaves no probe behind', async () => {
    const report = await checkPostgresWarehouse(
      target(roles.full, dbName(dbUrl)),
      new Secret(CANARY),
      'tracking',
    );
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ['reach', true],
      ['authenticate', true],
      ['database', true],
      ['schema', true],
      ['create table', true],
      ['temporary table', true],
      ['copy', true],
      ['drop probe', true],
    ]);
    expect(report.ok).toBe(true);
    expect(checkFailure(report)).toBeUndefined();
    for (const c of report.checks) expect(c.durationMs).toBeGreaterThanOrEqual(0);
    const tables = await query(
      dbUrl,
      `select table_name from information_schema.tables where table_schema = 'tracking'`,
    );
    expect(tables).toEqual([]);
    expect(await query(dbUrl, `select 1 from pg_namespace where nspname = 'tracking'`)).toHaveLength(1);
    // a second run uses the existing schema
    const again = await checkPostgresWarehouse(
      target(roles.full, dbName(dbUrl)),
      new Secret(CANARY),
      'tracking',
    );
    expect(again.ok).toBe(true);
    expect(again.checks.find((c) => c.name === 'schema')?.message).toBe('schema tracking exists');
    expectNoCanary(report);
  });

  it('a role without CREATE on the database is told the grant', async () => {
    const report = await checkPostgresWarehouse(
      target(roles.plain, dbName(dbUrl)),
      new Secret(CANARY),
      'tracking_new',
    );
    const last = failed(report);
    expect(last.name).toBe('schema');
    expect(last.code).toBe('42501');
    expect(last.message).toContain(`grant create on database "${dbName(dbUrl)}" to "${roles.plain}"`);
    const error = checkFailure(report)!;
    expect(error.kind).toBe('terminal');
    expect(error.hint).toContain(`grant create on database "${dbName(dbUrl)}" to "${roles.plain}"`);
    expectNoCanary(report);
  });

  it('an existing schema without CREATE is told the schema grant', async () => {
    const report = await checkPostgresWarehouse(
      target(roles.plain, dbName(dbUrl)),
      new Secret(CANARY),
      'existing_ro',
    );
    const last = failed(report);
    expect(last.name).toBe('schema');
    expect(last.message).toContain(`grant usage, create on schema "existing_ro" to "${roles.plain}"`);
    expectNoCanary(report);
  });

  it('a role without TEMPORARY is told the grant', async () => {
    const report = await checkPostgresWarehouse(
      target(roles.notemp, dbName(noTempUrl)),
      new Secret(CANARY),
      'tracking',
    );
    const last = failed(report);
    expect(last.name).toBe('temporary table');
    expect(last.message).toContain(`grant temporary on database "${dbName(noTempUrl)}" to "${roles.notemp}"`);
    const left = await query(
      noTempUrl,
      `select table_name from information_schema.tables where table_schema = 'tracking'`,
    );
    expect(left).toEqual([]);
    expectNoCanary(report);
  });

  it('a wrong password is an authentication failure', async () => {
    const wrong = `${CANARY}-wrong`;
    const report = await checkPostgresWarehouse(
      target(roles.full, dbName(dbUrl)),
      new Secret(wrong),
      'tracking',
    );
    const last = failed(report);
    expect(last.name).toBe('authenticate');
    expect(last.code).toBe('28P01');
    expect(last.message).toContain(`authentication failed for user ${roles.full}`);
    expectNoCanary(report, wrong);
  });

  it('a closed port cannot be reached', async () => {
    const closed = await freePort();
    const report = await checkPostgresWarehouse(
      target(roles.full, dbName(dbUrl), '', closed),
      new Secret(CANARY),
      'tracking',
    );
    const last = failed(report);
    expect(last.name).toBe('reach');
    expect(last.code).toBe('ECONNREFUSED');
    expect(last.message).toContain(`cannot reach 127.0.0.1:${closed}`);
    expect(checkFailure(report)?.kind).toBe('transient');
    expectNoCanary(report);
  });

  it('a missing database is named', async () => {
    const report = await checkPostgresWarehouse(
      target(roles.full, 'no_such_db'),
      new Secret(CANARY),
      'tracking',
    );
    const last = failed(report);
    expect(last.name).toBe('database');
    expect(last.code).toBe('3D000');
    expect(last.message).toContain('database no_such_db does not exist');
    expectNoCanary(report);
  });

  it('sslmode=require against a server without TLS fails the TLS check', async () => {
    const settings = { ...target(roles.full, dbName(dbUrl)), options: { sslmode: 'require' } };
    const report = await checkPostgresWarehouse(settings, new Secret(CANARY), 'tracking');
    const last = failed(report);
    expect(last.name).toBe('tls');
    expect(last.message).toContain('does not accept TLS');
    expectNoCanary(report);
  });

  it('sslmode=prefer falls back to a clear connection when the server has no TLS', async () => {
    const settings = { ...target(roles.full, dbName(dbUrl)), options: {} };
    const report = await checkPostgresWarehouse(settings, new Secret(CANARY), 'tracking');
    expect(report.ok).toBe(true);
    expect((await pgConnectionConfig(settings, new Secret(CANARY))).ssl).toBe(false);
  });
});
