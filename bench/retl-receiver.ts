// A Segment-compatible batch endpoint on 127.0.0.1 for the reverse-ETL bench, in a process of its own: it parses
// every body and counts the calls. Prints `{"port": N}` when listening; a line on stdin prints the counts.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let calls = 0;
let requests = 0;
let bytes = 0;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const body = JSON.parse(raw.toString('utf8')) as { batch: unknown[] };
    calls += body.batch.length;
    requests++;
    bytes += raw.length;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"success":true}');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.stdin.on('data', () => process.stdout.write(`${JSON.stringify({ calls, requests, bytes })}\n`));
process.stdin.on('end', () => server.close(() => process.exit(0)));
