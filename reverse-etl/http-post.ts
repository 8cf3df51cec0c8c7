import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** What a POST got back. */
export interface PostResponse {
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly text: string;
}

/** Keep-alive connections to one endpoint: a batch request reuses a socket instead of opening one each time. */
export interface PostClient {
  post(body: Buffer, headers: Readonly<Record<string, string>>, timeoutMs: number): Promise<PostResponse>;
  close(): void;
}

/** Bytes of a response body read at most (a receiver's message is cut to a line anyway). */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * POSTs to `url` over node:http(s) with a keep-alive agent; redirects are not followed. A request not answered
 * within `timeoutMs` fails with an error named `TimeoutError`; network and TLS errors carry Node's `code`.
 */
export function postClient(url: string): PostClient {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const send = secure ? httpsRequest : httpRequest;
  return {
    post: (body, headers, timeoutMs) =>
      new Promise<PostResponse>((resolve, reject) => {
        const req = send(target, {
          method: 'POST',
          agent,
          headers: { ...headers, 'content-length': String(body.length) },
        });
        const timer = setTimeout(() => {
          const error = new Error(`no answer within ${timeoutMs} ms`);
          error.name = 'TimeoutError';
          req.destroy(error);
        }, timeoutMs);
        req.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        req.once('response', (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            if (size < MAX_RESPONSE_BYTES) chunks.push(c);
            size += c.length;
          });
          res.once('error', (error) => {
            clearTimeout(timer);
            reject(error);
          });
          res.once('end', () => {
            clearTimeout(timer);
            const retryAfter = res.headers['retry-after'];
            resolve({
              status: res.statusCode ?? 0,
              retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
              text: Buffer.concat(chunks).toString('utf8'),
            });
          });
        });
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}
