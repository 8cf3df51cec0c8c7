import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Stream } from '../catalog/types.js';
import { WharfError } from '../core/errors.js';
import { waitForDrain } from '../staging/drain.js';
import { openSpool, type Spool, type SpooledFile } from '../staging/spool-file.js';
import { AccountReader, CsvRecord, readCopyBatches } from './copy-records.js';
import { type ReadOrder, TABLE_ORDER_MAX_ACCOUNTS } from './read-order.js';
import { StreamChecksum } from './stream-checksum.js';
import type { FileFormat, ObjectSink, PartRange } from './writers/file-format.js';

/** One account's part of a stream object. */
export interface StreamObjectPart extends PartRange {
  readonly account: string;
  readonly rows: number;
}

/** A stream of one window, written as one local object: each account's rows as a part of it. */
export interface StreamObject {
  /** The object, spooled; undefined when the window holds no rows of the stream. */
  readonly spooled: SpooledFile | undefined;
  /** The parts in the object's byte order: by account. */
  readonly parts: readonly StreamObjectPart[];
  readonly rows: number;
  /** The stream's order-independent checksum of (primary key, updated_at). */
  readonly checksum: string;
}

/** What `writeStreamObject` needs. */
export interface StreamObjectConfig {
  readonly stream: Stream;
  readonly format: FileFormat;
  readonly order: ReadOrder;
  readonly spoolDir: string;
}

/** An account's open part, and its rows so far. */
interface OpenPart {
  readonly account: string;
  readonly sink: ObjectSink;
  rows: number;
}

/** Where records go, account by account. */
interface PartRouter {
  /** The part of `account`'s rows, started when new. */
  select(account: string): OpenPart | Promise<OpenPart>;
  /** Ends the parts and returns the object. */
  finish(): Promise<Pick<StreamObject, 'spooled' | 'parts'>>;
  /** Throws everything written away (after a failure). */
  discard(): Promise<void>;
}

/**
 * Reads one stream's COPY output (`copy`: PostgreSQL CSV records, tenant column first) into one object of
 * `config.format`, one part per account, spooled in `config.spoolDir`. In `account` order the records come
 * sorted by account and the parts are written one after the other into the object; in `table` order (at most
 * {@link TABLE_ORDER_MAX_ACCOUNTS} accounts) each account's part is written on its own and the parts are joined
 * at the end, in account order.
 */
export async function writeStreamObject(
  copy: AsyncIterable<Buffer>,
  config: StreamObjectConfig,
): Promise<StreamObject> {
  const sum = new StreamChecksum(config.stream);
  const router: PartRouter =
    config.order === 'account' ? new SequentialParts(config) : new SeparateParts(config);
  const accounts = new AccountReader();
  let part: OpenPart | undefined;
  try {
    for await (const batch of readCopyBatches(copy)) {
      const { bytes, ends, count } = batch;
      let s = batch.start;
      /** Start of the records of the current part not yet handed to a range-writing sink. */
      let run = s;
      for (let i = 0; i < count; i++) {
        const e = ends[i]!;
        const account = accounts.read(bytes, s, e);
        if (account !== part?.account) {
          if (part?.sink.writeRange && run < s) {
            const wait = part.sink.writeRange(bytes, run, s);
            if (wait) await wait;
          }
          const selected = router.select(account);
          part = selected instanceof Promise ? await selected : selected;
          run = s;
        }
        sum.addRange(bytes, s, e);
        part.rows++;
        if (!part.sink.writeRange) {
          const wait = part.sink.write(new CsvRecord(bytes.subarray(s, e), account));
          if (wait) await wait;
        }
        s = e;
      }
      if (part?.sink.writeRange && run < s) {
        const wait = part.sink.writeRange(bytes, run, s);
        if (wait) await wait;
      }
    }
    const object = await router.finish();
    return { ...object, rows: sum.count, checksum: sum.toString() };
  } catch (error) {
    await router.discard();
    throw error;
  }
}

/** Account order: one object sink, a new part at each account. */
class SequentialParts implements PartRouter {
  readonly #config: StreamObjectConfig;
  readonly #parts: OpenPart[] = [];
  #spool: Spool | undefined;
  #sink: ObjectSink | undefined;

  constructor(config: StreamObjectConfig) {
    this.#config = config;
  }

  select(account: string): OpenPart | Promise<OpenPart> {
    if (this.#sink === undefined) {
      this.#spool = openSpool(this.#config.spoolDir);
      this.#sink = this.#config.format.openObject(this.#config.stream, this.#spool.out);
    }
    const part: OpenPart = { account, sink: this.#sink, rows: 0 };
    this.#parts.push(part);
    const wait = this.#sink.beginPart();
    return wait ? wait.then(() => part) : part;
  }

  async finish(): Promise<Pick<StreamObject, 'spooled' | 'parts'>> {
    if (this.#sink === undefined || this.#spool === undefined) return { spooled: undefined, parts: [] };
    const ranges = await this.#sink.end();
    const spooled = await this.#spool.done;
    return { spooled, parts: withRanges(this.#parts, ranges) };
  }

  async discard(): Promise<void> {
    await this.#spool?.discard();
  }
}

/** Table order: one object sink (and spool) per account, joined in account order at the end. */
class SeparateParts implements PartRouter {
  readonly #config: StreamObjectConfig;
  readonly #open = new Map<string, OpenPart & { readonly spool: Spool }>();

  constructor(config: StreamObjectConfig) {
    this.#config = config;
  }

  select(account: string): OpenPart | Promise<OpenPart> {
    const known = this.#open.get(account);
    if (known) return known;
    if (this.#open.size >= TABLE_ORDER_MAX_ACCOUNTS) {
      // the window's accounts are counted before it is read, in the same snapshot
      throw new WharfError(`more than ${TABLE_ORDER_MAX_ACCOUNTS} accounts in a stream read in table order`);
    }
    const spool = openSpool(this.#config.spoolDir);
    const part = {
      account,
      sink: this.#config.format.openObject(this.#config.stream, spool.out),
      rows: 0,
      spool,
    };
    this.#open.set(account, part);
    const wait = part.sink.beginPart();
    return wait ? wait.then(() => part) : part;
  }

  async finish(): Promise<Pick<StreamObject, 'spooled' | 'parts'>> {
    const open = [...this.#open.values()].sort((a, b) => compareAccounts(a.account, b.account));
    const files: { part: StreamObjectPart; file: SpooledFile }[] = [];
    for (const p of open) {
      const [range] = await p.sink.end();
      const file = await p.spool.done;
      files.push({ part: { account: p.account, rows: p.rows, ...range!, offset: 0 }, file });
    }
    if (files.length === 0) return { spooled: undefined, parts: [] };
    if (files.length === 1) return { spooled: files[0]!.file, parts: [files[0]!.part] };
    // several accounts: their files back to back make the object
    const joined = openSpool(this.#config.spoolDir);
    const parts: StreamObjectPart[] = [];
    let offset = 0;
    try {
      for (const { part, file } of files) {
        for await (const chunk of createReadStream(file.path)) {
          if (!joined.out.write(chunk)) await waitForDrain(joined.out);
        }
        parts.push({ ...part, offset });
        offset += file.bytes;
        await rm(file.path, { force: true });
      }
      joined.out.end();
      return { spooled: await joined.done, parts };
    } catch (error) {
      await joined.discard();
      throw error;
    }
  }

  async discard(): Promise<void> {
    for (const p of this.#open.values()) await p.spool.discard();
  }
}

/** The parts with the byte ranges their sink reported. */
function withRanges(parts: readonly OpenPart[], ranges: readonly PartRange[]): StreamObjectPart[] {
  if (ranges.length !== parts.length) {
    throw new WharfError(`object writer reported ${ranges.length} parts for ${parts.length} accounts`);
  }
  return parts.map((p, i) => ({ account: p.account, rows: p.rows, ...ranges[i]! }));
}

/** Accounts as the source orders them (the tenant column is a bigint in the reference schema; else as text). */
function compareAccounts(a: string, b: string): number {
  if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}
