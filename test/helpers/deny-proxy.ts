import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An S3 operation as the proxy recognises it from the HTTP request. */
export type DeniedOperation = 'ListObjectsV2' | 'HeadObject' | 'PutObject' | 'GetObject' | 'DeleteObject';

/** A real HTTP server in front of s3rver that answers chosen operations `403 AccessDenied`, as an IAM policy would. */
export interface DenyProxy {
  readonly endpoint: string;
  /** The operations answered with AccessDenied (change it between requests). */
  deny: Set<DeniedOperation>;
  stop(): Promise<void>;
}

function operation(req: IncomingMessage): DeniedOperation | undefined {
  const url = new URL(req.url ?? '/', 'http://proxy');
  const parts = url.pathname.split('/').filter(Boolean);
  const onObject = parts.length > 1;
  if (!onObject)
    return req.method === 'GET' && url.searchParams.get('list-type') === '2' ? 'ListObjectsV2' : undefined;
  switch (req.method) {
    case 'HEAD':
      return 'HeadObject';
    case 'GET':
      return 'GetObject';
    case 'PUT':
    case 'POST':
      return 'PutObject';
    case 'DELETE':
      return url.searchParams.has('uploadId') ? undefined : 'DeleteObject';
    default:
      return undefined;
  }
}

const ACCESS_DENIED =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>';

/** Starts the proxy on 127.0.0.1 (a free port) in front of `target` (`http://127.0.0.1:<port>`). */
export async function startDenyProxy(target: string): Promise<DenyProxy> {
  const to = new URL(target);
  const proxy: DenyProxy = { endpoint: '', deny: new Set(), stop: async () => {} };
  const server: Server = createServer((req, res) => {
    const op = operation(req);
    if (op !== undefined && proxy.deny.has(op)) {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end(req.method === 'HEAD' ? undefined : ACCESS_DENIED);
      return;
    }
    const upstream = request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(proxy, {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
