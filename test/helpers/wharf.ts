import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import pg from 'pg';
import { trackingCatalog } from '../../catalog/tracking.js';
import { getStream } from '../../catalog/types.js';
import { type ExportOptions, exportWindows } from '../../exporter/export.js';
import { formatByName } from '../../exporter/writers/formats.js';
import { readManifest, type WindowManifest } from '../../staging/manifest.js';
import { openStagingStore } from '../../staging/open-store.js';
import { type StagedPart, stagedParts } from '../../staging/staged-part.js';
import type { StagingStore } from '../../staging/staging-store.js';

/** A source database with the reference schema, a staging folder, and pools onto them. */
export interface Platform {
  readonly sourceUrl: string;
  readonly source: pg.Pool;
  readonly store: StagingStore;
  readonly stagingDir: string;
  exportOptions(overrides?: Partial<ExportOptions>): ExportOptions;
  close(): Promise<void>;
}

export function tempDir(prefix = 'wharf-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function openPlatform(sourceUrl: string, store?: StagingStore): Promise<Platform> {
  const source = new pg.Pool({ connectionString: sourceUrl, max: 6, application_name: 'wharf-test' });
  source.on('error', () => {});
  const stagingDir = tempDir('wharf-staging-');
  const st = store ?? openStagingStore(`file://${stagingDir}`);
  return {
    sourceUrl,
    source,
    store: st,
    stagingDir,
    exportOptions: (overrides = {}) => ({
      source,
      control: source,
      controlSchema: 'wharf',
      sourceSchema: 'public',
      store: st,
      catalog: trackingCatalog,
      format: formatByName('csv'),
      sizes: { fineMs: 1000, coarseMs: 86_400_000 },
      settleMs: 0,
      longTransactionMs: 15 * 60_000,
      spoolDir: join(stagingDir, '..', `${stagingDir.split('/').pop()}-spool`),
      ...overrides,
    }),
    close: () => source.end(),
  };
}

export async function runExport(p: Platform, overrides: Partial<ExportOptions> = {}) {
  return exportWindows(p.exportOptions(overrides));
}

/** Every committed manifest of a format, in window order. */
export async function manifests(p: Platform, format = 'csv'): Promise<WindowManifest[]> {
  const { rows } = await p.source.query<{ manifest_key: string }>(
    'select manifest_key from wharf.windows where format = $1 order by start_at, revision',
    [format],
  );
  const out: WindowManifest[] = [];
  for (const r of rows) out.push(await readManifest(p.store, r.manifest_key));
  return out;
}

export async function readAll(store: StagingStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.get(key)) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

/** The rows of a csv.gz file as objects (null for SQL NULL, '' for the empty string). */
export async function readCsvGz(store: StagingStore, key: string): Promise<Record<string, string | null>[]> {
  const text = gunzipSync(await readAll(store, key)).toString('utf8');
  return parse(text, {
    columns: true,
    cast: (value: string, context: { quoting: boolean }) => (value === '' && !context.quoting ? null : value),
  }) as Record<string, string | null>[];
}

/** The rows of a staged part (null for SQL NULL, '' for the empty string). */
export async function readPart(part: StagedPart): Promise<Record<string, string | null>[]> {
  const chunks: Buffer[] = [];
  for await (const c of await part.open()) chunks.push(Buffer.from(c as Buffer));
  return parse(gunzipSync(Buffer.concat(chunks)).toString('utf8'), {
    columns: true,
    cast: (value: string, context: { quoting: boolean }) => (value === '' && !context.quoting ? null : value),
  }) as Record<string, string | null>[];
}

/** All staged rows of one stream across all windows, read account by account through `stagedParts`. */
export async function stagedRows(p: Platform, stream: string): Promise<Record<string, string | null>[]> {
  const out: Record<string, string | null>[] = [];
  const of = getStream(trackingCatalog, stream);
  for (const m of await manifests(p)) {
    const accounts = new Set(m.files.filter((x) => x.stream === stream).map((x) => x.account));
    for (const account of accounts) {
      for (const part of stagedParts(p.store, m.window.id, m, of, account))
        out.push(...(await readPart(part)));
    }
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
