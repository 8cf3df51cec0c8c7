import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { ConfigError } from '../core/errors.js';

/** The environment variable holding the master key (base64 of 32 random bytes). */
export const MASTER_KEY_ENV = 'WHARF_MASTER_KEY';
/** During a rotation: the key being replaced, so secrets not yet re-wrapped stay readable. */
export const PREVIOUS_MASTER_KEY_ENV = 'WHARF_MASTER_KEY_PREVIOUS';

const CREATE_HINT =
  'create one with `openssl rand -base64 32`, keep it in your secret manager and set WHARF_MASTER_KEY to it';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/**
 * The 256-bit key that wraps every secret's data key. `id` is a fingerprint (not the key), `version`
 * the key's place in the control database's rotation history. The key itself never prints.
 */
export class MasterKey {
  /** First 12 hex digits of a domain-separated sha256 of the key. */
  readonly id: string;
  readonly version: number;
  readonly #key: Buffer;

  constructor(key: Buffer, version = 1) {
    if (key.length !== 32) throw new ConfigError('a master key must be 32 bytes', { hint: CREATE_HINT });
    this.#key = Buffer.from(key);
    this.version = version;
    this.id = createHash('sha256').update('wharf master key id\0').update(key).digest('hex').slice(0, 12);
  }

  /** The raw key, for the cipher only. */
  get key(): Buffer {
    return this.#key;
  }

  /** The same key at another version of the rotation history. */
  withVersion(version: number): MasterKey {
    return version === this.version ? this : new MasterKey(this.#key, version);
  }

  toString(): string {
    return `master key ${this.id} (version ${this.version})`;
  }

  toJSON(): { id: string; version: number } {
    return { id: this.id, version: this.version };
  }

  [inspect.custom](): string {
    return `MasterKey { id: '${this.id}', version: ${this.version} }`;
  }
}

/** The current key and, during a rotation, the previous one. */
export interface MasterKeyring {
  readonly current: MasterKey;
  readonly previous?: MasterKey;
}

/**
 * Parses a master key: base64 (or base64url) of exactly 32 bytes. `name` is the setting it came from,
 * for the message; the value itself is never echoed.
 */
export function parseMasterKey(text: string | undefined, name = MASTER_KEY_ENV, version = 1): MasterKey {
  const value = (text ?? '').trim();
  if (value === '') {
    throw new ConfigError(`${name} is not set: Wharf needs a master key to encrypt warehouse passwords`, {
      hint: CREATE_HINT,
    });
  }
  const standard = BASE64.test(value);
  if (!standard && !BASE64URL.test(value)) {
    throw new ConfigError(`${name} is not valid base64`, { hint: CREATE_HINT });
  }
  const key = Buffer.from(value, standard ? 'base64' : 'base64url');
  if (key.length !== 32) {
    throw new ConfigError(
      `${name} must be the base64 of exactly 32 bytes, but it decodes to ${key.length} bytes`,
      {
        hint: CREATE_HINT,
      },
    );
  }
  return new MasterKey(key, version);
}

/** Reads WHARF_MASTER_KEY (required) and WHARF_MASTER_KEY_PREVIOUS (optional) from the environment. */
export function masterKeysFromEnv(env: NodeJS.ProcessEnv = process.env): MasterKeyring {
  const current = parseMasterKey(env[MASTER_KEY_ENV], MASTER_KEY_ENV);
  const previousText = env[PREVIOUS_MASTER_KEY_ENV];
  if (previousText === undefined || previousText.trim() === '') return { current };
  const previous = parseMasterKey(previousText, PREVIOUS_MASTER_KEY_ENV);
  return previous.id === current.id ? { current } : { current, previous };
}
