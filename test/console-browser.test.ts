import { randomBytes } from 'node:crypto';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWarehouse, startTestApi, type TestApi } from './helpers/api.js';
import { launchChromium, withScreenshot } from './helpers/browser.js';
import { wharf } from './helpers/cli.js';
import { createDatabase, query } from './helpers/databases.js';
import { addManyConnectors } from './helpers/many-connectors.js';
import { type Receiver, startReceiver } from './helpers/retl-receiver.js';
import { sleep, tempDir } from './helpers/wharf.js';

let env: Record<string, string>;
let api: TestApi;
let browser: BrowserContext;
let page: Page;
let healthy: string;
let failing: string;
let failure: string;
let receiver: Receiver;

const POLL = { timeout: 15_000 };
const rows = (p: Page) => p.locator('#connectors tbody tr[data-id]');

beforeAll(async () => {
  const sourceUrl = await createDatabase('wharf_console_src');
  const wh1 = await createWarehouse('wharf_console_wh1');
  const wh2 = await createWarehouse('wharf_console_wh2');
  env = {
    WHARF_SOURCE_URL: sourceUrl,
    WHARF_STAGING_URL: `file://${tempDir('wharf-console-staging-')}`,
    WHARF_MASTER_KEY: randomBytes(32).toString('base64'),
    WHARF_WINDOW: '1m',
    WHARF_SETTLE: '0s',
    WHARF_LOG_LEVEL: 'warn',
  };
  expect((await wharf(['seed', '--accounts', '2', '--rows', '300', '--seed', '11'], env)).code).toBe(0);
  api = await startTestApi(env);
  const add = async (account: number, wh: typeof wh1) => {
    const r = await api.call('POST', '/v1/connectors', {
      body: {
        account,
        engine: 'postgres',
        url: wh.url,
        password: wh.password,
        streams: ['accounts', 'affiliates'],
      },
    });
    expect(r.status, r.text).toBe(201);
    return r.body.id as string;
  };
  healthy = await add(1, wh1);
  failing = await add(2, wh2);
  // account 2's warehouse loses its tables: its loads fail, with the reason in the run history
  const owner2 = wh2.url.replace(`${wh2.user}@`, `${wh2.user}:${wh2.password}@`);
  await query(owner2, 'drop schema tracking cascade');
  await query(owner2, 'create schema tracking');
  await query(owner2, 'create table tracking._wharf_loads (window_id int)');
  expect((await wharf(['export'], env)).code).toBe(0);
  expect((await api.call('POST', `/v1/connectors/${healthy}/load`)).status).toBe(200);
  const bad = await api.call('POST', `/v1/connectors/${failing}/load`);
  expect(bad.status).toBeGreaterThanOrEqual(400);
  await sleep(1500);
  expect((await api.call('POST', `/v1/connectors/${healthy}/load`)).status).toBe(200);
  failure = (await api.call('GET', `/v1/connectors/${failing}/status`)).body.lastError;
  expect(failure).toBeTruthy();
  // a reverse-ETL sync reading account 1's warehouse (one row without an email: rejected)
  const owner1 = wh1.url.replace(`${wh1.user}@`, `${wh1.user}:${wh1.password}@`);
  await query(
    owner1,
    `create table public.users (id bigint primary key, email text, last_updated bigint not null);
     insert into public.users values (1, 'a@example.com', 10), (2, 'b@example.com', 20), (3, null, 30)`,
  );
  receiver = await startReceiver();
  const source = await api.call('POST', '/v1/sources', {
    body: { account: 1, engine: 'postgres', url: wh1.url, password: wh1.password },
  });
  expect(source.status, source.text).toBe(201);
  const sync = await api.call('POST', '/v1/syncs', {
    body: {
      source: source.body.id,
      name: 'users',
      type: 'identify',
      query:
        'SELECT nullif(id, 3) AS "userId", email FROM users WHERE last_updated >= {{last_sync_time}} ORDER BY id',
      deliverTo: receiver.url.replace('http://', 'http://wk_console@'),
    },
  });
  expect(sync.status, sync.text).toBe(201);
  // a platform's worth of connectors (their warehouses need not exist: the console reads the control database)
  await addManyConnectors(api.rt, 1000, 100);
  browser = await launchChromium();
  page = browser.pages()[0] ?? (await browser.newPage());
});

afterAll(async () => {
  await browser?.close();
  await api?.close();
  await receiver?.close();
});

describe('the console in headless Chromium', () => {
  it('asks for the token, then lists 1,002 connectors page by page, the failing one with its reason', async () => {
    await withScreenshot(page, 'console-list', async () => {
      const first = await page.goto(`${api.url}/`);
      expect(first?.status()).toBe(401);
      await page.fill('#token', 'not-a-token');
      await page.click('#signin button');
      await expect.poll(() => page.textContent('#signin-error'), POLL).toContain('not valid');
      await page.fill('#token', api.adminToken);
      await page.click('#signin button');
      await page.waitForSelector('#connectors tbody tr[data-id]');
      await expect.poll(() => page.textContent('#page-info'), POLL).toBe('1–50 of 1,002');
      expect(await rows(page).count()).toBe(50);
      // most behind first: the failing connector never loaded
      const row = page.locator(`#connectors tbody tr[data-id="${failing}"]`);
      expect(await row.getAttribute('class')).toContain('bad');
      expect(await row.locator('td.error').textContent()).toBe(failure);
      await page.click('.pager button:has-text("next")');
      await expect.poll(() => page.textContent('#page-info'), POLL).toBe('51–100 of 1,002');
      // the filter: the failure's words find the one connector
      await page.fill('#filter', failure.slice(0, 24));
      await expect.poll(() => page.textContent('#page-info'), POLL).toBe('1–1 of 1');
      await rows(page).first().click();
      await page.waitForSelector('#detail .last-error');
      expect(await page.textContent('#detail .last-error')).toContain(failure);
    });
  });

  it("draws a connector's lag chart from its runs, lists its runs, and replays a range", async () => {
    await withScreenshot(page, 'console-detail', async () => {
      await page.fill('#filter', '');
      await page.selectOption('#sort', 'lag:asc');
      await expect.poll(() => rows(page).first().getAttribute('data-id'), POLL).toBe(healthy);
      await rows(page).first().click();
      const line = page.locator('#detail svg.lag-chart polyline.lag-line');
      await line.waitFor();
      const points = ((await line.getAttribute('points')) ?? '').trim().split(/\s+/);
      expect(points.length).toBeGreaterThanOrEqual(4); // two runs, each a tooth
      expect(await page.locator('#detail table.runs tbody tr').count()).toBe(2);
      await page.click('#detail .replay button');
      await expect.poll(() => page.textContent('#detail .message'), POLL).toMatch(/^Replay: \d+ window\(s\)/);
      await page.screenshot({ path: `${tempDir('wharf-console-shot-')}/console.png`, fullPage: true });
    });
  });

  it('lists the reverse-ETL syncs and runs a preview: the SQL, the bound value, rows, calls, rejections', async () => {
    await withScreenshot(page, 'console-preview', async () => {
      await page.waitForSelector('#syncs tr[data-sync]');
      await page.click('#syncs tr[data-sync] button:has-text("Run Query")');
      await page.waitForSelector('#preview pre.sql');
      expect(await page.textContent('#preview pre.sql')).toContain('$1');
      expect(await page.textContent('#preview')).toContain('bound: 0');
      expect(await page.textContent('#preview')).toContain('Rows (3)');
      expect(await page.locator('#preview table.rows tbody tr').count()).toBe(3);
      expect(await page.textContent('#preview')).toContain('Calls (2)');
      expect(await page.textContent('#preview ul.rejected')).toMatch(/row 3: .*userId/);
      await page.screenshot({ path: `${tempDir('wharf-console-shot-')}/preview.png`, fullPage: true });
    });
  });

  it('paints its first page of 1,002 connectors quickly (measured and reported, not asserted)', async () => {
    await withScreenshot(page, 'console-paint', async () => {
      await page.reload(); // the token is kept in this tab's sessionStorage
      await page.waitForFunction(() => performance.getEntriesByName('wharf:connectors').length > 0);
      const figures = await page.evaluate(() => ({
        firstContentfulPaintMs: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
        connectorsShownMs: performance.getEntriesByName('wharf:connectors')[0]!.startTime,
      }));
      console.log(
        `console first paint: ${Math.round(figures.firstContentfulPaintMs ?? -1)} ms (first contentful paint), ` +
          `first page of 1,002 connectors shown at ${Math.round(figures.connectorsShownMs)} ms`,
      );
      expect(figures.connectorsShownMs).toBeGreaterThan(0);
      expect(await rows(page).count()).toBe(50);
    });
  });
});
