import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request the receiver got. */
export interface ReceivedRequest {
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly bytes: number;
  readonly body: { batch: Record<string, unknown>[]; sentAt: string };
  /** The status it was answered with (undefined: not answered, e.g. the sender was killed first). */
  status?: number;
}

/** How the receiver answers the n-th request (from 0); the default answers 200 `{"success":true}`. */
export type Responder = (
  n: number,
  request: ReceivedRequest,
  res: ServerResponse,
) => undefined | 'hold' | Promise<undefined | 'hold'>;

/** A Segment-like batch endpoint on 127.0.0.1 that records every request. */
export interface Receiver {
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** Calls of the requests answered 2xx, in order. */
  delivered(): Record<string, unknown>[];
  respond(responder: Responder | undefined): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let responder: Responder | undefined;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      const request: ReceivedRequest = {
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        bytes: raw.length,
        body: JSON.parse(raw.toString('utf8')),
      };
      const n = requests.length;
      requests.push(request);
      const answer = responder ? await responder(n, request, res) : undefined;
      if (answer === 'hold') return;
      if (!res.headersSent) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"success":true}');
      }
      request.status = res.statusCode;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1/batch`,
    requests,
    delivered: () =>
      requests
        .filter((r) => r.status !== undefined && r.status >= 200 && r.status < 300)
        .flatMap((r) => r.body.batch),
    respond: (r) => {
      responder = r;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
