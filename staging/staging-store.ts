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

/**
 * Where window files live. Objects are written once and never overwritten or appended:
 * `putFile` refuses an existing key with an `AlreadyExistsError`.
 */
export interface StagingStore {
  /** A printable location (`file:///…`, `s3://bucket/prefix`), without credentials. */
  readonly url: string;
  /** Writes a local file under `key` once. Throws `AlreadyExistsError` if the key exists. */
  putFile(key: string, localPath: string, options: PutOptions): Promise<StoredObject>;
  /** Streams an object. With `expectedSha256`, the stream fails at its end if the bytes differ. */
  get(key: string, expectedSha256?: string): Promise<Readable>;
  /** Keys under a prefix, in lexical order. */
  list(prefix: string): AsyncIterable<string>;
  /** The object under `key`, or undefined when there is none. */
  stat(key: string): Promise<StoredObject | undefined>;
  /** Deletes an object (retention only; never used by export or load). */
  delete(key: string): Promise<void>;
}
