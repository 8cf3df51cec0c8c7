import { inspect } from 'node:util';

const MASK = '********';

/**
 * A value that must never be shown: it prints `********` in logs, errors, JSON and `inspect`.
 * Read it with `reveal()` only where a driver needs it.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return MASK;
  }

  toJSON(): string {
    return MASK;
  }

  [inspect.custom](): string {
    return MASK;
  }
}

export const SECRET_MASK = MASK;

/** Replaces every occurrence of the given secrets (plain and URL-encoded) in a text. */
export function redact(text: string, secrets: ReadonlyArray<Secret | string | undefined>): string {
  let out = text;
  for (const s of secrets) {
    const value = s instanceof Secret ? s.reveal() : s;
    if (!value) continue;
    for (const form of new Set([value, encodeURIComponent(value), encodeURI(value)])) {
      if (form.length > 0) out = out.split(form).join(MASK);
    }
  }
  return out;
}

/** Removes the password part of any URL in a text (`scheme://user:pass@host` → `scheme://user:********@host`). */
export function redactUrls(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):([^@\s]*)@/gi, `$1:${MASK}@`);
}
