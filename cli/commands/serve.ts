import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import type { Runtime } from '../../pipeline/runtime.js';
import { type ApiServer, startApiServer } from '../../server/api-server.js';
import { type GlobalArgs, withRuntime } from '../run-command.js';

interface ServeArgs extends GlobalArgs {
  port: number;
  host: string;
}

/** `WHARF_API_TOKEN`, when set: an admin token (at least 24 characters). */
export function adminTokenFromEnv(env: NodeJS.ProcessEnv = process.env): Secret | undefined {
  const value = env.WHARF_API_TOKEN;
  if (value === undefined || value === '') return undefined;
  if (value.length < 24) {
    throw new UsageError(
      'WHARF_API_TOKEN is too short',
      'use at least 24 random characters: openssl rand -hex 32',
    );
  }
  return new Secret(value);
}

/** Starts the API and console for `wharf serve` and `wharf run --api-port`; logs where it listens. */
export async function startApi(rt: Runtime, port: number, host: string): Promise<ApiServer> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`invalid port ${port}`, 'use a port number from 1 to 65535 (0: any free port)');
  }
  const adminToken = adminTokenFromEnv();
  await rt.connectors(); // the control schema (and its tokens table) before the first request
  const server = await startApiServer({ rt, port, host, ...(adminToken ? { adminToken } : {}) });
  rt.logger.info({ url: server.url }, `API and console on ${server.url} (every route needs a bearer token)`);
  return server;
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (name: string) => () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(name);
    };
    const onInt = on('SIGINT');
    const onTerm = on('SIGTERM');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
}

export const serveCommand: CommandModule<GlobalArgs, ServeArgs> = {
  command: 'serve',
  describe:
    'Serve the HTTP API (/openapi.json) and the operator console (/); every route needs a bearer token',
  builder: (y) =>
    y.option('port', { type: 'number', default: 8080, describe: 'port to listen on' }).option('host', {
      type: 'string',
      default: '127.0.0.1',
      describe: 'address to listen on (0.0.0.0: every interface; put TLS in front)',
    }) as unknown as Argv<ServeArgs>,
  handler: withRuntime<ServeArgs>(async (rt, args) => {
    const server = await startApi(rt, args.port, args.host);
    const signal = await untilSignal();
    rt.logger.info(`${signal}: stopping the API server`);
    await server.close();
  }),
};
