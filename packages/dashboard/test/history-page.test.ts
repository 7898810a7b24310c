/// <reference lib="dom" />
/**
 * The page starts with the server's history instead of empty charts, and switches between
 * live, 15 minutes and 24 hours — in Debian's chromium (playwright-core), under helmet's CSP.
 */
import http from 'node:http';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWSER_REQUIRED, launchChromium } from '../../../test/helpers/browser.js';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import type { HistoryReport } from '../src/history.js';
import { buildApp } from './app.js';

let browser: Browser;
let server: TestServer;
let built: ReturnType<typeof buildApp>;

beforeAll(async () => {
  // A fine point every 100 ms, so the history has points before the page opens.
  built = buildApp({ leakWatch: false, streamInterval: 5000, history: { fineStep: 100, coarseStep: 500 } });
  server = await listen(http.createServer(built.app));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await built?.board.close();
  await server?.close();
});

describe('charts seeded from the history', () => {
  it.runIf(BROWSER_REQUIRED)('start filled, and switch to 15 min and 24 h', async () => {
    await waitFor(async () => {
      const res = await request(`${server.url}/dashboard/api/history`);
      return res.json<HistoryReport>().fine.points.length >= 5;
    });
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 1400 } })).newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(`${server.url}/dashboard/`);
    // Seeded before the first streamed snapshot (the stream's interval is 5 s here).
    await page.waitForFunction(() => Number(document.body.dataset.seeded ?? '0') >= 5, undefined, { timeout: 10_000 });
    const buttons = page.locator('#ranges button');
    expect(await buttons.allTextContents()).toEqual(['live', '15m', '24h']);
    expect(await buttons.evaluateAll((b) => b.map((x) => x.getAttribute('aria-pressed')))).toEqual([
      'true',
      'false',
      'false',
    ]);
    await page.click('#ranges button[data-range="24h"]');
    expect(await buttons.evaluateAll((b) => b.map((x) => x.getAttribute('aria-pressed')))).toEqual([
      'false',
      'false',
      'true',
    ]);
    // The chart's legend value reads from the coarse tier once it has a point.
    await page.click('#ranges button[data-range="15m"]');
    await page.waitForFunction(() => {
      const now = document.querySelector('[data-chart="rps"]')?.closest('section')?.querySelector('.head .muted');
      return (now?.textContent ?? '') !== '';
    });
    expect(problems).toEqual([]);
  });
});
