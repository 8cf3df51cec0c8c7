import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import type { MasterKey } from './master-key.js';

/**
 * Envelope encryption, AES-256-GCM throughout (Node's `crypto` only):
 *
 * - every secret version gets its own random 32-byte data key, which encrypts the plaintext;
 * - the master key encrypts ("wraps") the data key;
 * - both carry additional authenticated data binding them to their connector and secret version
 *   (and, for the wrap, to the master key's id and version), so a ciphertext moved to another
 *   connector, version or key does not decrypt.
 *
 * Stored form of each part: `iv (12 bytes) | tag (16 bytes) | ciphertext`.
 */

const ALGORITHM = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const DATA_KEY_BYTES = 32;

/** What a sealed secret is bound to. */
export interface SecretAad {
  readonly connectorId: string | number | bigint;
  readonly version: number;
}

/** A sealed secret as stored in the control database's `secrets` table. */
export interface SealedSecret {
  /** The master key that wrapped the data key: its id and version (columns `key_id`, `key_version`). */
  readonly keyId: string;
  readonly keyVersion: number;
  /** iv | tag | ciphertext of the data key (column `wrapped_key`). */
  readonly wrappedKey: Buffer;
  /** iv | tag | ciphertext of the secret (column `ciphertext`). */
  readonly ciphertext: Buffer;
}

function dataAad(aad: SecretAad): Buffer {
  return Buffer.from(`wharf/secret/v1;connector=${aad.connectorId};version=${aad.version}`, 'utf8');
}

function wrapAad(aad: SecretAad, keyId: string, keyVersion: number): Buffer {
  return Buffer.from(
    `wharf/data-key/v1;connector=${aad.connectorId};version=${aad.version};key=${keyId};key_version=${keyVersion}`,
    'utf8',
  );
}

function encrypt(key: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** Decrypts `iv | tag | ciphertext`; undefined when the key, the AAD or the bytes are wrong. */
function decrypt(key: Buffer, aad: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < IV_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv(ALGORITHM, key, sealed.subarray(0, IV_BYTES), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** The one error for every decryption failure; it never says more than which connector. */
export function cannotDecrypt(connectorId: string | number | bigint, hint?: string): WharfError {
  return new WharfError(
    `cannot decrypt the secret of connector ${connectorId}: wrong master key or tampered data`,
    {
      kind: 'terminal',
      code: 'WHARF_SECRET_UNREADABLE',
      context: { connector: String(connectorId) },
      hint:
        hint ??
        'set WHARF_MASTER_KEY to the key the secret was sealed with (during a key rotation: WHARF_MASTER_KEY_PREVIOUS), or re-enter the password with `wharf connectors rotate`',
    },
  );
}

function unwrapDataKey(
  master: MasterKey,
  aad: SecretAad,
  sealed: Pick<SealedSecret, 'keyId' | 'keyVersion' | 'wrappedKey'>,
): Buffer {
  if (sealed.keyId !== master.id) {
    throw cannotDecrypt(
      aad.connectorId,
      `it was sealed with master key ${sealed.keyId}, but the key given is ${master.id}; set WHARF_MASTER_KEY (or WHARF_MASTER_KEY_PREVIOUS during a rotation) to that key`,
    );
  }
  const dataKey = decrypt(master.key, wrapAad(aad, sealed.keyId, sealed.keyVersion), sealed.wrappedKey);
  if (!dataKey || dataKey.length !== DATA_KEY_BYTES) throw cannotDecrypt(aad.connectorId);
  return dataKey;
}

/** Seals a secret under a fresh data key wrapped by `master`. */
export function sealSecret(master: MasterKey, aad: SecretAad, plaintext: Secret): SealedSecret {
  const dataKey = randomBytes(DATA_KEY_BYTES);
  const bytes = Buffer.from(plaintext.reveal(), 'utf8');
  try {
    return {
      keyId: master.id,
      keyVersion: master.version,
      wrappedKey: encrypt(master.key, wrapAad(aad, master.id, master.version), dataKey),
      ciphertext: encrypt(dataKey, dataAad(aad), bytes),
    };
  } finally {
    dataKey.fill(0);
    bytes.fill(0);
  }
}

/** Opens a sealed secret; a wrong key, another connector's ciphertext or a changed byte all fail the same way. */
export function openSecret(master: MasterKey, aad: SecretAad, sealed: SealedSecret): Secret {
  const dataKey = unwrapDataKey(master, aad, sealed);
  try {
    const plain = decrypt(dataKey, dataAad(aad), sealed.ciphertext);
    if (!plain) throw cannotDecrypt(aad.connectorId);
    const secret = new Secret(plain.toString('utf8'));
    plain.fill(0);
    return secret;
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Re-wraps a data key from `oldMaster` to `newMaster` without touching the secret's ciphertext
 * (the plaintext is never decrypted). Returns the new `wrapped_key`; store it with `newMaster`'s id and version.
 */
export function rewrap(
  oldMaster: MasterKey,
  newMaster: MasterKey,
  aad: SecretAad,
  wrapped: Pick<SealedSecret, 'keyId' | 'keyVersion' | 'wrappedKey'>,
): Buffer {
  const dataKey = unwrapDataKey(oldMaster, aad, wrapped);
  try {
    return encrypt(newMaster.key, wrapAad(aad, newMaster.id, newMaster.version), dataKey);
  } finally {
    dataKey.fill(0);
  }
}
