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
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

let browser: Browser;
let server: TestServer;
let built: ReturnType<typeof buildApp>;

beforeAll(async () => {
  built = buildApp({ instanceId: 'browser-test', streamInterval: 300 });
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
  it.runIf(existsSync(CHROMIUM))(
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

  it.runIf(existsSync(CHROMIUM))('a forged cross-site form cannot run an action', async () => {
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
