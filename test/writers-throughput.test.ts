import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackingCatalog } from '../catalog/tracking.js';
import { getStream, type Stream } from '../catalog/types.js';
import { readCopyRecords } from '../exporter/copy-records.js';
import type { FileFormat } from '../exporter/writers/file-format.js';
import { formats } from '../exporter/writers/formats.js';
import { createParquetFormat } from '../exporter/writers/parquet-format.js';
import { createDatabase } from './helpers/databases.js';

const clicks: Stream = getStream(trackingCatalog, 'clicks');
let client: pg.Client;
let dir: string;

/** Fills `clicks` with `rows` synthetic, click-like rows (50 accounts). */
async function fillClicks(rows: number): Promise<void> {
  await client.query('truncate clicks');
  await client.query(
    `insert into clicks
     select (g % 50) + 1, gen_random_uuid(), timestamptz '2026-11-23 09:00:00+00' + g * interval '1.001 ms',
       g % 1000, g % 300, case when g % 3 = 0 then null else g % 20 end,
       timestamptz '2026-11-23 09:00:00+00' + g * interval '1 ms', '203.0.113.' || (g % 255),
       (array['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
              'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
              'curl/8.4.0'])[g % 3 + 1],
       case when g % 4 = 0 then null else 'https://news.example.com/articles/' || g || '?utm_source=aff&utm_medium=cpc' end,
       (array['DE','FR','US','GB'])[g % 4 + 1], (array['desktop','mobile','tablet'])[g % 3 + 1], g % 7 <> 0
     from generate_series(1, $1) g`,
    [rows],
  );
}

function copySql(format: FileFormat): string {
  const exprs = clicks.columns.map((c) => `${format.selectExpression(c, `"${c.name}"`)} as "${c.name}"`);
  return `copy (select ${exprs.join(', ')} from clicks order by account_id, event_id) to stdout (format csv)`;
}

async function copyToMemory(format: FileFormat): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of client.query(copyTo(copySql(format)))) chunks.push(chunk as Buffer);
  return chunks;
}

/** A sink that counts bytes and drops them. */
function counter(): { out: Writable; bytes: () => number } {
  let bytes = 0;
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      callback();
    },
  });
  return { out, bytes: () => bytes };
}

async function writeAll(
  format: FileFormat,
  source: AsyncIterable<Buffer>,
  out: Writable,
  onBatch?: () => void,
) {
  const sink = format.open(clicks, out);
  let rows = 0;
  for await (const batch of readCopyRecords(source)) {
    for (const record of batch) {
      rows++;
      const wait = sink.write(record);
      if (wait) await wait;
    }
    onBatch?.();
  }
  await sink.end();
  return rows;
}

beforeAll(async () => {
  const url = await createDatabase('wharf_writers_speed');
  client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(
    "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; set extra_float_digits = 3; set intervalstyle = 'iso_8601'",
  );
  await client.query(`create table clicks (
    account_id bigint not null, event_id uuid primary key, updated_at timestamptz not null, link_id bigint not null,
    affiliate_id bigint not null, traffic_source_id bigint, occurred_at timestamptz not null, ip text, user_agent text,
    referrer text, country char(2), device text, is_unique boolean not null)`);
  dir = mkdtempSync(join(tmpdir(), 'wharf-writers-speed-'));
});

afterAll(async () => {
  await client?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('writer throughput and memory (figures reported, not asserted on time)', () => {
  it('writes ~200k click rows in each format', async () => {
    const rows = 200_000;
    await fillClicks(rows);
    for (const format of Object.values(formats)) {
      const chunks = await copyToMemory(format);
      const input = chunks.reduce((n, c) => n + c.length, 0);
      const { out, bytes } = counter();
      const started = process.hrtime.bigint();
      const written = await writeAll(
        format,
        (async function* () {
          yield* chunks;
        })(),
        out,
      );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      expect(written).toBe(rows);
      expect(bytes()).toBeGreaterThan(0);
      console.log(
        `${format.extension.padEnd(9)} ${rows} rows, COPY text ${(input / 1e6).toFixed(1)} MB → ${(bytes() / 1e6).toFixed(1)} MB ` +
          `in ${seconds.toFixed(2)} s: ${Math.round(rows / seconds).toLocaleString('en')} rows/s, ${(input / 1e6 / seconds).toFixed(0)} MB/s of COPY text`,
      );
    }
  });

  it('streams 300k rows into one parquet file with bounded memory (row group at a time)', async () => {
    const rows = 300_000;
    await fillClicks(rows);
    const files: ArrayBuffer[] = [];
    for (const [label, format, groups] of [
      [
        '100k rows or 16 MiB',
        createParquetFormat({ rowGroupRows: 100_000, rowGroupBytes: 16 * 1024 * 1024 }),
        5,
      ],
      ['row groups of 25k rows', createParquetFormat({ rowGroupRows: 25_000 }), 12],
    ] as const) {
      const path = join(dir, `memory-${groups}.parquet`);
      const before = process.memoryUsage().rss;
      let peak = before;
      const written = await writeAll(
        format,
        client.query(copyTo(copySql(format))),
        createWriteStream(path),
        () => {
          const rss = process.memoryUsage().rss;
          if (rss > peak) peak = rss;
        },
      );
      expect(written).toBe(rows);
      const bytes = readFileSync(path);
      const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      const metadata = parquetMetadata(file);
      expect(Number(metadata.num_rows)).toBe(rows);
      expect(metadata.row_groups).toHaveLength(groups);
      const growth = (peak - before) / 1e6;
      console.log(
        `parquet, 300k rows, ${label}: file ${(statSync(path).size / 1e6).toFixed(1)} MB, RSS before ${(before / 1e6).toFixed(0)} MB, peak growth ${growth.toFixed(0)} MB`,
      );
      // buffering is per row group, not per file: far below what 300k rows of JS values would take
      expect(growth).toBeLessThan(600);
      files.push(file);
    }
    // every row, in order, across row groups: dictionary-encoded columns (link_id, device) and a PLAIN one
    const source = await client.query<{ row: string }>(
      "select event_id || ' ' || link_id || ' ' || coalesce(device, '-') as row from clicks order by account_id, event_id",
    );
    for (const file of files) {
      const back = await parquetReadObjects({ file, columns: ['event_id', 'link_id', 'device'] });
      expect(back.map((r) => `${r.event_id} ${r.link_id} ${r.device ?? '-'}`)).toEqual(
        source.rows.map((r) => r.row),
      );
    }
  });
});
