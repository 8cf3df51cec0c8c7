import type { HttpBindings } from '@hono/node-server';
import type { Secret } from '../core/secret.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { FailedAuthLimiter } from './failed-auth-limiter.js';
import type { Scope } from './scope.js';

/** What every route is given: the runtime it calls the pipeline with, and the server's auth settings. */
export interface ServerDeps {
  readonly rt: Runtime;
  /** The admin token from `WHARF_API_TOKEN`, if set (stored tokens are checked besides it). */
  readonly adminToken?: Secret;
  readonly limiter: FailedAuthLimiter;
}

/** The Hono environment of the API: Node's request bindings, and the caller's scope once authenticated. */
export interface ApiEnv {
  Bindings: HttpBindings;
  Variables: { scope: Scope };
}
