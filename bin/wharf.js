#!/usr/bin/env node
// Entry point of the `wharf` command: runs the compiled JavaScript in dist/ (built by `npm ci` / `npm run build`)
// when it is up to date with the TypeScript sources, else the sources themselves through tsx.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceFiles } from '../scripts/source-files.js';

// the AWS SDK warns about Node 20 on every run; Wharf supports Node 20
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function compiledIsCurrent() {
  if (process.env.WHARF_FROM_SOURCE === '1') return false;
  try {
    const stamp = JSON.parse(readFileSync(join(root, 'dist', '.build-stamp.json'), 'utf8'));
    const now = sourceFiles(root);
    return stamp.paths === now.paths && stamp.newest >= now.newest;
  } catch {
    return false;
  }
}

let main;
if (compiledIsCurrent()) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
