import { createHash, randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';
import { IntegrityError, WharfError } from '../core/errors.js';
import { GzipOutput } from '../staging/gzip-output.js';
import { openSpool, type Spool } from '../staging/spool-file.js';
import type { StagingStore, StoredObject } from '../staging/staging-store.js';
import { type BatchLimits, BatchPacker, type PackedBatch } from './call-batches.js';
import { CALL_TYPES } from './row-to-call.js';

export const CALL_MANIFEST_VERSION = 1;

/**
 * A file's uncompressed size past which the next batch starts a new file. A file is delivered as soon as it is
 * staged, from its batches kept in memory (as bytes, about three files' worth at most): small enough for flat
 * memory, big enough to keep objects and control rows few (about 70 files for a million identify calls).
 */
export const DEFAULT_CALL_FILE_BYTES = 4 * 1024 * 1024;

/** Rejected rows kept as examples in a manifest (all are counted per reason). */
export const REJECTED_SAMPLES = 100;

const sha = z.string().regex(/^[0-9a-f]{64}$/);

export const callFileSchema = z.object({
  key: z.string().min(1),
  calls: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  sha256: sha,
});
export type CallFile = z.infer<typeof callFileSchema>;

export const callManifestSchema = z.object({
  format_version: z.literal(CALL_MANIFEST_VERSION),
  sync_id: z.string(),
  run_id: z.string(),
  type: z.enum(CALL_TYPES),
  /** The SQL sent, with `$1` / `@p1`; the parameter's value is apart. */
  sql: z.string(),
  parameter: z.object({ type: z.string(), kind: z.string(), value: z.string() }).nullable(),
  /** The instant `{{last_sync_time}}` stood for (lookback taken off), µs since the epoch. */
  since_micros: z.number().int().nonnegative(),
  /** The run's start on the warehouse's clock: the next run's `last_sync_time`. */
  started_at: z.string(),
  started_at_micros: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  calls: z.number().int().nonnegative(),
  rejected: z.number().int().nonnegative(),
  /** Calls left out because a run of this sync already delivered them (lookback re-reads). */
  already_sent: z.number().int().nonnegative(),
  rejections: z.record(z.string(), z.number().int().positive()),
  rejected_samples: z.array(z.object({ row: z.number().int().positive(), reason: z.string() })),
  files: z.array(callFileSchema),
});
export type CallManifest = z.infer<typeof callManifestSchema>;

/** The prefix of one run's objects: `retl/<sync id>/<run id>/`. */
export function runPrefix(syncId: string, runId: string): string {
  for (const [what, id] of [
    ['sync', syncId],
    ['run', runId],
  ] as const) {
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(id))
      throw new WharfError(`invalid reverse-ETL ${what} id ${JSON.stringify(id)}`);
  }
  return `retl/${syncId}/${runId}/`;
}

/** Where a run's manifest lives: written after all its files, it is the only mark that they are complete. */
export function callManifestKey(syncId: string, runId: string): string {
  return `${runPrefix(syncId, runId)}manifest.json`;
}

/** A call file just staged, with its batches (indices go on across the run's files). */
export interface StagedCallFile {
  /** From 1, in the run's order. */
  readonly seq: number;
  readonly file: CallFile;
  readonly batches: readonly PackedBatch[];
}

export interface CallFileWriterConfig {
  readonly store: StagingStore;
  readonly syncId: string;
  readonly runId: string;
  /** A local directory for files before they are staged. */
  readonly spoolDir: string;
  /** Default `DEFAULT_CALL_FILE_BYTES`. */
  readonly maxFileBytes?: number;
  /** How calls are cut into requests (the sender's limits): a file holds whole batches. */
  readonly limits?: BatchLimits;
  /** Told of every file once it is staged, in order; the next file waits for it. */
  readonly onFile?: (staged: StagedCallFile) => Promise<void>;
}

/**
 * Writes a run's calls as immutable NDJSON gzip files, `retl/<sync>/<run>/calls-000001.ndjson.gz`, …:
 * one call per line. Calls are cut into batches as they come, each call encoded once, straight into its
 * batch (`BatchPacker`), and each batch written whole; a file ends after the batch that takes it past `maxFileBytes`, so that
 * reading a file back and cutting it again gives the same batches. Each file is spooled locally (hashed on
 * its way to disk), put in the staging store under its deterministic key, and handed to `onFile` with its
 * batches. Memory holds one gzip buffer, one batch of calls and the current file's batches.
 */
export class CallFileWriter {
  readonly #config: CallFileWriterConfig;
  readonly #files: CallFile[] = [];
  readonly #packer: BatchPacker;
  #spool: Spool | undefined;
  #gzip: GzipOutput | undefined;
  #batches: PackedBatch[] = [];
  #calls = 0;
  #bytes = 0;

  constructor(config: CallFileWriterConfig) {
    runPrefix(config.syncId, config.runId);
    this.#config = config;
    this.#packer = new BatchPacker(config.limits);
  }

  /** Adds one call's line; when it returns a promise, wait for it before the next. */
  add(line: string): undefined | Promise<void> {
    const closed = this.#packer.add(line);
    return closed === undefined ? undefined : this.#write(closed);
  }

  /**
   * Adds one call from its body (`CallMapper.mapBody`) and its mapper's seed: the same bytes as `add` of the
   * mapper's line, without the line. When it returns a promise, wait for it before the next.
   */
  addCall(seed: Buffer, body: string): undefined | Promise<void> {
    const closed = this.#packer.addCall(seed, body);
    return closed === undefined ? undefined : this.#write(closed);
  }

  /**
   * Adds a batch packed elsewhere (`MappingThread`), in order after the others, with the index that follows
   * theirs; not to be mixed with `add` or `addCall` in one run. When it returns a promise, wait for it.
   */
  addBatch(batch: PackedBatch): undefined | Promise<void> {
    return this.#write(batch);
  }

  /** Stages the last file; resolves with every file written, in order. */
  async finish(): Promise<readonly CallFile[]> {
    const last = this.#packer.flush();
    if (last !== undefined) await this.#write(last, true);
    else if (this.#gzip !== undefined) await this.#close();
    return this.#files;
  }

  /** Removes the local file of an unfinished write. */
  async discard(): Promise<void> {
    await this.#spool?.discard();
  }

  async #write(batch: PackedBatch, last = false): Promise<void> {
    if (this.#gzip === undefined) {
      this.#spool = openSpool(this.#config.spoolDir);
      this.#gzip = new GzipOutput(this.#spool.out);
      this.#calls = 0;
      this.#bytes = 0;
    }
    this.#batches.push(batch);
    this.#calls += batch.calls;
    this.#bytes += batch.payload.length + 1;
    const wait = this.#gzip.writeBytes(batch.payload);
    if (wait) await wait;
    const newline = this.#gzip.writeBytes(NEWLINE);
    if (newline) await newline;
    if (last || this.#bytes >= (this.#config.maxFileBytes ?? DEFAULT_CALL_FILE_BYTES)) await this.#close();
  }

  async #close(): Promise<void> {
    const spool = this.#spool!;
    await this.#gzip!.end();
    const file = await spool.done;
    const { syncId, runId, store } = this.#config;
    const seq = this.#files.length + 1;
    const key = `${runPrefix(syncId, runId)}calls-${String(seq).padStart(6, '0')}.ndjson.gz`;
    let stored: StoredObject;
    try {
      stored = await store.putFile(key, file.path, {
        sha256: file.sha256,
        contentType: 'application/x-ndjson',
      });
    } finally {
      await rm(file.path, { force: true });
    }
    const staged = { key, calls: this.#calls, bytes: stored.bytes, sha256: file.sha256 };
    this.#files.push(staged);
    const batches = this.#batches;
    this.#spool = undefined;
    this.#gzip = undefined;
    this.#batches = [];
    await this.#config.onFile?.({ seq, file: staged, batches });
  }
}

const NEWLINE = Buffer.from('\n');

/** Stages a run's manifest (after its files). Returns its key. */
export async function writeCallManifest(
  store: StagingStore,
  manifest: CallManifest,
  spoolDir: string,
): Promise<string> {
  const key = callManifestKey(manifest.sync_id, manifest.run_id);
  const text = `${JSON.stringify(callManifestSchema.parse(manifest), null, 2)}\n`;
  await mkdir(spoolDir, { recursive: true });
  const path = join(spoolDir, `${randomUUID()}.manifest`);
  await writeFile(path, text);
  try {
    const sha256 = createHash('sha256').update(text).digest('hex');
    await store.putFile(key, path, { sha256, contentType: 'application/json' });
  } finally {
    await rm(path, { force: true });
  }
  return key;
}

/** Reads and checks a run's manifest; undefined when the run has none (its files are incomplete). */
export async function readCallManifest(store: StagingStore, key: string): Promise<CallManifest | undefined> {
  if ((await store.stat(key)) === undefined) return undefined;
  let text = '';
  for await (const chunk of await store.get(key)) text += chunk.toString();
  const parsed = callManifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new IntegrityError(`reverse-ETL manifest ${key} is not valid: ${parsed.error.issues[0]?.message}`, {
      context: { key },
      hint: 'the staged run was changed; run the sync again instead of replaying it',
    });
  }
  return parsed.data;
}

/**
 * The calls of a run, in order, one JSON line each, read back from its files (each checked against its
 * sha256 and count). Streams: one chunk of one file in memory at a time.
 */
export async function* readCalls(
  store: StagingStore,
  manifest: Pick<CallManifest, 'files'>,
): AsyncGenerator<string> {
  for (const file of manifest.files) yield* readFileCalls(store, file);
}

/**
 * The batches of a run's files as they were cut when the files were written: per file (a file holds whole
 * batches), indices going on from one file to the next. Streams, like `readCalls`.
 */
export async function* stagedBatches(
  store: StagingStore,
  files: readonly CallFile[],
  limits?: BatchLimits,
): AsyncGenerator<PackedBatch> {
  let next = 0;
  for (const file of files) {
    const packer = new BatchPacker(limits, next);
    for await (const line of readFileCalls(store, file)) {
      const batch = packer.add(line);
      if (batch !== undefined) {
        next = batch.index + 1;
        yield batch;
      }
    }
    const last = packer.flush();
    if (last !== undefined) {
      next = last.index + 1;
      yield last;
    }
  }
}

/** One file's calls, checked against its sha256 and count. */
export async function* readFileCalls(store: StagingStore, file: CallFile): AsyncGenerator<string> {
  const gunzip = createGunzip();
  const source = await store.get(file.key, { sha256: file.sha256 });
  source.on('error', (error) => gunzip.destroy(error));
  source.pipe(gunzip);
  gunzip.setEncoding('utf8');
  let rest = '';
  let calls = 0;
  for await (const chunk of gunzip as AsyncIterable<string>) {
    const text = rest + chunk;
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      calls++;
      yield text.slice(start, end);
      start = end + 1;
    }
    rest = text.slice(start);
  }
  if (rest !== '' || calls !== file.calls) {
    throw new IntegrityError(
      `staging object ${file.key} holds ${calls} calls, its manifest says ${file.calls}`,
      {
        context: { key: file.key },
        hint: 'the staged file was changed; run the sync again instead of replaying it',
      },
    );
  }
}
