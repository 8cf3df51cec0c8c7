import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { tempDir } from './wharf.js';

/** Debian's Chromium (`apt-get install chromium`; .ci/run installs it). */
export const CHROMIUM = process.env.WHARF_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Where a failing browser test leaves its screenshot (git-ignored). */
export const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');

/**
 * Headless Chromium with a new empty profile, no network but what the page asks for (the test's server on
 * 127.0.0.1). Fails loudly when Chromium is missing: the browser test never skips.
 */
export async function launchChromium(): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: install it (apt-get install -y chromium) or set WHARF_TEST_CHROMIUM`,
    );
  }
  return chromium.launchPersistentContext(tempDir('wharf-chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1400, height: 900 },
  });
}

/** Runs a step of a browser test; on failure saves a screenshot under test/artifacts/ and rethrows. */
export async function withScreenshot<T>(page: Page, name: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => {});
    throw error;
  }
}
