import type { Readable } from 'node:stream';

/** What the store knows of a stored object. */
export interface StoredObject {
  readonly key: string;
  readonly bytes: number;
  /** Hex sha256 of the content, when the store recorded it at write time. */
  readonly sha256?: string;
}

export interface PutOptions {
  /** Hex sha256 of the file's content; recorded with the object and checked by readers. */
  readonly sha256: string;
  readonly contentType?: string;
}

/** Bytes `[offset, offset + length)` of an object. */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

export interface GetOptions {
  /**
   * Hex sha256 of the bytes read (the range's, when `range` is given): the stream fails at its end with an
   * `IntegrityError` if they differ. Without it, a whole-object read checks the sha256 recorded at write time
   * (when the store keeps one); a ranged read checks only the byte count.
   */
  readonly sha256?: string;
  /** Reads only these bytes (one ranged read); the stream fails if the object holds fewer. */
  readonly range?: ByteRange;
}

/**
 * Where window files live. Objects are written once and never overwritten or appended:
 * `putFile` refuses an existing key with an `AlreadyExistsError`.
 */
export interface StagingStore {
  /** A printable location (`file:///…`, `s3://bucket/prefix`), without credentials. */
  readonly url: string;
  /** Writes a local file under `key` once. Throws `AlreadyExistsError` if the key exists. */
  putFile(key: string, localPath: string, options: PutOptions): Promise<StoredObject>;
  /**
   * Streams an object, or a byte range of it.
   *
   * @example
   * await store.get('csv/w/clicks.csv.gz', { range: { offset: 1024, length: 512 }, sha256 });
   */
  get(key: string, options?: GetOptions): Promise<Readable>;
  /** Keys under a prefix, in lexical order. */
  list(prefix: string): AsyncIterable<string>;
  /** The object under `key`, or undefined when there is none. */
  stat(key: string): Promise<StoredObject | undefined>;
  /** Deletes an object (retention only; never used by export or load). */
  delete(key: string): Promise<void>;
}
