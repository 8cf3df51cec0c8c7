/** How many failed attempts an address may make in a period before it is refused. */
export interface LimiterOptions {
  /** Default 10. */
  readonly failures?: number;
  /** Default 60 s. */
  readonly periodMs?: number;
  /** Addresses tracked at most (the oldest are forgotten); default 10,000. */
  readonly maxAddresses?: number;
}

interface Entry {
  failures: number;
  resetAt: number;
}

/**
 * Failed authentication per client address, in fixed periods: past the limit, the address is refused (429)
 * until its period ends, before any token is checked. Memory is bounded by `maxAddresses`.
 */
export class FailedAuthLimiter {
  readonly #failures: number;
  readonly #periodMs: number;
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: LimiterOptions = {}) {
    this.#failures = options.failures ?? 10;
    this.#periodMs = options.periodMs ?? 60_000;
    this.#max = options.maxAddresses ?? 10_000;
  }

  /** Seconds until the address may try again, or 0 when it may now. */
  blockedFor(address: string, now = Date.now()): number {
    const e = this.#entries.get(address);
    if (!e || e.resetAt <= now) return 0;
    return e.failures >= this.#failures ? Math.ceil((e.resetAt - now) / 1000) : 0;
  }

  /** Counts a failed attempt of the address. */
  fail(address: string, now = Date.now()): void {
    let e = this.#entries.get(address);
    if (!e || e.resetAt <= now) {
      this.#entries.delete(address);
      if (this.#entries.size >= this.#max) this.#forgetOldest(now);
      e = { failures: 0, resetAt: now + this.#periodMs };
      this.#entries.set(address, e);
    }
    e.failures++;
  }

  #forgetOldest(now: number): void {
    for (const [address, e] of this.#entries) {
      if (e.resetAt <= now || this.#entries.size >= this.#max) this.#entries.delete(address);
      else break;
    }
  }
}
