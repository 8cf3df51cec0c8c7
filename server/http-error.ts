import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ZodError } from 'zod';
import { errorMessage, WharfError } from '../core/errors.js';
import { redactUrls } from '../core/secret.js';
import { ChecksFailedError } from '../pipeline/connector-flows.js';

/** The body of every error answer: the one line the CLI prints, the request field at fault, check results. */
export interface ErrorBody {
  readonly error: string;
  readonly field?: string;
  readonly checks?: readonly unknown[];
}

/** An error as an HTTP answer: its status and body. */
export interface HttpError {
  readonly status: ContentfulStatusCode;
  readonly body: ErrorBody;
}

/**
 * The status of a Wharf error, by its kind (and code): a usage error is the caller's (400), a missing object
 * 404, a forbidden route 403, a lock held elsewhere 409, a transient failure 503 (try again), any other
 * terminal failure 422 (the request was understood but cannot be done as things are).
 */
export function statusOf(error: WharfError): ContentfulStatusCode {
  if (error.code === 'not_found') return 404;
  if (error.code === 'forbidden') return 403;
  // another process holds the job's lock (the pipeline's BusyError is coded WHARF_BUSY)
  if (error.code === 'busy' || error.code === 'WHARF_BUSY') return 409;
  switch (error.kind) {
    case 'usage':
      return 400;
    case 'transient':
      return 503;
    default:
      return 422;
  }
}

/** Any error thrown by a route, as an answer; never a secret (URLs with passwords are masked). */
export function httpError(error: unknown): HttpError {
  if (error instanceof WharfError) {
    return {
      status: statusOf(error),
      body: {
        error: redactUrls(error.oneLine()),
        ...(error instanceof ChecksFailedError ? { checks: error.checks } : {}),
      },
    };
  }
  return { status: 500, body: { error: `internal error: ${redactUrls(errorMessage(error))}` } };
}

/** A request that does not match its schema: 400 naming the first field at fault and what it should be. */
export function validationError(error: ZodError, part: string): HttpError {
  const issue = error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : part;
  const message = issue?.message ?? 'invalid';
  return {
    status: 400,
    body: { error: `invalid ${field}: ${message}; see /openapi.json for the request's shape`, field },
  };
}
