import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { openSecret, rewrap, sealSecret } from '../connectors/envelope.js';
import { MasterKey, masterKeysFromEnv, parseMasterKey } from '../connectors/master-key.js';
import { WharfError } from '../core/errors.js';
import { Secret } from '../core/secret.js';

const newKey = () => new MasterKey(randomBytes(32));
const CANARY = 'canary-Zq8v-p@ss:w/o?r#d';

function failure(work: () => unknown): WharfError {
  try {
    work();
  } catch (error) {
    expect(error).toBeInstanceOf(WharfError);
    return error as WharfError;
  }
  throw new Error('expected a failure');
}

describe('master key', () => {
  it('parses the base64 of 32 bytes and gives it a stable id that is not the key', () => {
    const raw = randomBytes(32);
    const a = parseMasterKey(raw.toString('base64'));
    const b = parseMasterKey(raw.toString('base64url'));
    expect(a.id).toMatch(/^[0-9a-f]{12}$/);
    expect(b.id).toBe(a.id);
    expect(a.key.equals(raw)).toBe(true);
    for (const shown of [String(a), JSON.stringify(a), inspect(a), inspect({ a })]) {
      expect(shown).not.toContain(raw.toString('base64'));
      expect(shown).not.toContain(raw.toString('hex'));
    }
  });

  it('explains how to create a key when it is missing or malformed', () => {
    for (const value of [undefined, '', 'not base64 !!', randomBytes(16).toString('base64')]) {
      const error = failure(() => masterKeysFromEnv({ WHARF_MASTER_KEY: value }));
      expect(error.kind).toBe('terminal');
      expect(error.oneLine()).toContain('WHARF_MASTER_KEY');
      expect(error.oneLine()).toContain('openssl rand -base64 32');
    }
    const short = failure(() => parseMasterKey(randomBytes(31).toString('base64')));
    expect(short.message).toContain('decodes to 31 bytes');
  });

  it('reads the previous key during a rotation', () => {
    const current = randomBytes(32).toString('base64');
    const previous = randomBytes(32).toString('base64');
    const ring = masterKeysFromEnv({ WHARF_MASTER_KEY: current, WHARF_MASTER_KEY_PREVIOUS: previous });
    expect(ring.current.id).toBe(parseMasterKey(current).id);
    expect(ring.previous?.id).toBe(parseMasterKey(previous).id);
  });
});

describe('envelope', () => {
  it('round-trips a secret, with a fresh data key and IV each time', () => {
    const master = newKey();
    const aad = { connectorId: '7', version: 1 };
    const a = sealSecret(master, aad, new Secret(CANARY));
    const b = sealSecret(master, aad, new Secret(CANARY));
    expect(openSecret(master, aad, a).reveal()).toBe(CANARY);
    expect(a.keyId).toBe(master.id);
    expect(a.ciphertext.length).toBe(12 + 16 + Buffer.byteLength(CANARY));
    expect(a.wrappedKey.length).toBe(12 + 16 + 32);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
    expect(a.wrappedKey.equals(b.wrappedKey)).toBe(false);
    expect(a.ciphertext.includes(Buffer.from(CANARY))).toBe(false);
  });

  it('refuses a ciphertext moved to another connector or version', () => {
    const master = newKey();
    const one = sealSecret(master, { connectorId: 1, version: 1 }, new Secret('one'));
    const two = sealSecret(master, { connectorId: 2, version: 1 }, new Secret('two'));
    const swapped = failure(() =>
      openSecret(master, { connectorId: 1, version: 1 }, { ...one, ciphertext: two.ciphertext }),
    );
    expect(swapped.message).toBe(
      'cannot decrypt the secret of connector 1: wrong master key or tampered data',
    );
    expect(swapped.kind).toBe('terminal');
    failure(() => openSecret(master, { connectorId: 1, version: 1 }, two));
    failure(() => openSecret(master, { connectorId: 1, version: 2 }, one));
  });

  it('refuses any changed byte', () => {
    const master = newKey();
    const aad = { connectorId: '3', version: 1 };
    const sealed = sealSecret(master, aad, new Secret(CANARY));
    for (const part of ['ciphertext', 'wrappedKey'] as const) {
      for (let i = 0; i < sealed[part].length; i += 5) {
        const bytes = Buffer.from(sealed[part]);
        bytes[i] = bytes[i]! ^ 0x01;
        const error = failure(() => openSecret(master, aad, { ...sealed, [part]: bytes }));
        expect(error.message).toContain('wrong master key or tampered data');
      }
    }
    failure(() => openSecret(master, aad, { ...sealed, keyVersion: 2 }));
    failure(() => openSecret(master, aad, { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 10) }));
  });

  it('refuses the wrong master key, naming the key the secret needs', () => {
    const right = newKey();
    const wrong = newKey();
    const aad = { connectorId: '9', version: 1 };
    const sealed = sealSecret(right, aad, new Secret(CANARY));
    const error = failure(() => openSecret(wrong, aad, sealed));
    expect(error.message).toBe('cannot decrypt the secret of connector 9: wrong master key or tampered data');
    expect(error.hint).toContain(right.id);
    // same id claimed, different bytes: still refused
    const forged = failure(() => openSecret(wrong, aad, { ...sealed, keyId: wrong.id }));
    expect(forged.message).toContain('wrong master key or tampered data');
    for (const shown of [String(error), error.stack ?? '', JSON.stringify(error), inspect(error)]) {
      expect(shown).not.toContain(CANARY);
    }
  });

  it('re-wraps a data key without changing the ciphertext', () => {
    const oldKey = newKey();
    const newer = newKey().withVersion(2);
    const aad = { connectorId: '11', version: 4 };
    const sealed = sealSecret(oldKey, aad, new Secret(CANARY));
    const wrappedKey = rewrap(oldKey, newer, aad, sealed);
    const moved = { ...sealed, keyId: newer.id, keyVersion: newer.version, wrappedKey };
    expect(openSecret(newer, aad, moved).reveal()).toBe(CANARY);
    failure(() => openSecret(oldKey, aad, moved));
    failure(() => openSecret(newer, aad, { ...moved, keyVersion: 1 }));
  });
});
