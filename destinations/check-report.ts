import { connect as netConnect, type Socket } from 'node:net';
import type { ConnectionSettings } from '../connectors/connection-url.js';
import { WharfError } from '../core/errors.js';
import { classifyPgError } from '../db/postgres/errors.js';

/** One pre-flight check: its name, whether it passed, how long it took, and on failure one line with the fix. */
export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly durationMs: number;
  /** On failure: what failed and what to do, one line, never the password. On success: a note, if any. */
  readonly message?: string;
  /** SQLSTATE or Node error code of the failure, when there is one. */
  readonly code?: string;
}

/** The checks in the order they ran; the run stops at the first failure. */
export interface CheckReport {
  readonly ok: boolean;
  readonly target: string;
  readonly checks: readonly CheckResult[];
}

export interface CheckOptions {
  /** Timeout of the TCP connect and of the TLS handshake; default 5 s. */
  readonly timeoutMs?: number;
  /** The longest wait for a lock in the checks' session (`--lock-timeout`); default 10 s. */
  readonly lockTimeoutMs?: number;
}

/** A check that failed: the line for the user, and the error code behind it. */
export class CheckFailure extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

export const sqlstate = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

export function endpoint(settings: ConnectionSettings): string {
  return `${settings.host.includes(':') ? `[${settings.host}]` : settings.host}:${settings.port}`;
}

/** Opens a TCP connection; rejects with an error naming host and port, its `code` and the fix. Any engine. */
export function reach(settings: ConnectionSettings, timeoutMs: number): Promise<Socket> {
  const where = endpoint(settings);
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: settings.host, port: settings.port });
    const fail = (failure: CheckFailure) => {
      socket.destroy();
      reject(failure);
    };
    socket.setTimeout(timeoutMs, () =>
      fail(
        new CheckFailure(
          `cannot reach ${where}: no answer within ${Math.round(timeoutMs / 1000)} s; check the host and port, and that a firewall lets this machine in`,
          'ETIMEDOUT',
        ),
      ),
    );
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const code = error.code;
      const why =
        code === 'ECONNREFUSED'
          ? settings.engine === 'postgres'
            ? 'connection refused; check the port, and that PostgreSQL listens on this address (listen_addresses)'
            : 'connection refused; check the port, and that SQL Server accepts TCP connections on it (SQL Server Configuration Manager, firewall)'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? 'the host name does not resolve; check the host in the URL'
            : code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
              ? 'no route to the host; check the host and the network'
              : `${code ?? 'network error'}; check the host and port`;
      fail(new CheckFailure(`cannot reach ${where}: ${why}`, code));
    });
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** The first failed check as a terminal `WharfError` (one line, the fix as its hint), or undefined. */
export function checkFailure(
  report: CheckReport,
  connector?: string,
  subject = 'warehouse',
): WharfError | undefined {
  const failure = report.checks.find((c) => !c.ok);
  if (!failure) return undefined;
  const [what, fix] = splitFix(failure.message ?? `${failure.name} failed`);
  return new WharfError(`${subject} check "${failure.name}" failed for ${report.target}: ${what}`, {
    // a server that is down, starting, full or restarting: worth another try (08xxx, 53xxx, 57P0x, ECONNREFUSED …)
    kind:
      failure.code !== undefined && classifyPgError({ code: failure.code }) === 'transient'
        ? 'transient'
        : 'terminal',
    ...(fix ? { hint: fix } : {}),
    ...(failure.code ? { code: failure.code } : {}),
    ...(connector ? { context: { connector } } : {}),
  });
}

/** "what failed; what to do" → both halves. */
function splitFix(line: string): [string, string | undefined] {
  const at = line.indexOf('; ');
  return at < 0 ? [line, undefined] : [line.slice(0, at), line.slice(at + 2)];
}
