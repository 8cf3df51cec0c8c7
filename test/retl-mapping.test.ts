import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../core/errors.js';
import { BatchPacker, callBatches, MAX_BATCH_BYTES, packBatch } from '../reverse-etl/call-batches.js';
import {
  boundValue,
  MSSQL_DESCRIBE_PARAMETERS_SQL,
  mssqlParameterKind,
  PG_PARAMETER_TYPES_SQL,
} from '../reverse-etl/parameter-type.js';
import { asNumeric, sameDecimal } from '../reverse-etl/pg-values.js';
import { parseQueryTemplate } from '../reverse-etl/query-template.js';
import {
  CallMapper,
  type CallType,
  isoTimestamp,
  MAX_CALL_BYTES,
  messageIdOf,
} from '../reverse-etl/row-to-call.js';
import type { PgWarehouseReader } from '../reverse-etl/warehouse-reader.js';
import { PG_READ_STATEMENTS } from '../reverse-etl/warehouse-reader.js';
import type { JsonValue } from '../reverse-etl/warehouse-rows.js';
import { createDatabase } from './helpers/databases.js';
import { warehouseReader } from './helpers/retl.js';

function mapper(type: CallType, names: string[]): CallMapper {
  return new CallMapper(
    '7',
    type,
    names.map((name) => ({ name, type: '25' })),
  );
}

function call(type: CallType, row: Record<string, JsonValue>): Record<string, unknown> | string {
  const mapped = mapper(type, Object.keys(row)).map(Object.values(row));
  if (!mapped.ok) return mapped.reason;
  const { messageId, ...rest } = JSON.parse(mapped.line) as Record<string, unknown>;
  expect(messageId).toBe(mapped.messageId);
  expect(messageIdOf(mapped.line)).toBe(mapped.messageId);
  return rest;
}

describe('rows to calls', () => {
  it('matches reserved columns without regard to case, per type', () => {
    expect(call('identify', { userid: 42, ANONYMOUSID: 'a-1', Event: 'x', name: 'Ann' })).toEqual({
      type: 'identify',
      userId: '42',
      anonymousId: 'a-1',
      traits: { Event: 'x', name: 'Ann' },
    });
    expect(call('page', { userId: 'u', NAME: 'Home', url: '/', category: 'docs' })).toEqual({
      type: 'page',
      userId: 'u',
      name: 'Home',
      properties: { category: 'docs', url: '/' },
    });
    expect(call('screen', { anonymousid: 'a', name: 'Settings' })).toEqual({
      type: 'screen',
      anonymousId: 'a',
      name: 'Settings',
      properties: {},
    });
    expect(call('group', { groupid: 9, objecttypeid: 3, userid: 1, object_type_id: 4 })).toEqual({
      type: 'group',
      userId: '1',
      groupId: '9',
      objectTypeId: '3',
      traits: { object_type_id: 4 },
    });
  });

  it('builds the context from context. columns and a JSON context column, and integrations', () => {
    expect(
      call('track', {
        userId: 'u',
        event: 'Signed Up',
        'context.ip': '203.0.113.9',
        'context.campaign.source': 'newsletter',
        context: { locale: 'fr-FR', campaign: { name: 'spring' } },
        integrations: '{"All": false, "Mixpanel": true}',
        plan: 'pro',
      }),
    ).toEqual({
      type: 'track',
      userId: 'u',
      event: 'Signed Up',
      context: { campaign: { name: 'spring', source: 'newsletter' }, ip: '203.0.113.9', locale: 'fr-FR' },
      integrations: { All: false, Mixpanel: true },
      properties: { plan: 'pro' },
    });
    expect(call('track', { userId: 'u', event: 'e', context: 'not json' })).toBe(
      'the context column is not a JSON object',
    );
    expect(call('track', { userId: 'u', event: 'e', integrations: { a: 1 } })).toBe(
      'the integrations column is not a JSON object of booleans',
    );
  });

  it('keeps JSON types and turns a timestamp column into ISO-8601', () => {
    expect(
      call('identify', {
        userId: '1',
        timestamp: 1_700_000_000.25,
        n: 1.5,
        big: '123456789012345678.91',
        flag: true,
        tags: ['a', 'b'],
        meta: { nested: [1, { x: null }] },
        none: null,
      }),
    ).toEqual({
      type: 'identify',
      userId: '1',
      timestamp: '2023-11-14T22:13:20.250Z',
      traits: {
        big: '123456789012345678.91',
        flag: true,
        meta: { nested: [1, { x: null }] },
        n: 1.5,
        none: null,
        tags: ['a', 'b'],
      },
    });
    expect(isoTimestamp('2026-01-02T03:04:05.123456Z')).toBe('2026-01-02T03:04:05.123456Z');
    expect(isoTimestamp('2026-01-02 03:04:05+02:00')).toBe('2026-01-02T03:04:05+02:00');
    expect(isoTimestamp('2026-01-02')).toBe('2026-01-02T00:00:00Z');
    expect(isoTimestamp('1700000000')).toBe('2023-11-14T22:13:20.000Z');
    expect(isoTimestamp('yesterday')).toBeUndefined();
    expect(call('identify', { userId: '1', timestamp: 'soon' })).toBe(
      'timestamp is neither an ISO-8601 date-time nor a Unix time in seconds',
    );
  });

  it('rejects rows that miss a required field, with the reason', () => {
    expect(call('identify', { userId: null, email: 'x' })).toBe('no userId and no anonymousId');
    expect(call('identify', { userId: '', anonymousId: null })).toBe('no userId and no anonymousId');
    expect(call('track', { userId: 'u', event: null })).toBe('no event');
    expect(call('track', { event: 'e' })).toBe('no userId and no anonymousId');
    expect(call('group', { userId: 'u' })).toBe('no groupId');
    expect(call('page', { userId: 'u' })).toBe('no name');
    expect(call('screen', { name: 's' })).toBe('no userId and no anonymousId');
    expect(call('alias', { userId: 'u' })).toBe('no previousId');
    expect(call('alias', { previousId: 'p', anonymousId: 'a' })).toBe('no userId');
    expect(call('group', { groupId: 'g', userId: 'u', objectTypeId: 'x' })).toBe(
      'objectTypeId is not an integer',
    );
    expect(call('identify', { userId: true })).toBe('userId is a boolean, not a string or a number');
    expect(call('identify', { userId: 'u', blob: 'x'.repeat(MAX_CALL_BYTES) })).toMatch(
      /^the call is 32\d{3} bytes, over the 32 KB limit of one call$/,
    );
  });

  it('refuses columns that land in the same place, and alias columns with nowhere to go', () => {
    expect(() => mapper('identify', ['userId', 'USERID'])).toThrow(
      `the sync query's columns "userId" and "USERID" both go to the userId field`,
    );
    expect(() => mapper('identify', ['userId', 'a', 'a'])).toThrow(/both go to traits\.a/);
    expect(() => mapper('alias', ['userId', 'previousId', 'email'])).toThrow(
      /column "email" has nowhere to go: alias calls carry only previousId, userId, anonymousId, timestamp and context/,
    );
    expect(() => mapper('identify', ['userId', 'context.'])).toThrow(/names no context field/);
  });

  it('gives the same row the same messageId whatever the column order, and another sync another id', () => {
    const a = new CallMapper('7', 'identify', [
      { name: 'userId', type: '' },
      { name: 'a', type: '' },
      { name: 'b', type: '' },
    ]);
    const b = new CallMapper('7', 'identify', [
      { name: 'b', type: '' },
      { name: 'userId', type: '' },
      { name: 'a', type: '' },
    ]);
    const c = new CallMapper('8', 'identify', [
      { name: 'userId', type: '' },
      { name: 'a', type: '' },
      { name: 'b', type: '' },
    ]);
    const first = a.map(['u', 1, 2]);
    const second = b.map([2, 'u', 1]);
    const other = c.map(['u', 1, 2]);
    expect(first.ok && second.ok && other.ok).toBe(true);
    if (!first.ok || !second.ok || !other.ok) return;
    expect(second.line).toBe(first.line);
    expect(first.messageId).toMatch(/^wharf-[0-9a-f]{64}$/);
    expect(first.messageId.length).toBeLessThanOrEqual(100);
    expect(other.messageId).not.toBe(first.messageId);
  });
});

describe('the call text', () => {
  it('is what JSON.stringify prints for the call, keys like an object orders them', async () => {
    const { createHash } = await import('node:crypto');
    const m = mapper('identify', ['userId', '10', '9', 'b', 'a', 'context.z', 'context.a']);
    const mapped = m.map(['u', 1, 2, 'é"\n', { k: [1] }, 'z', 'a']);
    expect(mapped.ok).toBe(true);
    if (!mapped.ok) return;
    const call = JSON.parse(mapped.line) as Record<string, unknown>;
    expect(mapped.line).toBe(JSON.stringify(call));
    expect(Object.keys(call.traits as object)).toEqual(['9', '10', 'a', 'b']);
    const { messageId, ...rest } = call;
    expect(messageId).toBe(
      `wharf-${createHash('sha256')
        .update(`7\n${JSON.stringify(rest)}`)
        .digest('hex')}`,
    );
  });
});

describe('exact numbers', () => {
  it('a numeric stays a number only when a double holds it exactly', () => {
    expect(asNumeric('19.90')).toBe(19.9);
    expect(asNumeric('0.1')).toBe(0.1);
    expect(asNumeric('-0.000')).toBe(-0);
    expect(asNumeric('9007199254740993')).toBe('9007199254740993');
    expect(asNumeric('123456789012345678.91')).toBe('123456789012345678.91');
    expect(asNumeric('0.30000000000000000001')).toBe('0.30000000000000000001');
    expect(asNumeric('1e21')).toBe(1e21);
    expect(asNumeric('NaN')).toBe('NaN');
    expect(sameDecimal('1.50', '1.5')).toBe(true);
    expect(sameDecimal('100', '1e2')).toBe(true);
  });
});

describe('values read from PostgreSQL', () => {
  let url: string;
  let reader: PgWarehouseReader;
  beforeAll(async () => {
    url = await createDatabase('wharf_retl_types');
    reader = warehouseReader(url);
  });
  afterAll(() => {});

  it('keep their JSON types', async () => {
    const sql = `select 1::int2 as a, 2147483647::int4 as b, 9007199254740991::int8 as c, 9007199254740993::int8 as d,
      1.5::float8 as e, 'Infinity'::float8 as f, 12.340::numeric as g, 12345678901234567890.5::numeric as h,
      true as i, '2026-01-02 03:04:05.123456+05'::timestamptz as j, '2026-01-02 03:04:05'::timestamp as k,
      '2026-01-02'::date as l, '{"b": 1, "a": [true, null]}'::jsonb as m, '{"z": 1, "y": 2}'::json as n,
      array[1, 2]::int8[] as o, array['x', null, 'y,z']::text[] as p, array[1.10, 2]::numeric[] as q,
      '00000000-0000-0000-0000-000000000001'::uuid as r, interval '90 minutes' as s, null::text as t`;
    const got = await reader.read(
      { query: parseQueryTemplate(sql, 'postgres'), sinceMicros: 0, timeoutMs: 10_000 },
      async (result) => {
        const out: (readonly JsonValue[])[] = [];
        for await (const batch of result.batches) out.push(...batch.rows);
        return out;
      },
    );
    expect(got).toEqual([
      [
        1,
        2147483647,
        9007199254740991,
        '9007199254740993',
        1.5,
        'Infinity',
        12.34,
        '12345678901234567890.5',
        true,
        '2026-01-01T22:04:05.123456Z',
        '2026-01-02T03:04:05Z',
        '2026-01-02',
        { a: [true, null], b: 1 },
        { z: 1, y: 2 },
        [1, 2],
        ['x', null, 'y,z'],
        [1.1, 2],
        '00000000-0000-0000-0000-000000000001',
        '01:30:00',
        null,
      ],
    ]);
  });

  it('an empty result still has its columns, and memory is one fetch at a time', async () => {
    const sql = 'select i as userid from generate_series(1, 25000) i where i > {{last_sync_time}}';
    const sizes = await reader.read(
      { query: parseQueryTemplate(sql, 'postgres'), sinceMicros: 0, timeoutMs: 10_000 },
      async (result) => {
        const out: number[] = [];
        for await (const batch of result.batches) out.push(batch.rows.length);
        return out;
      },
    );
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(25000);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(20_000);
    expect(sizes.length).toBeGreaterThan(1);
    const empty = await reader.read(
      {
        query: parseQueryTemplate('select 1 as userid where false', 'postgres'),
        sinceMicros: 0,
        timeoutMs: 10_000,
      },
      async (result) => {
        const out = [];
        for await (const batch of result.batches) out.push(batch);
        return out;
      },
    );
    expect(empty).toEqual([{ columns: [{ name: 'userid', type: '23' }], rows: [] }]);
  });

  it('a query past its statement timeout fails with a clear line', async () => {
    const error = await reader
      .read(
        {
          query: parseQueryTemplate('select pg_sleep(2) as userid', 'postgres'),
          sinceMicros: 0,
          timeoutMs: 200,
        },
        async (result) => {
          for await (const _ of result.batches) {
            // nothing
          }
        },
      )
      .catch((e) => e);
    expect(error.code).toBe('57014');
    expect(error.oneLine()).toBe(
      'the sync query ran past its timeout of 200 ms: canceling statement due to statement timeout; make the query faster (an index on its time column), or give the sync a longer timeout'.replace(
        ': canceling statement due to statement timeout',
        '',
      ),
    );
  });

  it('a text parameter gets Unix seconds as text; a cast chooses another type', async () => {
    const read = (sql: string) =>
      reader.read(
        { query: parseQueryTemplate(sql, 'postgres'), sinceMicros: 1_700_000_000_500_000, timeoutMs: 10_000 },
        async (result) => {
          const rows: (readonly JsonValue[])[] = [];
          for await (const batch of result.batches) rows.push(...batch.rows);
          return { parameter: result.parameter, rows };
        },
      );
    expect(await read('select {{last_sync_time}} as v')).toEqual({
      parameter: { name: 'text', kind: 'text', value: '1700000000', instantMicros: 1_700_000_000_500_000 },
      rows: [['1700000000']],
    });
    expect(await read('select to_timestamp({{ last_sync_time }}) as v')).toEqual({
      parameter: {
        name: 'double precision',
        kind: 'seconds',
        value: '1700000000',
        instantMicros: 1_700_000_000_500_000,
      },
      rows: [['2023-11-14T22:13:20Z']],
    });
    expect((await read('select {{last_sync_time}}::date as v')).rows).toEqual([['2023-11-14']]);
  });

  it('a parameter of a type that is no time is refused; one the server cannot type asks for a cast', async () => {
    for (const [sql, message] of [
      [
        "select 1 as userid where '[1,2]'::jsonb @> {{last_sync_time}}",
        '{{last_sync_time}} is compared with a value of type jsonb in the sync query',
      ],
      [
        'select 1 as userid where {{last_sync_time}} is null',
        'the server cannot tell the type of {{last_sync_time}} in the sync query',
      ],
    ] as const) {
      const error = await reader
        .read(
          { query: parseQueryTemplate(sql, 'postgres'), sinceMicros: 0, timeoutMs: 10_000 },
          async () => {},
        )
        .catch((e) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect(error.message).toContain(message);
    }
  });
});

describe('the parameter and the statements around the query', () => {
  it('binds the value in the form of the inferred type', () => {
    const at = 1_700_000_000_123_456;
    expect(boundValue('seconds', at)).toBe('1700000000');
    expect(boundValue('text', at)).toBe('1700000000');
    expect(boundValue('timestamptz', at)).toBe('2023-11-14T22:13:20.123456Z');
    expect(boundValue('timestamp', at)).toBe('2023-11-14 22:13:20.123456');
    expect(boundValue('date', at)).toBe('2023-11-14');
    expect(boundValue('timestamptz', 0)).toBe('1970-01-01T00:00:00.000000Z');
  });

  it('maps SQL Server suggested types', () => {
    expect(['int', 'bigint', 'decimal(18,0)', 'float', 'money'].map(mssqlParameterKind)).toEqual(
      Array(5).fill('seconds'),
    );
    expect(['datetime2(7)', 'datetime', 'smalldatetime'].map(mssqlParameterKind)).toEqual(
      Array(3).fill('timestamp'),
    );
    expect(mssqlParameterKind('datetimeoffset(7)')).toBe('timestamptz');
    expect(mssqlParameterKind('date')).toBe('date');
    expect(mssqlParameterKind('nvarchar(4000)')).toBe('text');
    expect(() => mssqlParameterKind('varbinary(max)')).toThrow(/type varbinary\(max\)/);
  });

  it('are these exact strings', () => {
    expect(MSSQL_DESCRIBE_PARAMETERS_SQL).toBe('EXEC sys.sp_describe_undeclared_parameters @tsql = @tsql;');
    expect(PG_PARAMETER_TYPES_SQL).toBe(
      `select format_type(p.oid, null) as name, t.typcategory as category,
  format_type(coalesce(nullif(t.typbasetype, 0), p.oid), null) as base
from pg_prepared_statements s
cross join lateral unnest(s.parameter_types::oid[]) with ordinality as p(oid, n)
join pg_type t on t.oid = p.oid
where s.name = $1
order by p.n`,
    );
    expect(PG_READ_STATEMENTS).toEqual({
      begin: 'begin transaction isolation level repeatable read read only',
      settings: `select set_config('statement_timeout', $1, true),
  set_config('TimeZone', 'UTC', true),
  set_config('DateStyle', 'ISO, YMD', true)`,
      clock: 'select (extract(epoch from now()) * 1000000)::bigint::text as micros',
      end: 'rollback',
    });
  });
});

describe('batches', () => {
  async function* lines(n: number, size: number): AsyncGenerator<string> {
    for (let i = 0; i < n; i++) yield `{"messageId":"wharf-${i}","pad":"${'x'.repeat(size)}"}`;
  }

  it('stay at or under 500 KB per request, in order, the same every time', async () => {
    const cut = async () => {
      const out = [];
      for await (const b of callBatches(lines(200, 30_000))) out.push(b);
      return out;
    };
    const batches = await cut();
    expect(batches.every((b) => b.bytes <= MAX_BATCH_BYTES)).toBe(true);
    expect(batches.map((b) => b.index)).toEqual(batches.map((_, i) => i));
    expect(batches.flatMap((b) => b.lines.map(messageIdOf))).toEqual(
      Array.from({ length: 200 }, (_, i) => `wharf-${i}`),
    );
    expect(batches.map((b) => b.lines.length)).toEqual((await cut()).map((b) => b.lines.length));
    expect(batches[0]!.lines.length).toBe(16);
    // the size counted is the size sent
    const { batchBody } = await import('../reverse-etl/call-batches.js');
    expect(Buffer.byteLength(batchBody(batches[0]!.lines, new Date()))).toBe(batches[0]!.bytes);
  });

  it('honour a count limit too', async () => {
    const sizes = [];
    for await (const b of callBatches(lines(25, 10), { maxCalls: 10 })) sizes.push(b.lines.length);
    expect(sizes).toEqual([10, 10, 5]);
  });

  it('are packed, call by call, into the same bytes as the lines cut and joined', async () => {
    const m = new CallMapper('7', 'identify', [
      { name: 'userId', type: '20' },
      { name: 'note', type: '25' },
      { name: 'score', type: '1700' },
    ]);
    const rows: JsonValue[][] = Array.from({ length: 3000 }, (_, i) => [
      i,
      i % 7 === 0 ? `caf\u00e9 "${i}" \\ \n ${'\u{1F600}'.repeat(i % 5)} ${'y'.repeat(i % 900)}` : `n${i}`,
      i % 3 === 0 ? '12345678901234567890.01' : i / 8,
    ]);
    const lines = rows.map((r) => {
      const mapped = m.map(r);
      if (!mapped.ok) throw new Error(mapped.reason);
      return mapped.line;
    });
    for (const limits of [{}, { maxBytes: 20_000 }, { maxBytes: 3_000, maxCalls: 7 }]) {
      const expected = [];
      async function* each() {
        yield* lines;
      }
      for await (const b of callBatches(each(), limits, 4)) expected.push(packBatch(b));
      const byLine = new BatchPacker(limits, 4);
      const byBody = new BatchPacker(limits, 4);
      const fromLines = [];
      const fromBodies = [];
      for (let i = 0; i < rows.length; i++) {
        const a = byLine.add(lines[i]!);
        if (a) fromLines.push(a);
        const mapped = m.mapBody(rows[i]!);
        if (!mapped.ok) throw new Error(mapped.reason);
        const b = byBody.addCall(m.seed, mapped.body);
        if (b) fromBodies.push(b);
      }
      fromLines.push(byLine.flush()!);
      fromBodies.push(byBody.flush()!);
      const plain = (list: { index: number; calls: number; bytes: number; payload: Buffer }[]) =>
        list.map((b) => ({
          index: b.index,
          calls: b.calls,
          bytes: b.bytes,
          payload: b.payload.toString('hex'),
        }));
      expect(plain(fromLines)).toEqual(plain(expected));
      expect(plain(fromBodies)).toEqual(plain(expected));
    }
  });

  it('keep the messageId: wharf- and the sha256 of the sync id, a newline and the call without it', () => {
    const mapped = mapper('identify', ['userId', 'email']).map([42, 'a@example.com']);
    const body = '{"type":"identify","userId":"42","traits":{"email":"a@example.com"}}';
    expect(mapped.ok && mapped.messageId).toBe(
      `wharf-${createHash('sha256').update(`7\n${body}`).digest('hex')}`,
    );
  });
});

describe('the SQL Server reader', () => {
  it('sends these statements and binds @p1 in the type SQL Server suggests', async () => {
    const m = await import('../reverse-etl/mssql-warehouse-reader.js');
    expect(m.MSSQL_READ_STATEMENTS).toEqual({
      settings: 'SET XACT_ABORT ON; SET NOCOUNT ON;',
      clock:
        "SELECT CAST(DATEDIFF_BIG(MICROSECOND, CAST('19700101' AS datetime2(7)), SYSUTCDATETIME()) AS varchar(20)) AS micros;",
      describe: 'EXEC sys.sp_describe_undeclared_parameters @tsql = @tsql;',
    });
    const at = 1_700_000_000_123_456;
    expect(m.mssqlParameterValue('seconds', at)).toBe(1_700_000_000);
    expect(m.mssqlParameterValue('timestamp', at)).toEqual(new Date('2023-11-14T22:13:20.123Z'));
    expect(m.mssqlParameterValue('text', at)).toBe('1700000000');
    expect(m.mssqlJsonValue(new Date('2023-11-14T22:13:20.123Z'))).toBe('2023-11-14T22:13:20.123Z');
    expect(m.mssqlJsonValue('9007199254740993')).toBe('9007199254740993');
    expect(m.mssqlJsonValue('1234567890123456')).toBe(1234567890123456);
    expect(m.mssqlJsonValue(Buffer.from([1, 255]))).toBe('0x01ff');
    expect(
      parseQueryTemplate(
        'SELECT id AS userId FROM dbo.users WHERE last_updated >= {{last_sync_time}}',
        'mssql',
      ).sql,
    ).toBe('SELECT id AS userId FROM dbo.users WHERE last_updated >= @p1');
  });
});
