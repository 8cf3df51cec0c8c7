#!/usr/bin/env node
// Compiles the TypeScript sources to JavaScript in dist/ (esbuild, one output file per source, no bundling), so
// that `wharf` starts without compiling anything. Runs on `npm ci` / `npm install` (the `prepare` script).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { sourceFiles } from './source-files.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const started = performance.now();
const { files, newest, paths } = sourceFiles(root);
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: files,
  outdir: dist,
  outbase: root,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  bundle: false,
  sourcemap: 'linked',
  logLevel: 'warning',
});
writeFileSync(join(dist, '.build-stamp.json'), `${JSON.stringify({ files: files.length, newest, paths })}\n`);
if (!process.env.CI || process.env.WHARF_BUILD_VERBOSE) {
  process.stderr.write(
    `wharf: compiled ${files.length} files to dist/ in ${Math.round(performance.now() - started)} ms\n`,
  );
}
