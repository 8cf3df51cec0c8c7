import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { Secret } from '../../core/secret.js';
import { Runtime } from '../../pipeline/runtime.js';
import { resolveSettings } from '../../pipeline/settings.js';
import { type ApiServer, startApiServer } from '../../server/api-server.js';
import { FailedAuthLimiter, type LimiterOptions } from '../../server/failed-auth-limiter.js';
import { createDatabase, databaseUrl, serverUrl } from './databases.js';

/** One answer of the API, as a client sees it. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are read field by field in the tests
  readonly body: any;
}

/** A real API server on 127.0.0.1 over a runtime, and every answer it gave (to look for secrets). */
export interface TestApi {
  readonly url: string;
  readonly adminToken: string;
  readonly rt: Runtime;
  /** Every answer so far: status line, headers and body, as text. */
  readonly seen: string[];
  /** What the server logged. */
  readonly logs: string[];
  call(method: string, path: string, options?: { token?: string | null; body?: unknown }): Promise<Answer>;
  close(): Promise<void>;
}

/** Starts the API in this process over the settings of `env` (applied to process.env: the master key). */
export async function startTestApi(
  env: Record<string, string>,
  limiter: LimiterOptions = { failures: 1000 },
): Promise<TestApi> {
  Object.assign(process.env, env);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const rt = new Runtime(resolveSettings({}, env), { logger: pino({ level: 'info' }, sink) });
  const adminToken = randomBytes(24).toString('hex');
  let server: ApiServer | undefined;
  server = await startApiServer({
    rt,
    port: 0,
    adminToken: new Secret(adminToken),
    limiter: new FailedAuthLimiter(limiter),
  });
  const seen: string[] = [];
  const url = server.url;
  return {
    url,
    adminToken,
    rt,
    seen,
    logs,
    async call(method, path, options = {}) {
      const token = options.token === undefined ? adminToken : options.token;
      const headers: Record<string, string> = {};
      if (token !== null) headers.authorization = `Bearer ${token}`;
      if (options.body !== undefined) headers['content-type'] = 'application/json';
      const r = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(options.body !== undefined
          ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }
          : {}),
      });
      const text = await r.text();
      seen.push(
        `${method} ${path} ${r.status}\n${[...r.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${text}`,
      );
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
      return { status: r.status, headers: r.headers, text, body };
    },
    async close() {
      await server?.close();
      server = undefined;
      await rt.close();
    },
  };
}

/** A warehouse database owned by a login role of its own, with a password that appears nowhere else. */
export async function createWarehouse(
  prefix: string,
): Promise<{ url: string; user: string; password: string }> {
  const user = `${prefix}_${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  let name: string;
  try {
    await admin.query(`create role "${user}" login password '${password}'`);
    name = new URL(await createDatabase(prefix)).pathname.slice(1);
    await admin.query(`alter database "${name}" owner to "${user}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(databaseUrl(name));
  url.username = user;
  url.password = '';
  url.search = 'sslmode=disable';
  return { url: url.toString(), user, password };
}
