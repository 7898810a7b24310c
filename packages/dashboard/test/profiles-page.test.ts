/// <reference lib="dom" />
/**
 * The continuous-profiles card in Debian's chromium (playwright-core), under helmet's CSP: the
 * listing, the newest profile's flame graph drawn on canvas, another one shown on click, the
 * download link, and the diff of two profiles — with no console error or CSP violation.
 */
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { CpuProfile } from '@perfstack/dashboard';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWSER_REQUIRED, launchChromium } from '../../../test/helpers/browser.js';
import { listen, type TestServer } from '../../../test/helpers/http.js';
import { buildApp } from './app.js';
import { syntheticProfile } from './synthetic-profile.js';

const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

let browser: Browser;
let server: TestServer;
let built: ReturnType<typeof buildApp>;

const profiles: CpuProfile[] = [
  syntheticProfile([
    ['handleOrders', 600],
    ['renderPage', 300],
    ['parseQuery', 100],
  ]),
  syntheticProfile([
    ['handleOrders', 400],
    ['renderPage', 600],
    ['compressBody', 1000],
  ]),
];

beforeAll(async () => {
  let i = 0;
  built = buildApp({
    leakWatch: false,
    streamInterval: 5000,
    instanceId: 'web-page-1',
    profiling: { continuous: { every: '1h', duration: '1s', record: async () => profiles[i++ % 2]! } },
  });
  server = await listen(http.createServer(built.app));
  await built.board.profiles!.runOnce();
  await built.board.profiles!.runOnce();
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await built?.board.close();
  await server?.close();
});

describe('continuous profiles on the page', () => {
  it.runIf(BROWSER_REQUIRED)('lists them, draws a flame graph, and diffs two', async () => {
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 1400 } })).newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(`${server.url}/dashboard/`);

    const rows = page.locator('#profiles tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    expect(await page.locator('#profiles-card').isVisible()).toBe(true);
    expect(await page.locator('#profiles-status').textContent()).toMatch(/^\(1\.00 s every 60 min, duty cycle 0\.03%/);
    expect(await rows.nth(0).locator('td').nth(1).textContent()).toBe('web-page-1');
    expect(await rows.nth(0).locator('td').nth(4).textContent()).toBe(
      'compressBody 50.0%, renderPage 30.0%, handleOrders 20.0%',
    );
    expect(await rows.nth(1).locator('td').nth(4).textContent()).toBe(
      'handleOrders 60.0%, renderPage 30.0%, parseQuery 10.0%',
    );

    // The newest profile's flame graph is drawn on its own: root + three functions.
    await expect.poll(() => page.evaluate(() => Number(document.body.dataset.profilesFlameFrames ?? '0'))).toBe(4);
    expect(await page.locator('#profiles-flame').isVisible()).toBe(true);
    const painted = await page.evaluate(() => {
      const canvas = document.getElementById('profiles-flame') as HTMLCanvasElement;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let colored = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) colored++;
      return colored;
    });
    expect(painted).toBeGreaterThan(1000);
    // The older one on click; the row is marked.
    await rows.nth(1).getByRole('button', { name: 'Flame graph' }).click();
    await expect.poll(() => rows.nth(1).getAttribute('class')).toBe('selected');
    expect(await page.locator('#profiles-flame-info').textContent()).toMatch(/^web-page-1 · 3 samples over 1\.00 s/);
    const href = await rows.nth(0).getByRole('link', { name: 'Download' }).getAttribute('href');
    expect(href).toMatch(/^api\/profiles\/p-[0-9a-z]+-[0-9a-f]{6}\?format=cpuprofile$/);

    // Before = the older, after = the newer (the defaults): compare.
    await page.click('#profiles-diff-run');
    const diffRows = page.locator('#profiles-diff tbody tr');
    await expect.poll(() => diffRows.count()).toBe(4);
    expect(await diffRows.evaluateAll((r) => r.map((x) => x.getAttribute('data-function')))).toEqual([
      'compressBody',
      'handleOrders',
      'parseQuery',
      'renderPage',
    ]);
    expect(await diffRows.nth(0).locator('td').nth(4).textContent()).toBe('+50.00 pts');
    expect(await diffRows.nth(1).locator('td').nth(4).textContent()).toBe('-40.00 pts');
    expect(await diffRows.nth(0).locator('td').nth(2).textContent()).toBe('0.0% (0.0 ms)');
    expect(await diffRows.nth(0).locator('td').nth(3).textContent()).toBe('50.0% (1.00 s)');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.locator('#profiles-card').screenshot({ path: `${ARTIFACTS}profiles-card.png` });
    expect(problems).toEqual([]);
  });
});
