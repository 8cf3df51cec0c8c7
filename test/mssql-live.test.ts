/**
 * The SQL Server engine against a live server. Runs only when WHARF_TEST_MSSQL_URL names one, e.g.
 * `WHARF_TEST_MSSQL_URL='mssql://sa:…@127.0.0.1:1433/master?trustServerCertificate=true'` with the
 * docker-compose.yml service (see docs/mssql.md). Files are built by hand as PostgreSQL would print them,
 * staged with a manifest and a control row like an export's, and loaded by the loader itself (`loadConnector`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import sql from 'mssql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import type { Stream } from '../catalog/types.js';
import { migrateControl } from '../control/control-schema.js';
import { WindowsTable } from '../control/windows.js';
import { csvField } from '../exporter/writers/csv-gz-format.js';
import { loadConnector } from '../loaders/load.js';
import { mssqlDriverConfig, parseMssqlUrl } from '../loaders/mssql/mssql-url.js';
import { MssqlWarehouse } from '../loaders/mssql/mssql-warehouse.js';
import type { WindowFile } from '../loaders/warehouse.js';
import { serializeManifest, type WindowManifest } from '../staging/manifest.js';
import { openStagingStore } from '../staging/open-store.js';
import type { StagingStore } from '../staging/staging-store.js';
import { createDatabase } from './helpers/databases.js';
import { tempDir } from './helpers/wharf.js';

const url = process.env.WHARF_TEST_MSSQL_URL;
const streams = ['accounts', 'programmes', 'affiliates', 'traffic_sources', 'links', 'clicks', 'conversions'];
const stream = (name: string): Stream => trackingCatalog.streams.find((s) => s.name === name)!;

type Field = string | null;

/** A file built by hand, with its bytes. */
type StagedFile = WindowFile & { readonly body: Buffer };

/** The minute each test window covers (ids are short, so that `_wharf_window` reads plainly). */
const MINUTES: Record<string, number> = { w0: 19, w1: 20, w2: 21, w9: 29 };
const windowStart = (windowId: string) => new Date(Date.UTC(2026, 10, 23, 9, MINUTES[windowId]!));
const windowEnd = (windowId: string) => new Date(windowStart(windowId).getTime() + 60_000);

/** A csv.gz file as the exporter writes it: header line, then PostgreSQL's CSV (NULL unquoted empty, '' as ""). */
function file(windowId: string, name: string, rows: Field[][]): StagedFile {
  const columns = stream(name).columns.map((c) => c.name);
  const text = [
    columns.map(csvField).join(','),
    ...rows.map((r) => r.map((f) => (f === null ? '' : csvField(f))).join(',')),
  ]
    .map((line) => `${line}\n`)
    .join('');
  const body = gzipSync(text);
  return {
    windowId,
    key: `live/${windowId}/${name}.csv.gz`,
    stream: name,
    rows: rows.length,
    bytes: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    columns,
    body,
    open: async () => Readable.from([body]),
  };
}

/** Stages a window's files and its manifest in the store and commits it in the control database, as an export does. */
async function stageWindow(
  store: StagingStore,
  control: pg.Pool,
  dir: string,
  windowId: string,
  files: Map<string, StagedFile[]>,
): Promise<void> {
  const manifest: WindowManifest = {
    manifest_version: 1, // one object per account and stream: a version 1 window still loads
    catalog: trackingCatalog.name,
    catalog_version: trackingCatalog.version,
    format: 'csv',
    window: {
      id: windowId,
      start: windowStart(windowId).toISOString(),
      end: windowEnd(windowId).toISOString(),
      revision: 0,
    },
    streams: {},
    files: [],
  };
  for (const [name, list] of files) {
    manifest.streams[name] = {
      rows: list.reduce((n, f) => n + f.rows, 0),
      checksum: '0:0000000000000000',
      columns: [...list[0]!.columns],
    };
    for (const f of list) {
      if (f.rows === 0) continue;
      const local = join(dir, `${windowId}-${name}.csv.gz`);
      writeFileSync(local, f.body);
      await store.putFile(f.key, local, { sha256: f.sha256 });
      manifest.files.push({
        key: f.key,
        stream: name,
        account: '1',
        rows: f.rows,
        bytes: f.bytes,
        sha256: f.sha256,
      });
    }
  }
  const text = serializeManifest(manifest);
  const manifestKey = `live/${windowId}/_manifest.json`;
  const local = join(dir, `${windowId}-manifest.json`);
  writeFileSync(local, text);
  await store.putFile(manifestKey, local, { sha256: createHash('sha256').update(text).digest('hex') });
  await new WindowsTable('wharf').record(control, 'csv', {
    id: windowId,
    start: windowStart(windowId),
    end: windowEnd(windowId),
    revision: 0,
    manifestKey,
    files: manifest.files.length,
    rows: manifest.files.reduce((n, f) => n + f.rows, 0),
    bytes: manifest.files.reduce((n, f) => n + f.bytes, 0),
  });
}

const T0 = '2026-11-23 09:20:00.123456+00';
const T1 = '2026-11-23 09:21:00.654321+00';
const click = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
const conversion = 'b1ffcd00-0d1c-4ef8-bb6d-6bb9bd380a22';

function windowFiles(windowId: string, updatedAt: string, referrer: string): Map<string, StagedFile[]> {
  return new Map([
    [
      'accounts',
      [
        file(windowId, 'accounts', [
          ['1', updatedAt, 'Zoë 🚀 "quoted", comma', 'EUR', 'Europe/Paris', T0, null],
        ]),
      ],
    ],
    [
      'programmes',
      [
        file(windowId, 'programmes', [
          ['1', '11', updatedAt, 'Main', 'percentage', '99999999999999.9999', 'EUR', 'active', T0, null],
        ]),
      ],
    ],
    [
      'affiliates',
      [
        file(windowId, 'affiliates', [
          ['1', '21', updatedAt, 'Ann', '', 'FR', 'active', '0001-01-01 00:00:00+00', null],
        ]),
      ],
    ],
    ['traffic_sources', [file(windowId, 'traffic_sources', [])]],
    [
      'links',
      [
        file(windowId, 'links', [
          [
            '1',
            '31',
            updatedAt,
            '11',
            '21',
            null,
            'https://example.com/?a=1,b="2"',
            'slug',
            '{"k": ["v", 1.50]}',
            T0,
            null,
          ],
          [
            '1',
            '32',
            updatedAt,
            '11',
            '21',
            null,
            'https://example.com/',
            'bad-json',
            '"a scalar"',
            T0,
            null,
          ],
        ]),
      ],
    ],
    [
      'clicks',
      [
        file(windowId, 'clicks', [
          ['1', click, updatedAt, '31', '21', null, T0, '127.0.0.1', 'ua', referrer, 'FR', 'desktop', 't'],
          [
            '1',
            'c2eede11-1e2d-4ef8-bb6d-6bb9bd380a33',
            updatedAt,
            '31',
            '21',
            null,
            T0,
            'x'.repeat(46),
            'ua',
            '',
            'FR',
            null,
            'f',
          ],
        ]),
      ],
    ],
    [
      'conversions',
      [
        file(windowId, 'conversions', [
          [
            '1',
            conversion,
            updatedAt,
            click,
            '31',
            '21',
            '11',
            T0,
            '',
            '-99999999999999.9999',
            '0.0001',
            'EUR',
            'approved',
          ],
        ]),
      ],
    ],
  ]);
}

describe.skipIf(!url)('live SQL Server suite (set WHARF_TEST_MSSQL_URL to run)', () => {
  const schema = `wharf live ]${randomBytes(4).toString('hex')}`;
  let warehouse: MssqlWarehouse;
  let pool: sql.ConnectionPool;
  let control: pg.Pool;
  let store: StagingStore;
  let dir: string;
  const staged = new Set<string>();

  /** Stages the window the first time, then loads it with the loader (a replay of it when it was loaded before). */
  async function load(windowId: string, updatedAt: string, referrer: string) {
    const replay = staged.has(windowId);
    if (!replay) {
      await stageWindow(store, control, dir, windowId, windowFiles(windowId, updatedAt, referrer));
      staged.add(windowId);
    }
    const summary = await loadConnector({
      control,
      controlSchema: 'wharf',
      store,
      catalog: trackingCatalog,
      target: { connectorId: 'live', account: '1', streams },
      warehouse,
      ...(replay ? { replay: { from: windowStart(windowId), to: windowEnd(windowId) } } : {}),
    });
    return { merged: summary.rowsMerged, quarantined: summary.quarantined };
  }

  const t = (name: string) => `[${schema.replace(/]/g, ']]')}].[${name}]`;

  beforeAll(async () => {
    dir = tempDir('wharf-mssql-live-');
    store = openStagingStore(`file://${join(dir, 'staging')}`);
    control = new pg.Pool({ connectionString: await createDatabase('wharf_mssql_live_control'), max: 2 });
    const client = await control.connect();
    await migrateControl(client, 'wharf');
    client.release();
    const connection = parseMssqlUrl(url!);
    warehouse = new MssqlWarehouse({ connection, schema, connectorId: 'live' });
    pool = await new sql.ConnectionPool(mssqlDriverConfig(connection)).connect();
    await warehouse.migrate(trackingCatalog, streams);
  });

  afterAll(async () => {
    await warehouse?.close();
    await pool?.close();
    await control?.end();
  });

  it('migrates idempotently: a second migrate changes nothing', async () => {
    await warehouse.migrate(trackingCatalog, streams);
    const { recordset } = await pool
      .request()
      .input('schema', sql.NVarChar(128), schema)
      .query('SELECT COUNT(*) AS n FROM sys.tables WHERE schema_id = SCHEMA_ID(@schema)');
    expect(recordset[0].n).toBe(streams.length + 3);
  });

  it('loads a window with awkward values exactly, and quarantines what SQL Server cannot hold', async () => {
    const result = await load('w1', T0, 'first');
    expect(result.quarantined).toBe(2);
    const { recordset: accounts } = await pool.request().query(`SELECT [name] FROM ${t('accounts')}`);
    expect(accounts).toEqual([{ name: 'Zoë 🚀 "quoted", comma' }]);
    const { recordset: money } = await pool
      .request()
      .query(
        `SELECT CONVERT(NVARCHAR(40), p.[commission_value]) AS p, CONVERT(NVARCHAR(40), c.[amount]) AS a, CONVERT(NVARCHAR(40), c.[commission]) AS c, c.[order_ref] AS o FROM ${t('programmes')} AS p CROSS JOIN ${t('conversions')} AS c`,
      );
    expect(money).toEqual([{ p: '99999999999999.9999', a: '-99999999999999.9999', c: '0.0001', o: '' }]);
    const { recordset: clicks } = await pool
      .request()
      .query(
        `SELECT CONVERT(NVARCHAR(40), [updated_at], 126) AS u, CONVERT(NVARCHAR(40), [occurred_at], 126) AS o, [is_unique] AS b, [traffic_source_id] AS ts, [_wharf_window] AS w FROM ${t('clicks')}`,
      );
    expect(clicks).toEqual([
      { u: '2026-11-23T09:20:00.123456', o: '2026-11-23T09:20:00.123456', b: true, ts: null, w: 'w1' },
    ]);
    const { recordset: affiliates } = await pool
      .request()
      .query(`SELECT CONVERT(NVARCHAR(40), [created_at], 126) AS c, [email] AS e FROM ${t('affiliates')}`);
    expect(affiliates).toEqual([{ c: '0001-01-01T00:00:00', e: '' }]);
    const { recordset: links } = await pool.request().query(`SELECT [id], [metadata] FROM ${t('links')}`);
    expect(links).toEqual([{ id: '31', metadata: '{"k": ["v", 1.50]}' }]);
    const { recordset: q } = await pool
      .request()
      .query(
        `SELECT [stream], [primary_key], [column_name], [raw_value] FROM ${t('_wharf_quarantine')} ORDER BY [stream]`,
      );
    expect(q).toEqual([
      {
        stream: 'clicks',
        primary_key: 'c2eede11-1e2d-4ef8-bb6d-6bb9bd380a33',
        column_name: 'ip',
        raw_value: 'x'.repeat(46),
      },
      { stream: 'links', primary_key: '32', column_name: 'metadata', raw_value: '"a scalar"' },
    ]);
  });

  it('replays the same window: same rows, same ledger size, same quarantine count, nothing merged', async () => {
    const before = await pool.request().query(`SELECT COUNT(*) AS n FROM ${t('_wharf_loads')}`);
    const result = await load('w1', T0, 'first');
    expect(result.merged).toBe(0);
    const after = await pool.request().query(`SELECT COUNT(*) AS n FROM ${t('_wharf_loads')}`);
    expect(after.recordset[0].n).toBe(before.recordset[0].n);
    expect(after.recordset[0].n).toBe(streams.length);
    const q = await pool.request().query(`SELECT COUNT(*) AS n FROM ${t('_wharf_quarantine')}`);
    expect(q.recordset[0].n).toBe(2);
    const ids = await warehouse.loaded(['w1', 'w0']);
    expect([...ids.get('clicks')!]).toEqual(['w1']);
  });

  it('applies a newer version and never lets an older one overwrite it (version guard)', async () => {
    await load('w2', T1, 'newer');
    await load('w0', '2026-11-23 09:19:00+00', 'older');
    const { recordset } = await pool
      .request()
      .query(`SELECT [referrer], [_wharf_window] AS w FROM ${t('clicks')}`);
    expect(recordset).toEqual([{ referrer: 'newer', w: 'w2' }]);
    const status = await warehouse.status();
    expect(status.windows).toBe(3);
  });

  it('leaves no staging table behind after a commit or a rollback', async () => {
    const tx = await warehouse.begin();
    await tx.stage(stream('accounts'), windowFiles('w9', T1, 'x').get('accounts')!);
    await tx.rollback();
    const { recordset } = await pool
      .request()
      .input('schema', sql.NVarChar(128), schema)
      .query(
        `SELECT COUNT(*) AS n FROM sys.tables WHERE schema_id = SCHEMA_ID(@schema) AND name LIKE N'[_]wharf[_]stage[_]%'`,
      );
    expect(recordset[0].n).toBe(0);
  });
});
