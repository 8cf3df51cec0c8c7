/**
 * Typed errors. Every failure Wharf reports is a `WharfError`: it knows whether a retry can help
 * (`transient`) and carries one line for the user (what failed, where, what to do).
 */

/** Where an error happened: the window, stream and connector it concerns, when known. */
export interface ErrorContext {
  readonly window?: string;
  readonly stream?: string;
  readonly connector?: string;
  /** A reverse-ETL sync. */
  readonly sync?: string;
  readonly account?: string | number;
  readonly key?: string;
}

export type ErrorKind = 'transient' | 'terminal' | 'usage';

export interface WharfErrorOptions {
  readonly kind?: ErrorKind;
  readonly hint?: string;
  readonly context?: ErrorContext;
  readonly cause?: unknown;
  readonly code?: string;
}

export class WharfError extends Error {
  readonly kind: ErrorKind;
  readonly hint: string | undefined;
  readonly context: ErrorContext;
  readonly code: string | undefined;

  constructor(message: string, options: WharfErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.kind = options.kind ?? 'terminal';
    this.hint = options.hint;
    this.context = options.context ?? {};
    this.code = options.code;
  }

  get transient(): boolean {
    return this.kind === 'transient';
  }

  /** One line: what failed, where, what to do. */
  oneLine(): string {
    const where = describeContext(this.context);
    return [this.message + (where ? ` (${where})` : ''), this.hint].filter(Boolean).join('; ');
  }
}

/** A command-line usage error: exit code 2. */
export class UsageError extends WharfError {
  constructor(message: string, hint?: string) {
    super(message, { kind: 'usage', ...(hint ? { hint } : {}) });
  }
}

/**
 * The work asked for was not done because another process holds its lock (another load of the connector,
 * another export): not a failure, but not done either. One-shot commands exit 3.
 */
export class BusyError extends WharfError {
  constructor(message: string, hint?: string) {
    super(message, { kind: 'transient', code: 'WHARF_BUSY', ...(hint ? { hint } : {}) });
  }
}

/** A staging key that already exists was written to again. */
export class AlreadyExistsError extends WharfError {}

/** Stored bytes do not match the manifest (sha256, size or row count). */
export class IntegrityError extends WharfError {}

/** Settings or configuration that cannot work. */
export class ConfigError extends WharfError {}

export function describeContext(context: ErrorContext): string {
  const parts: string[] = [];
  if (context.connector !== undefined) parts.push(`connector ${context.connector}`);
  if (context.sync !== undefined) parts.push(`sync ${context.sync}`);
  if (context.account !== undefined) parts.push(`account ${context.account}`);
  if (context.window !== undefined) parts.push(`window ${context.window}`);
  if (context.stream !== undefined) parts.push(`stream ${context.stream}`);
  if (context.key !== undefined) parts.push(`key ${context.key}`);
  return parts.join(', ');
}

/** Adds context to an error on its way up, keeping its kind. */
export function withContext(error: unknown, context: ErrorContext): WharfError {
  if (error instanceof WharfError) {
    const merged = { ...context, ...error.context };
    Object.defineProperty(error, 'context', { value: merged, configurable: true });
    return error;
  }
  return new WharfError(errorMessage(error), { context, cause: error, kind: classifyUnknown(error) });
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Node network error codes: a retry can help. */
export const TRANSIENT_NODE_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ESOCKETTIMEDOUT',
  'ECONNABORTED',
]);

/** Network errors from Node itself are transient; anything unknown is terminal. */
export function classifyUnknown(error: unknown): ErrorKind {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TRANSIENT_NODE_CODES.has(code)) return 'transient';
  return 'terminal';
}

/**
 * The error and everything it wraps, nearest first: `cause`, the mssql driver's `originalError`, and the
 * `errors` of an AggregateError (and tedious' `precedingErrors`). Each object once, at most 20.
 */
export function causes(error: unknown): object[] {
  const out: object[] = [];
  const queue: unknown[] = [error];
  while (queue.length > 0 && out.length < 20) {
    const e = queue.shift();
    if (e === null || typeof e !== 'object' || out.includes(e)) continue;
    out.push(e);
    const r = e as { originalError?: unknown; cause?: unknown; errors?: unknown; precedingErrors?: unknown };
    queue.push(r.cause, r.originalError);
    if (Array.isArray(r.errors)) queue.push(...r.errors);
    if (Array.isArray(r.precedingErrors)) queue.push(...r.precedingErrors);
  }
  return out;
}

/** True when the error or anything it wraps has this `code` (a SQLSTATE such as `23503`, a Node code). */
export function hasCode(error: unknown, code: string): boolean {
  return causes(error).some((e) => (e as { code?: unknown }).code === code);
}

/** The one line to show for any error: a `WharfError`'s `oneLine()`, else its message. */
export function oneLine(error: unknown): string {
  return error instanceof WharfError ? error.oneLine() : errorMessage(error);
}
