import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

/** The part of @duckdb/node-api the bench uses. */
export interface DuckConnection {
  run(sql: string): Promise<unknown>;
  runAndReadAll(sql: string): Promise<{ getRows(): unknown[][] }>;
  closeSync(): void;
}
export interface DuckInstance {
  connect(): Promise<DuckConnection>;
  closeSync(): void;
}

const DEPS = resolve('bench/.deps');

/**
 * DuckDB for the Parquet baseline. It is not a dependency of Wharf (its platform packages are not all on
 * every registry mirror, which breaks `npm ci`): the bench installs it beside itself on first use.
 */
export async function openDuckDb(): Promise<DuckInstance> {
  const entry = join(DEPS, 'node_modules', '@duckdb', 'node-api');
  if (!existsSync(entry)) {
    process.stderr.write('installing @duckdb/node-api into bench/.deps for the Parquet baseline …\n');
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefix', DEPS, '@duckdb/node-api@1.5.6-r.1'],
      {
        stdio: 'inherit',
      },
    );
  }
  const require = createRequire(join(DEPS, 'package.json'));
  const api = require('@duckdb/node-api') as {
    DuckDBInstance: { create(path: string): Promise<DuckInstance> };
  };
  return api.DuckDBInstance.create(':memory:');
}
