/// <reference lib="dom" />
/**
 * End to end: the Express example running the full preset, its dashboard opened in Debian's
 * Chromium (playwright-core, no browser download) under the preset's own helmet CSP. The
 * numbers must change after traffic, with no console errors and no CSP violations.
 * When CI=true and Chromium is missing, this fails rather than skips.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/express-api/app.js';
import { listen, request, type TestServer } from '../helpers/http.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const mustRun = existsSync(CHROMIUM) || process.env.CI === 'true';

let browser: Browser;
let server: TestServer;
let built: ReturnType<typeof createApp>;

beforeAll(async () => {
  if (!mustRun) return;
  built = createApp({
    redis: '',
    stackOptions: { env: false, log: { warn() {}, error() {} }, logger: { destination: { write() {} } } },
    catalogOptions: { latencyMs: 4, failureRate: 0 },
  });
  server = await listen(built.app);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await built?.stack.close();
});

describe('the example dashboard (full preset) in chromium', () => {
  it.runIf(mustRun)('shows live numbers from real traffic, under the preset CSP, without errors', async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1800 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.exposeFunction('__violation', (t: string) => problems.push(`csp: ${t}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        (window as unknown as { __violation(t: string): void }).__violation(`${e.violatedDirective} ${e.blockedURI}`),
      );
    });

    const response = await page.goto(`${server.url}/dashboard`);
    expect(response?.status()).toBe(200);
    // The preset's helmet CSP is in force on the page itself.
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    expect(response?.headers()['x-content-type-options']).toBe('nosniff');
    await expect.poll(() => page.locator('#conn').textContent(), { timeout: 10_000 }).toBe('live');
    const before = (await page.locator('[data-kpi="rps"] .sub').textContent()) ?? '';

    for (let i = 0; i < 30; i++) expect((await request(`${server.url}/products/${(i % 3) + 1}`)).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await request(`${server.url}/products`)).status).toBe(200);
    // `/` has no cache(): its requests are not cacheable lookups, so they change no hit ratio.
    for (let i = 0; i < 5; i++) expect((await request(`${server.url}/`)).status).toBe(200);

    await expect.poll(() => page.locator('[data-kpi="rps"] .sub').textContent(), { timeout: 10_000 }).not.toBe(before);
    await expect
      .poll(() => page.locator('#routes tbody').textContent(), { timeout: 10_000 })
      .toContain('/products/:id');
    // 35 reads, 4 misses (3 ids + the list): the hit ratio the page shows comes from the real cache.
    await expect
      .poll(() => page.locator('[data-kpi="hit"] .value').textContent(), { timeout: 10_000 })
      .toBe(`${((31 / 35) * 100).toFixed(1)}%`);
    expect(built.stack.cache.stats().hits).toBe(31);
    // The route table: a ratio for the cached route, "–" (not 0%) for the route with no lookups.
    const lastCell = (route: string) =>
      page
        .locator('#routes tbody tr')
        .filter({ has: page.locator('td.route', { hasText: new RegExp(`^${route}$`) }) })
        .locator('td')
        .last()
        .textContent();
    await expect.poll(() => lastCell('/'), { timeout: 10_000 }).toBe('–');
    expect(await lastCell('/products/:id')).toMatch(/^\d+\.\d%$/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}example-dashboard.png`, fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });
});
