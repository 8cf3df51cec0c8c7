import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionSettings } from '../connectors/connection-url.js';
import { Secret } from '../core/secret.js';
import { checkPostgresWarehouse, pgConnectionConfig } from '../destinations/postgres/postgres-checks.js';

// A throw-away test CA (valid until 2126) and two server certificates signed by it: one for
// IP 127.0.0.1, one for the name db.example.com only.
const CA = `-----BEGIN CERTIFICATE-----
MIIBljCCAT2gAwIBAgIUbBo0auJGl20a9LHNGxTf6ocG7AswCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNV2hhcmYgVGVzdCBDQTAgFw0yNjExMjMwOTQxMTNaGA8yMTI2
MTAzMDA5NDExM1owGDEWMBQGA1UEAwwNV2hhcmYgVGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABDQ1kDF6WT7hh73IamTZ7pqy5XVKxKtzE+/6j7Dbjx/J
C+PXNbl5zYDnA9tgBUiEG8MOL7bOZJWxzEVj+3DL30mjYzBhMB0GA1UdDgQWBBQw
pq4w6iV+vP8ik48vKlfW8UN7lzAfBgNVHSMEGDAWgBQwpq4w6iV+vP8ik48vKlfW
8UN7lzAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICBDAKBggqhkjOPQQD
AgNHADBEAiAsU9+H51OYziQXJ8KCwpCSaFzlFQWdZtubf1YP8qKPWAIgJqRUevbQ
VW525vV10Lv3du5nu+3LVzmxhxlzVUH/YMk=
-----END CERTIFICATE-----`;
const CERT_FOR_IP = `-----BEGIN CERTIFICATE-----
MIIBpzCCAU2gAwIBAgIUfciWnfit7oFGsRD25BE6ALBd+CswCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNV2hhcmYgVGVzdCBDQTAgFw0yNjExMjMwOTQxMTNaGA8yMTI2
MTAzMDA5NDExM1owGDEWMBQGA1UEAwwNd2hhcmYtdGVzdC1pcDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABOV2Uh6wc2Ba0oiRt0D4jQGhR58jXTUx9iPdMtDjdSrC
9xDI85ooT4+8r1wrmSgQmZRwkqSbhtFs93g818ckfiejczBxMA8GA1UdEQQIMAaH
BH8AAAEwCQYDVR0TBAIwADATBgNVHSUEDDAKBggrBgEFBQcDATAdBgNVHQ4EFgQU
V7AkX1rykVwImYBQr8IAr7wNssUwHwYDVR0jBBgwFoAUMKauMOolfrz/IpOPLypX
1vFDe5cwCgYIKoZIzj0EAwIDSAAwRQIhAPluj3VqxD++ZpHeMr7cFa6e6hnHPgpi
FufDLd9/eE9wAiAIUhAG5Ka2nadStpwHE6JFlBU0FLFgCnee5twRBQ5lQw==
-----END CERTIFICATE-----`;
const CERT_FOR_NAME = `-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUfciWnfit7oFGsRD25BE6ALBd+CwwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNV2hhcmYgVGVzdCBDQTAgFw0yNjExMjMwOTQxMTNaGA8yMTI2
MTAzMDA5NDExM1owGjEYMBYGA1UEAwwPd2hhcmYtdGVzdC1uYW1lMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE5XZSHrBzYFrSiJG3QPiNAaFHnyNdNTH2I90y0ON1
KsL3EMjzmihPj7yvXCuZKBCZlHCSpJuG0Wz3eDzXxyR+J6N9MHswGQYDVR0RBBIw
EIIOZGIuZXhhbXBsZS5jb20wCQYDVR0TBAIwADATBgNVHSUEDDAKBggrBgEFBQcD
ATAdBgNVHQ4EFgQUV7AkX1rykVwImYBQr8IAr7wNssUwHwYDVR0jBBgwFoAUMKau
MOolfrz/IpOPLypX1vFDe5cwCgYIKoZIzj0EAwIDSAAwRQIgW+LOsCbAQhnO5LZH
PyrFwcsbVDiWmt2Nc2sM5NbW8AMCIQDMgqXwRPKLQfQ5k2CVonSZvMLsWhNvkj9y
CmVX1a7wBQ==
-----END CERTIFICATE-----`;
const SERVER_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBU+b9O5dGSsNpfzz
nj/pgplaT7w4K6hPepiHRvUNt/GhRANCAATldlIesHNgWtKIkbdA+I0BoUefI101
MfYj3TLQ43UqwvcQyPOaKE+PvK9cK5koEJmUcJKkm4bRbPd4PNfHJH4n
-----END PRIVATE KEY-----`;

let dir: string;
let caFile: string;

/**
 * A server that answers PostgreSQL's SSLRequest with "S" and completes a TLS handshake with the
 * given certificate, then closes: enough to exercise the TLS check on 127.0.0.1.
 */
async function tlsServer(cert: string): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.once('data', () => {
      socket.write('S');
      const tls = new TLSSocket(socket, { isServer: true, cert, key: SERVER_KEY });
      tls.on('error', () => socket.destroy());
      tls.once('secure', () => setTimeout(() => tls.destroy(), 50));
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

function settings(port: number, options: Record<string, string>): ConnectionSettings {
  return { engine: 'postgres', host: '127.0.0.1', port, database: 'wh', user: 'loader', options };
}

const servers: Server[] = [];
let ipPort: number;
let namePort: number;
const CANARY = new Secret('canary-tls-password');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-tls-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, CA);
  const ip = await tlsServer(CERT_FOR_IP);
  const name = await tlsServer(CERT_FOR_NAME);
  servers.push(ip.server, name.server);
  ipPort = ip.port;
  namePort = name.port;
});

afterAll(async () => {
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

async function tlsCheck(port: number, options: Record<string, string>) {
  const report = await checkPostgresWarehouse(settings(port, options), CANARY, 'tracking', {
    timeoutMs: 3_000,
  });
  expect(JSON.stringify(report)).not.toContain('canary');
  return report.checks.find((c) => c.name === 'tls');
}

describe('TLS check', () => {
  it('verify-full with the right sslrootcert verifies the chain and the host', async () => {
    const tls = await tlsCheck(ipPort, { sslmode: 'verify-full', sslrootcert: caFile });
    expect(tls?.ok).toBe(true);
    expect(tls?.message).toContain('sslmode=verify-full');
  });

  it('verify-full without sslrootcert refuses the unknown CA and says which option to set', async () => {
    const tls = await tlsCheck(ipPort, { sslmode: 'verify-full' });
    expect(tls?.ok).toBe(false);
    expect(tls?.message).toContain('sslrootcert=');
    expect(tls?.message).toContain('sslmode=require');
  });

  it('verify-full refuses a certificate for another host; verify-ca accepts it', async () => {
    const full = await tlsCheck(namePort, { sslmode: 'verify-full', sslrootcert: caFile });
    expect(full?.ok).toBe(false);
    expect(full?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(full?.message).toContain('sslmode=verify-ca');
    const ca = await tlsCheck(namePort, { sslmode: 'verify-ca', sslrootcert: caFile });
    expect(ca?.ok).toBe(true);
  });

  it('require encrypts without verifying', async () => {
    const tls = await tlsCheck(namePort, { sslmode: 'require' });
    expect(tls?.ok).toBe(true);
  });

  it('sslmode=prefer uses TLS when the server offers it', async () => {
    const config = await pgConnectionConfig(settings(ipPort, { sslmode: 'prefer' }), CANARY);
    expect(config.ssl).toEqual({ rejectUnauthorized: false });
    expect(config.password).toBe(CANARY.reveal());
    const strict = await pgConnectionConfig(
      settings(ipPort, { sslmode: 'verify-full', sslrootcert: caFile }),
      CANARY,
    );
    expect(strict.ssl).toMatchObject({ rejectUnauthorized: true });
  });
});
