import { readFileSync } from 'node:fs';

/**
 * Wharf's version, from its package.json (found from this file whether it runs as TypeScript or as the compiled
 * JavaScript in dist/).
 */
export const WHARF_VERSION: string = (() => {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'wharf' && pkg.version) return pkg.version;
    } catch {
      // not there: one level up
    }
  }
  return '0.0.0';
})();
