/**
 * Deterministic randomness for the synthetic data generator: a small seeded PRNG (mulberry32),
 * a 32-bit integer hash for deriving independent streams from (seed, index), and UUIDs with the
 * version 4 layout built from those hashes.
 */

/** Finalizer of murmur3: a bijection on 32-bit integers with good avalanche. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hashes (seed, index, salt) to 32 bits. For a fixed seed and salt it is a bijection of `index`
 * on [0, 2^32), so values derived from different indexes never collide.
 */
export function hash32(seed: number, index: number, salt: number): number {
  const base = mix32((seed ^ Math.imul(salt + 1, 0x9e3779b9)) >>> 0);
  return mix32((base ^ index) >>> 0);
}

/** A seeded pseudo-random generator (mulberry32). Not for secrets. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Restarts the sequence from a new seed (avoids an allocation per generated row). */
  reset(seed: number): this {
    this.state = seed >>> 0;
    return this;
  }

  /** The next 32-bit unsigned integer. */
  uint32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max], both included. */
  between(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hex8(w: number): string {
  return HEX[w >>> 24]! + HEX[(w >>> 16) & 255]! + HEX[(w >>> 8) & 255]! + HEX[w & 255]!;
}

function hex4(w: number): string {
  return HEX[(w >>> 8) & 255]! + HEX[w & 255]!;
}

/** Formats four 32-bit words as a UUID with the version 4 / RFC 4122 variant bits set. */
export function uuidFromWords(w0: number, w1: number, w2: number, w3: number): string {
  const version = ((w1 & 0xffff0fff) | 0x00004000) >>> 0;
  const variant = ((w2 & 0x3fffffff) | 0x80000000) >>> 0;
  return `${hex8(w0)}-${hex4(version >>> 16)}-${hex4(version)}-${hex4(variant >>> 16)}-${hex4(variant)}${hex8(w3)}`;
}

/**
 * A deterministic UUID (version 4 layout) for item `index` of a stream identified by `salt`:
 * unique per index for a given seed and salt (the first word is a bijection of the index).
 */
export function deterministicUuid(seed: number, index: number, salt: number): string {
  return uuidFromWords(
    hash32(seed, index, salt),
    hash32(seed, index, salt + 101),
    hash32(seed, index, salt + 202),
    hash32(seed, index, salt + 303),
  );
}
