// One object per stream (manifest version 2): each account's rows are a part of it, a complete file on its own.
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { parquetReadObjects } from 'hyparquet';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { getStream } from '../catalog/types.js';
import { readCopyRecords } from '../exporter/copy-records.js';
import { copySql } from '../exporter/export.js';
import type { CopyRecord, FileFormat } from '../exporter/writers/file-format.js';
import { formats } from '../exporter/writers/formats.js';
import { GzipMembers } from '../exporter/writers/gzip-members.js';
import { initSource } from '../source/source-schema.js';
import { createDatabase } from './helpers/databases.js';
import { insertAccount, insertClicks } from './helpers/fixtures.js';

/** A writable that keeps what it is given. */
function memory(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  return { out, bytes: () => Buffer.concat(chunks) };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Text whose bytes do not repeat much (so that deflate has work to do). */
function noise(seed: number, bytes: number): string {
  let x = seed;
  let text = '';
  while (text.length < bytes) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    text += `${seed},${x.toString(36)},"quoted, text ""${x % 977}""",\n`;
  }
  return text;
}

/** Writes `members` with GzipMembers, each cut into pieces of `cut` characters (all at once when 0). */
async function writeMembers(members: readonly string[], cut: number) {
  const { out, bytes } = memory();
  const writer = new GzipMembers(out);
  for (const [i, text] of members.entries()) {
    await writer.begin();
    const step = cut || text.length || 1;
    for (let p = 0; p < text.length; p += step) {
      const piece = text.slice(p, p + step);
      const wait = i % 2 === 0 ? writer.writeText(piece) : writer.writeBytes(Buffer.from(piece));
      if (wait) await wait;
    }
  }
  const ranges = await writer.end();
  return { ranges, bytes: bytes() };
}

describe('gzip members', () => {
  const members = [
    noise(1, 40),
    noise(2, 3_500_000), // several pieces of 1 MiB, each ending with a full flush
    'header only\n',
    noise(3, 70_000),
    '',
    noise(4, 1_048_576), // exactly the size of a piece, give or take the last line
  ];

  it('decode one by one from their byte ranges, and all together as one gzip file', async () => {
    const { ranges, bytes } = await writeMembers(members, 0);
    expect(ranges).toHaveLength(members.length);
    let offset = 0;
    for (const [i, r] of ranges.entries()) {
      expect(r.offset, `member ${i}`).toBe(offset);
      const piece = bytes.subarray(r.offset, r.offset + r.bytes);
      expect(r.sha256).toBe(sha256(piece));
      expect(gunzipSync(piece).toString('utf8'), `member ${i}`).toBe(members[i]);
      offset += r.bytes;
    }
    expect(offset).toBe(bytes.length);
    expect(gunzipSync(bytes).toString('utf8')).toBe(members.join(''));
  });

  it('give the same bytes whatever the writes the rows came in', async () => {
    const whole = await writeMembers(members, 0);
    for (const cut of [1, 7, 65_536, 1_000_003]) {
      const cutUp = await writeMembers(members, cut);
      expect(cutUp.bytes.equals(whole.bytes), `pieces of ${cut}`).toBe(true);
      expect(cutUp.ranges).toEqual(whole.ranges);
    }
  });

  it('keep the memory of a writer small for thousands of small members', async () => {
    const many = Array.from({ length: 5000 }, (_, i) => noise(i, 200));
    const before = process.memoryUsage().rss;
    const { ranges, bytes } = await writeMembers(many, 0);
    expect(ranges).toHaveLength(5000);
    const i = 4321;
    expect(
      gunzipSync(bytes.subarray(ranges[i]!.offset, ranges[i]!.offset + ranges[i]!.bytes)).toString(),
    ).toBe(many[i]);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });
});

describe('object sinks of every format against real COPY output', () => {
  let url: string;
  let client: pg.Client;
  const clicks = getStream(trackingCatalog, 'clicks');

  beforeAll(async () => {
    url = await createDatabase('wharf_objects');
    client = new pg.Client({ connectionString: url });
    await client.connect();
    await initSource(client, {});
    await client.query("set timezone = 'UTC'; set datestyle = 'ISO, YMD'");
    for (const a of [1, 2, 3]) await insertAccount(client, a);
    await insertClicks(client, 1, 300, 'one, "quoted"');
    await insertClicks(client, 2, 1);
    await insertClicks(client, 3, 2500, '');
    await client.query(`update clicks set user_agent = null where account_id = 3 and random() < 0.3`);
  });

  afterAll(async () => {
    await client?.end();
  });

  /** The source's clicks as COPY records for `format`, grouped by account (sorted, as the exporter reads). */
  async function recordsByAccount(format: FileFormat): Promise<Map<string, CopyRecord[]>> {
    const sql = copySql(clicks, format, 'public', new Date(0), new Date('2200-01-01'));
    const byAccount = new Map<string, CopyRecord[]>();
    for await (const batch of readCopyRecords(client.query(copyTo(sql)))) {
      // records are views into the chunks COPY data arrived in, which are not reused: they can be kept
      for (const record of batch) {
        const list = byAccount.get(record.account) ?? [];
        list.push(record);
        byAccount.set(record.account, list);
      }
    }
    return byAccount;
  }

  it.each(Object.keys(formats))(
    '%s: each part holds the file the format writes for that account alone (parquet: byte for byte)',
    async (name) => {
      const format = formats[name as keyof typeof formats];
      const byAccount = await recordsByAccount(format);
      expect([...byAccount.keys()]).toEqual(['1', '2', '3']);

      const object = memory();
      const sink = format.openObject(clicks, object.out);
      for (const records of byAccount.values()) {
        await sink.beginPart();
        for (const r of records) {
          const wait = sink.writeRange ? sink.writeRange(r.raw, 0, r.raw.length) : sink.write(r);
          if (wait) await wait;
        }
      }
      const ranges = await sink.end();
      const bytes = object.bytes();
      expect(ranges.map((r) => r.offset)).toEqual([0, ranges[0]!.bytes, ranges[0]!.bytes + ranges[1]!.bytes]);
      expect(ranges.reduce((n, r) => n + r.bytes, 0)).toBe(bytes.length);

      for (const [i, records] of [...byAccount.values()].entries()) {
        const r = ranges[i]!;
        const part = bytes.subarray(r.offset, r.offset + r.bytes);
        expect(r.sha256).toBe(sha256(part));
        const alone = memory();
        const single = format.open(clicks, alone.out);
        for (const record of records) {
          const wait = single.write(record);
          if (wait) await wait;
        }
        await single.end();
        if (format.name === 'parquet') {
          // the same parquet file, footer and all: a ranged read is all a reader needs
          expect(part.equals(alone.bytes())).toBe(true);
          const rows = await parquetReadObjects({
            file: new Uint8Array(part).buffer,
          });
          expect(rows).toHaveLength(records.length);
          expect(new Set(rows.map((row) => String(row.account_id)))).toEqual(new Set([records[0]!.account]));
        } else {
          // gzip framing differs (one deflate stream for the whole object), the content is the same
          expect(gunzipSync(part).toString('utf8')).toBe(gunzipSync(alone.bytes()).toString('utf8'));
        }
      }
      if (format.name !== 'parquet') {
        const text = gunzipSync(bytes).toString('utf8');
        const header = text.slice(0, text.indexOf('\n') + 1);
        // csv: every part starts with the header line, so each reads as a csv.gz file of its own
        if (format.name === 'csv') expect(text.split(header)).toHaveLength(4);
      }
    },
  );
});
