import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { WharfError } from '../core/errors.js';

/** The console's files, read once: the sign-in shell (index.html) and the code and styles it loads. */
export interface ConsoleAssets {
  /** The shell with its Content-Security-Policy (its inline script and style allowed by hash). */
  shell(c: Context, status: ContentfulStatusCode): Response;
  /** A console file by name (`console.js`, `console.css`), or undefined. */
  file(name: string): { readonly body: string; readonly type: string } | undefined;
}

const FILES: Readonly<Record<string, string>> = {
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
};

/** server/console/, from the sources or from the compiled dist/server/. */
function consoleDir(): string {
  for (const rel of ['./console/', '../../server/console/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  throw new WharfError('the console files are missing (server/console/)', { hint: 'reinstall wharf' });
}

const hashOf = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** Every inline `<tag>…</tag>` body of the shell, hashed for its CSP. */
function inlineHashes(html: string, tag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g');
  for (const m of html.matchAll(re)) out.push(hashOf(m[1]!));
  return out;
}

/** Reads the console files; the shell's policy lets in its own inline script and style and the blob URLs it makes. */
export function loadConsoleAssets(): ConsoleAssets {
  const dir = consoleDir();
  const html = readFileSync(`${dir}index.html`, 'utf8');
  const csp = [
    "default-src 'none'",
    `script-src ${inlineHashes(html, 'script').join(' ')} blob:`,
    `style-src ${inlineHashes(html, 'style').join(' ')} blob:`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const files = new Map(
    Object.entries(FILES).map(([name, type]) => [
      name,
      { body: readFileSync(`${dir}${name}`, 'utf8'), type },
    ]),
  );
  return {
    shell: (c, status) => {
      c.header('content-security-policy', csp);
      return c.html(html, status);
    },
    file: (name) => files.get(name),
  };
}
