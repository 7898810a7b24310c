/// <reference lib="dom" />
/**
 * End to end: the dashboard's data-cache panel in Debian's Chromium, next to the response
 * cache, under the preset's own CSP — per-namespace hit ratios from real `stack.data` traffic.
 * When CI=true and Chromium is missing, this fails rather than skips.
 */
import express from 'express';
import { performanceStack } from 'perfstack';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWSER_REQUIRED, launchChromium } from '../helpers/browser.js';
import { listen, request, type TestServer } from '../helpers/http.js';

let browser: Browser;
let server: TestServer;
let stack: ReturnType<typeof performanceStack>;

beforeAll(async () => {
  if (!BROWSER_REQUIRED) return;
  stack = performanceStack({ env: false, log: { warn() {}, error() {} }, logger: false, rateLimit: false });
  const catalog = stack.data.namespace('catalog');
  const app = express();
  app.use(stack);
  app.use('/dashboard', stack.dashboard());
  app.get('/items/:id', async (req, res) => {
    res.json(await catalog.wrap(req.params.id, () => ({ id: req.params.id }), { ttl: '5m' }));
  });
  server = await listen(app);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await stack?.close();
});

describe('the data-cache panel in chromium', () => {
  it.runIf(BROWSER_REQUIRED)('shows per-namespace hit ratios of stack.data, without errors', async () => {
    const page = await (await browser.newContext()).newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    // 1 miss then 3 hits on one key: 75 %
    for (let i = 0; i < 4; i++) expect((await request(`${server.url}/items/7`)).json()).toEqual({ id: '7' });
    const response = await page.goto(`${server.url}/dashboard`);
    expect(response?.status()).toBe(200);
    await expect
      .poll(() => page.locator('#data-namespaces tbody tr').filter({ hasText: 'catalog' }).textContent(), {
        timeout: 10_000,
      })
      .toBe('catalog13175.0%00');
    await expect.poll(() => page.locator('#data-stats').textContent(), { timeout: 10_000 }).toContain('Entries1');
    expect(problems).toEqual([]);
  });
});
