import pg from 'pg';
import { errorMessage, WharfError } from '../../core/errors.js';
import { redactUrls } from '../../core/secret.js';
import { isConnectionLoss, noteConnectionLoss } from './errors.js';

/** The SQLSTATE Wharf gives a lost connection (`connection_failure`), so that it classifies as class 08. */
export const CONNECTION_LOST = '08006';

/** Clients that are watched, with the role of their database ("source", "control", "warehouse"). */
const watched = new WeakMap<pg.ClientBase, { readonly role: string; lost: boolean }>();

type QueryFn = (...args: unknown[]) => unknown;

/**
 * A lost connection as one transient error: what was lost and that a retry reconnects. `cause` is what the
 * driver said (`Connection terminated unexpectedly`, `Client has encountered a connection error …`).
 */
export function connectionLost(role: string, cause: unknown): WharfError {
  if (cause instanceof WharfError && cause.code === CONNECTION_LOST) return cause;
  return new WharfError(`lost the connection to the ${role} database (${redactUrls(errorMessage(cause))})`, {
    kind: 'transient',
    code: CONNECTION_LOST,
    cause,
    hint: `the server restarted or the network failed; it is retried, and works again once the ${role} database is back`,
  });
}

/**
 * Watches a client, once: an `error` event (the socket failed, the server ended the session, or the connection
 * ended unexpectedly) marks the client lost instead of ending the process, and every query that then fails on
 * it fails as a transient `connectionLost` error. Every client and pool Wharf opens is watched (pools through
 * `watchPool`), so no stage can crash on a server that restarts. Returns the client.
 */
export function watchClient<C extends pg.ClientBase>(client: C, role: string): C {
  if (watched.has(client)) return client;
  const state = { role, lost: false };
  watched.set(client, state);
  client.on('error', (error: unknown) => {
    state.lost = true;
    noteConnectionLoss(error);
  });
  const query = (client.query as QueryFn).bind(client);
  const lossOr = (error: unknown): unknown =>
    state.lost || isConnectionLoss(error) ? connectionLost(role, error) : error;
  (client as unknown as { query: QueryFn }).query = (...args: unknown[]) => {
    const last = args.length - 1;
    const callback = args[last];
    if (last > 0 && typeof callback === 'function') {
      // the callback form (the pool's own `query`)
      args[last] = (error: unknown, result: unknown) =>
        (callback as (e: unknown, r: unknown) => void)(error ? lossOr(error) : error, result);
      return query(...args);
    }
    const result = query(...args);
    // a submittable (COPY streams) is returned as is: its error is the one the `error` event marks
    if (result instanceof Promise) {
      return result.catch((error: unknown) => {
        throw lossOr(error);
      });
    }
    return result;
  };
  return client;
}

/** True once a watched client's connection is known lost (its `error` event fired). */
export function isLost(client: pg.ClientBase): boolean {
  return watched.get(client)?.lost ?? false;
}

/** SQLSTATEs of a session the server ended: a shutdown or restart (57P01–57P03), any connection exception (08). */
const SESSION_ENDED = /^(?:57P0[1-3]|08...)$/;

/**
 * `error` as a transient `connectionLost` error when it ended a watched connection (or is the server ending the
 * session: 57P01–57P03, 08xxx), else `error` itself: for errors that reach a stage through a stream (COPY)
 * rather than through a query's promise.
 */
export function asConnectionLoss(error: unknown, role: string): unknown {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof WharfError && e.code === CONNECTION_LOST) return error;
    const code = (e as { code?: unknown }).code;
    if (isConnectionLoss(e) || (typeof code === 'string' && SESSION_ENDED.test(code))) {
      return connectionLost(role, e);
    }
  }
  return error;
}

/** Watches every client a pool connects (its `connect` event), and the pool's own idle-client errors. */
export function watchPool(pool: pg.Pool, role: string): pg.Pool {
  pool.on('connect', (client) => watchClient(client, role));
  pool.on('error', () => {
    // an idle client lost its connection: the pool drops it, the next checkout opens a new one
  });
  return pool;
}

/** A new client, watched from the start and connected; `role` names its database in errors. */
export async function connectClient(config: pg.ClientConfig, role: string): Promise<pg.Client> {
  const client = watchClient(new pg.Client(config), role);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  return client;
}
