/// <reference lib="dom" />
/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core (no browser
 * download), against a real Express server whose every response carries helmet 8's default
 * Content-Security-Policy, with fake layers whose numbers grow as traffic is sent.
 */
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { buildApp } from './app.js';

const CHROMIUM = '/usr/bin/chromium';
// In CI the browser is installed by .ci/run: a missing one must fail the run, never skip it.
const BROWSER_REQUIRED = existsSync(CHROMIUM) || process.env.CI === 'true';
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

let browser: Browser;
let server: TestServer;
let built: ReturnType<typeof buildApp>;

beforeAll(async () => {
  built = buildApp({ instanceId: 'browser-test', streamInterval: 300, leakWatch: { interval: 300 } });
  server = await listen(http.createServer(built.app));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

afterAll(async () => {
  await browser?.close();
  await built?.board.close();
  await server?.close();
});

/** Opens a page that records every console error, page error, CSP violation and failed request. */
async function openPage(): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1800 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning')
      problems.push(`console.${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('requestfailed', (req) => {
    // The event stream is cut when the page closes; anything else failing is a problem.
    if (!req.url().endsWith('/api/stream')) problems.push(`requestfailed: ${req.url()} ${req.failure()?.errorText}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  await page.exposeFunction('__reportViolation', (text: string) => problems.push(`csp: ${text}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      (window as unknown as { __reportViolation(t: string): void }).__reportViolation(
        `${event.violatedDirective} blocked ${event.blockedURI}`,
      );
    });
  });
  return { page, problems };
}

const text = (page: Page, selector: string) =>
  page
    .locator(selector)
    .first()
    .textContent()
    .then((t) => t ?? '');
const updates = async (page: Page) => Number(await page.evaluate(() => document.body.dataset.updates ?? '0'));

describe('the dashboard page in chromium', () => {
  it.runIf(BROWSER_REQUIRED)(
    'renders under helmet CSP, updates live, escapes route names, and its actions work',
    async () => {
      const { page, problems } = await openPage();
      const response = await page.goto(`${server.url}/dashboard`);
      expect(response?.status()).toBe(200);
      expect(page.url()).toBe(`${server.url}/dashboard/`);
      expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
      await waitFor(async () => (await updates(page)) >= 1, 10_000);
      await expect.poll(() => text(page, '#conn'), { timeout: 10_000 }).toBe('live');
      expect(await text(page, '[data-kpi="rps"] .sub')).toMatch(/^0 total/);
      expect(await text(page, '#routes tbody')).toContain('No requests yet.');

      // Traffic: cached reads, a failing route that trips its breaker, a rejected upload,
      // and a route name an attacker chose.
      for (let i = 0; i < 40; i++) expect((await request(`${server.url}/api/items/${i % 8}`)).status).toBe(200);
      for (let i = 0; i < 4; i++) await request(`${server.url}/api/flaky`);
      await request(`${server.url}/upload`, { method: 'POST', body: 'x' });
      built.sources.rateLimit.blocked += 5;
      const evil = '<img src=x id=pwned onerror="window.__pwned=1">';
      built.sources.timing.record({ method: 'GET', route: evil, status: 404, ms: 2 });

      await expect.poll(() => text(page, '[data-kpi="rps"] .sub'), { timeout: 10_000 }).toMatch(/^45 total/);
      await expect.poll(() => text(page, '[data-kpi="hit"] .value')).toBe('80.0%');
      expect(await text(page, '[data-kpi="breakers"] .value')).toBe('1 / 1');
      expect(await text(page, '[data-kpi="blocked"] .value')).toBe('5');
      expect(await text(page, '[data-kpi="rejected"] .value')).toBe('1');
      expect(await text(page, '#routes tbody')).toContain('/api/items/:id');
      await expect.poll(() => page.locator('#routes td.route', { hasText: evil }).count()).toBe(1);
      expect(await page.locator('#pwned').count()).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      expect(await text(page, '#alerts')).toContain('Circuit breaker "GET /api/flaky" is open');
      expect(await page.locator('[data-breaker-row="GET /api/flaky"] [data-state]').getAttribute('data-state')).toBe(
        'open',
      );

      // Let the charts collect a few points, then keep a screenshot for people to look at.
      const seen = await updates(page);
      await waitFor(async () => (await updates(page)) >= seen + 3, 10_000);
      const pixels = await page.evaluate(() => {
        const canvas = document.querySelector('canvas[data-chart="rps"]') as HTMLCanvasElement;
        const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) painted++;
        return painted;
      });
      expect(pixels).toBeGreaterThan(1000);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });

      // Action: reset the breaker from its button.
      await page.click('button[data-breaker="GET /api/flaky"]');
      await expect.poll(() => text(page, '#toast')).toBe('Breaker GET /api/flaky reset to closed.');
      expect(built.sources.circuitBreaker.isOpen('GET /api/flaky')).toBe(false);
      await expect
        .poll(() => page.locator('[data-breaker-row="GET /api/flaky"] [data-state]').getAttribute('data-state'))
        .toBe('closed');
      await expect.poll(() => text(page, '[data-kpi="breakers"] .value')).toBe('0 / 1');

      // Action: invalidate a cache tag from the form.
      await page.fill('#invalidate-tags', 'items');
      await page.click('#invalidate-form button[type="submit"]');
      await expect.poll(() => text(page, '#toast')).toBe('Invalidated 8 entries tagged items.');
      expect(built.sources.cache.entries.size).toBe(0);

      // Action: reset a rate-limit key.
      await page.fill('#rl-key', '127.0.0.1');
      await page.click('#rl-form button[type="submit"]');
      await expect.poll(() => text(page, '#toast')).toBe('Reset the rate-limit counters of 127.0.0.1.');
      expect(built.sources.rateLimit.resets).toEqual(['127.0.0.1']);

      expect(problems).toEqual([]);
      await page.context().close();
    },
    60_000,
  );

  it.runIf(BROWSER_REQUIRED)(
    'shows the report and its recommendations, the leak watch, and a flame graph after a 1-second CPU profile',
    async () => {
      const { page, problems } = await openPage();
      await page.goto(`${server.url}/dashboard/`);
      await expect.poll(() => text(page, '#report-grade'), { timeout: 10_000 }).toMatch(/^[A-F]$/);
      expect(await text(page, '#report-score')).toMatch(/^\d{1,3}$/);
      expect(await page.locator('#report-rules li').count()).toBe(7);

      // The app gets slow: the report drops and names the route within a refresh or two.
      const before = Number(await text(page, '#report-score'));
      for (let i = 0; i < 60; i++) built.sources.timing.record({ method: 'GET', route: '/slow', status: 200, ms: 900 });
      await expect
        .poll(() => text(page, '#recommendations tbody'), { timeout: 10_000 })
        .toContain('`/slow` p95 900 ms against the 200 ms target');
      expect(Number(await text(page, '#report-score'))).toBeLessThan(before);
      expect(await page.locator('#recommendations tbody tr[data-rec="latency"]').count()).toBeGreaterThan(0);

      // The leak watch fills its table.
      await expect.poll(() => page.locator('#leaks tbody tr').count(), { timeout: 10_000 }).toBe(3);

      // A 1-second CPU profile from the page: the flame graph is drawn on canvas, the table filled.
      expect(await page.locator('#flame').isHidden()).toBe(true);
      await page.fill('#profile-seconds', '1');
      await page.click('#profile-cpu');
      await expect.poll(() => text(page, '#toast'), { timeout: 15_000 }).toBe('CPU profile done.');
      await expect.poll(() => page.locator('#flame').isVisible()).toBe(true);
      await expect.poll(() => page.evaluate(() => Number(document.body.dataset.flameFrames ?? '0'))).toBeGreaterThan(2);
      const painted = await page.evaluate(() => {
        const canvas = document.getElementById('flame') as HTMLCanvasElement;
        const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
        return n;
      });
      expect(painted).toBeGreaterThan(5000);
      expect(await page.locator('#top-functions tbody tr').count()).toBeGreaterThan(0);
      expect(await text(page, '#profile-download')).toMatch(/^Download cpu-.*\.cpuprofile \(/);
      await page.locator('#flame').hover({ position: { x: 20, y: 5 } });
      expect(await text(page, '#flame-info')).toMatch(/^\(root\) .*total/);

      await page.screenshot({ path: `${ARTIFACTS}dashboard-profile.png`, fullPage: true });
      expect(problems).toEqual([]);
      await page.context().close();
    },
    60_000,
  );

  it.runIf(BROWSER_REQUIRED)('a forged cross-site form cannot run an action', async () => {
    // Another origin (another port) serves a page that auto-submits a form to the dashboard.
    const evil = await listen((_req, res) => {
      res.setHeader('Content-Type', 'text/html');
      res.end(
        `<form id=f method=post action="${server.url}/dashboard/api/breakers/reset" enctype="text/plain">` +
          '<input name=\'{"x":"\' value=\'"}\'></form><script>document.getElementById("f").submit()</script>',
      );
    });
    try {
      for (let i = 0; i < 3; i++) await request(`${server.url}/api/flaky`);
      expect(built.sources.circuitBreaker.isOpen('GET /api/flaky')).toBe(true);
      const context = await browser.newContext();
      const page = await context.newPage();
      const answered = page.waitForResponse((res) => res.url().endsWith('/api/breakers/reset'));
      await page.goto(`${evil.url}/`);
      const res = await answered;
      expect(res.status()).toBe(403);
      expect(built.sources.circuitBreaker.isOpen('GET /api/flaky')).toBe(true);
      await context.close();
    } finally {
      await evil.close();
    }
  });
});
