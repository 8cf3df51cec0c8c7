// The TypeScript sources the CLI runs from (not tests or benchmarks), and the newest change among them.
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SKIP = new Set([
  'node_modules',
  'dist',
  'test',
  'bench',
  'scripts',
  'bin',
  'docs',
  'wharf-data',
  'coverage',
]);

/**
 * Every `.ts` file under the repository's source folders, the newest modification time among them, and a hash
 * of their paths (a file renamed or moved changes it even when no content changed).
 */
export function sourceFiles(root) {
  const files = [];
  let newest = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (dir !== root || !SKIP.has(entry.name)) walk(path);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') && dir !== root) {
        files.push(path);
        newest = Math.max(newest, statSync(path).mtimeMs);
      }
    }
  };
  walk(root);
  files.sort();
  const paths = createHash('sha256').update(files.join('\n')).digest('hex').slice(0, 16);
  return { files, newest, paths };
}
