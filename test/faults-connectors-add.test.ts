import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, connect as netConnect, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../core/errors.js';
import { mssqlKind } from '../destinations/mssql/mssql-kind.js';
import { postgresKind } from '../destinations/postgres/postgres-kind.js';
import { wharf } from './helpers/cli.js';
import { createDatabase, query, serverUrl } from './helpers/databases.js';
import { S3RVER_CREDENTIALS, startS3, type TestS3 } from './helpers/s3.js';
import { tempDir } from './helpers/wharf.js';

/** `connectors add` with bad arguments: refused in one line (exit 2) before any server is touched. */
let sourceUrl: string;
let warehouseUrl: string;
let env: Record<string, string>;

const add = (args: readonly string[], url = `${warehouseUrl}?sslmode=disable`) =>
  wharf(['connectors', 'add', '--engine', 'postgres', '--url', url, ...args], env);

/** What the warehouse holds besides PostgreSQL's own schemas: schemas and their tables. */
async function warehouseObjects(url = warehouseUrl): Promise<string[]> {
  const rows = await query<{ o: string }>(
    url,
    `select n.nspname || coalesce('.' || c.relname, '') as o
       from pg_namespace n left join pg_class c on c.relnamespace = n.oid and c.relkind = 'r'
      where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'public') and n.nspname not like 'pg_temp%'
        and n.nspname not like 'pg_toast_temp%'
      order by 1`,
  );
  return rows.map((r) => r.o);
}

/** The connectors stored and not disabled. */
async function connectors(): Promise<{ account_id: string; schema: string }[]> {
  return query<{ account_id: string; schema: string }>(
    sourceUrl,
    "select account_id, schema from wharf.connectors where state <> 'disabled' order by id",
  ).catch(() => []);
}

beforeAll(async () => {
  sourceUrl = await createDatabase('wharf_add_src');
  warehouseUrl = await createDatabase('wharf_add_wh');
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-add-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_LOG_LEVEL: 'warn',
  };
  const seeded = await wharf(['seed', '--accounts', '2', '--rows', '200', '--seed', '7'], env);
  expect(seeded.code, seeded.stderr).toBe(0);
});

describe('`connectors add` refuses a bad argument in one line, exit 2, creating nothing', () => {
  const cases: [string, string[], RegExp][] = [
    ['an account that is not a number', ['--account', '1 or 1=1'], /invalid --account "1 or 1=1"/],
    ['a negative account', ['--account', '-5'], /invalid --account "-5"/],
    ['a fractional account', ['--account', '1.5'], /invalid --account "1\.5"/],
    [
      'an unknown stream',
      ['--account', '1', '--streams', 'clicks,nonexistent'],
      /unknown stream\(s\) in --streams: nonexistent/,
    ],
    [
      'an account the source does not have',
      ['--account', '999'],
      /account 999 does not exist in the source \(public\.accounts\)/,
    ],
    ['an empty schema name', ['--account', '1', '--schema', ''], /the warehouse schema name is empty/],
    [
      'a schema name of 64 bytes',
      ['--account', '1', '--schema', 's'.repeat(64)],
      /the warehouse schema name is 64 bytes \(UTF-8\) long; PostgreSQL keeps at most 63/,
    ],
    [
      'a schema name of 32 characters but 64 bytes',
      ['--account', '1', '--schema', 'é'.repeat(32)],
      /the warehouse schema name is 64 bytes \(UTF-8\) long/,
    ],
  ];

  it.each(cases)('%s', async (_name, args, message) => {
    const before = await warehouseObjects();
    const r = await add(args);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toContain('NaN');
    expect(await warehouseObjects()).toEqual(before);
    expect(await connectors()).toEqual([]);
  });
});

describe('a bucket connector gets the same argument checks (account, streams) before its bucket is touched', () => {
  let s3: TestS3;
  /** A TCP proxy in front of s3rver that counts the connections made to it: zero means the bucket was never touched. */
  let proxy: Server;
  let endpoint: string;
  let connections = 0;

  beforeAll(async () => {
    s3 = await startS3();
    const target = new URL(s3.endpoint);
    proxy = createServer((c) => {
      connections++;
      const up = netConnect(Number(target.port), target.hostname);
      c.on('error', () => {});
      up.on('error', () => {});
      c.pipe(up);
      up.pipe(c);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => proxy?.close(() => resolve()));
    await s3?.stop();
  });

  const addBucket = (args: readonly string[]) =>
    wharf(
      [
        'connectors',
        'add',
        '--engine',
        'bucket',
        '--url',
        `s3://${s3.bucket}/bad-args`,
        '--s3-endpoint',
        endpoint,
        '--s3-path-style',
        '--access-key-id',
        S3RVER_CREDENTIALS.accessKeyId,
        '--secret-access-key-stdin',
        ...args,
      ],
      env,
      `${S3RVER_CREDENTIALS.secretAccessKey.reveal()}\n`,
    );

  const cases: [string, string[], RegExp][] = [
    ['an account that is not a number', ['--account', '1 or 1=1'], /invalid --account "1 or 1=1"/],
    ['a negative account', ['--account', '-5'], /invalid --account "-5"/],
    [
      'an unknown stream',
      ['--account', '1', '--streams', 'clicks,nonexistent'],
      /unknown stream\(s\) in --streams: nonexistent/,
    ],
    ['an account the source does not have', ['--account', '999'], /account 999 does not exist in the source/],
  ];

  it.each(cases)('%s', async (_name, args, message) => {
    const r = await addBucket(args);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(connections).toBe(0);
    expect(await connectors()).toEqual([]);
  });

  it('the same arguments, right, reach the bucket through the proxy (so the count above means something)', async () => {
    const r = await addBucket(['--account', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(connections).toBeGreaterThan(0);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    const off = await wharf(['connectors', 'disable', id], env);
    expect(off.code, off.stderr).toBe(0);
  });
});

describe('what `connectors add` accepts', () => {
  it('a schema name of exactly 63 bytes, and an account not in the source with --allow-unknown-account', async () => {
    const long = 'l'.repeat(63);
    const ok = await add(['--account', '1', '--schema', long]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await warehouseObjects()).toContain(`${long}._wharf_loads`);
    const unknown = await add(['--account', '999', '--allow-unknown-account', '--schema', 'later']);
    expect(unknown.code, unknown.stderr).toBe(0);
    expect((await connectors()).map((c) => [c.account_id, c.schema])).toEqual([
      ['1', long],
      ['999', 'later'],
    ]);
  });
});

describe('a failed check leaves the warehouse as it was', () => {
  const role = `wharf_notemp_${randomBytes(4).toString('hex')}`;
  let dbUrl: string;

  beforeAll(async () => {
    dbUrl = await createDatabase('wharf_add_notemp');
    const db = new URL(dbUrl).pathname.slice(1);
    await query(serverUrl(), `create role ${role} login password 'pw'`);
    await query(serverUrl(), `grant create on database "${db}" to ${role}`);
    await query(serverUrl(), `revoke temporary on database "${db}" from public`);
  });

  afterAll(async () => {
    const db = new URL(dbUrl).pathname.slice(1);
    await query(serverUrl(), `grant temporary on database "${db}" to public`).catch(() => {});
  });

  it('the schema the check created is dropped when a later check fails (no TEMPORARY grant)', async () => {
    const url = new URL(dbUrl);
    url.username = role;
    url.password = 'pw';
    url.search = '?sslmode=disable';
    const before = await warehouseObjects(dbUrl);
    const r = await add(['--account', '2', '--schema', 'fresh'], url.toString());
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/warehouse check "temporary table" failed/);
    expect(await warehouseObjects(dbUrl)).toEqual(before);
    expect(await connectors()).not.toContainEqual(expect.objectContaining({ schema: 'fresh' }));
  });
});

describe('schema name limits per engine, checked when the request is parsed', () => {
  it('PostgreSQL counts UTF-8 bytes (63), SQL Server UTF-16 code units (128)', () => {
    const pgUrl = 'postgres://u@db.example.com:5432/wh';
    const msUrl = 'mssql://u@db.example.com:1433/wh';
    expect(() => postgresKind.parse({ url: pgUrl, schema: 'x'.repeat(63) })).not.toThrow();
    expect(() => postgresKind.parse({ url: pgUrl, schema: 'ü'.repeat(32) })).toThrow(UsageError);
    expect(() => mssqlKind.parse({ url: msUrl, schema: 'ü'.repeat(128) })).not.toThrow();
    expect(() => mssqlKind.parse({ url: msUrl, schema: 'x'.repeat(129) })).toThrow(
      /129 characters \(UTF-16 code units\) long; SQL Server keeps at most 128/,
    );
    // an emoji is two UTF-16 code units
    expect(() => mssqlKind.parse({ url: msUrl, schema: '🚀'.repeat(65) })).toThrow(UsageError);
    expect(() => mssqlKind.parse({ url: msUrl, schema: ' ' })).toThrow(/schema name is empty/);
  });
});
