/// <reference lib="dom" />
/**
 * End to end (issue 20, item 2): two instances of an Express app with the full preset on one
 * real Redis; A's dashboard opened in Debian's Chromium (playwright-core) under the preset's
 * helmet CSP. A recommendation that maps to a setting is applied from the page, the setting
 * changes on both instances, and the page's Undo restores both. No console errors, no CSP
 * violations. When CI=true and Chromium is missing, this fails rather than skips.
 */
import express from 'express';
import { cache, type PerformanceStack, performanceStack } from 'perfstack';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWSER_REQUIRED, launchChromium } from '../helpers/browser.js';
import { listen, request, type TestServer, waitFor } from '../helpers/http.js';
import { cleanPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';

const ROUTE_TTL = 'cache.routes./products/:id.ttl';

let browser: Browser;
const cleanups: Array<() => Promise<void>> = [];

async function instance(
  url: string,
  keyPrefix: string,
  id: string,
): Promise<{ stack: PerformanceStack; server: TestServer }> {
  const stack = performanceStack({
    env: false,
    log: { warn() {}, error() {} },
    logger: { destination: { write() {} } as never },
    redis: { url, keyPrefix },
    dashboard: { csrfSecret: 'e2e-settings-csrf-secret-0123456789', instanceId: id },
  });
  const app = express();
  app.use(stack);
  app.use('/dashboard', stack.dashboard());
  app.get('/products/:id', cache({ ttl: '30s', tags: ['products'] }), (req, res) => {
    res.json({ id: req.params.id });
  });
  const server = await listen(app);
  cleanups.push(async () => {
    await server.close();
    await stack.close();
  });
  return { stack, server };
}

beforeAll(async () => {
  if (!BROWSER_REQUIRED) return;
  browser = await launchChromium();
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await browser?.close();
});

describe('runtime settings from the dashboard page, in chromium', () => {
  it.runIf(BROWSER_REQUIRED)(
    'applies a recommendation on both instances, then undoes it on both',
    async () => {
      const url = await redisUrl();
      const keyPrefix = uniquePrefix('settings-e2e');
      cleanups.push(() => cleanPrefix(url, keyPrefix));
      const a = await instance(url, keyPrefix, 'a');
      const b = await instance(url, keyPrefix, 'b');
      await waitFor(() => Boolean(a.stack.redis?.isUp && b.stack.redis?.isUp));
      await waitFor(async () => {
        const reply = (await a.stack.redis?.client.sendCommand(['PUBSUB', 'NUMSUB', `${keyPrefix}settings`])) as [
          string,
          number,
        ];
        return Number(reply[1]) === 2;
      });
      // 25 different products on A: 25 misses, a 0% hit ratio → "raise the ttl of /products/:id".
      for (let i = 0; i < 25; i++) expect((await request(`${a.server.url}/products/${i}`)).status).toBe(200);

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
      const response = await page.goto(`${a.server.url}/dashboard/`);
      expect(response?.status()).toBe(200);
      expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");

      const proposal = page.locator(`[data-proposal="${ROUTE_TTL}"]`);
      await expect
        .poll(() => proposal.locator('code').textContent(), { timeout: 10_000 })
        .toBe(`${ROUTE_TTL}: 30s → 5m`);
      await proposal.locator('button[data-apply]').click();
      await waitFor(() => a.stack.settings.get(ROUTE_TTL) === 300_000 && b.stack.settings.get(ROUTE_TTL) === 300_000);
      expect(b.stack.cache.ttlOf('/products/:id')).toBe(300_000);
      const value = page.locator(`[data-setting="${ROUTE_TTL}"] td.value`);
      await expect.poll(() => value.textContent(), { timeout: 10_000 }).toBe('5m');
      const row = page.locator('#settings-audit tbody tr').first();
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain(`${ROUTE_TTL}: 30s → 5m`);
      expect(await row.textContent()).toContain('dashboard@127.0.0.1');
      expect(b.stack.settings.audit().map((e) => e.changes)).toEqual([
        [{ path: ROUTE_TTL, before: 30_000, after: 300_000 }],
      ]);

      await row.locator('button[data-undo]').click();
      await waitFor(() => a.stack.settings.get(ROUTE_TTL) === 30_000 && b.stack.settings.get(ROUTE_TTL) === 30_000);
      await expect.poll(() => value.textContent(), { timeout: 10_000 }).toBe('30s');
      await expect
        .poll(() => page.locator('#settings-audit tbody tr').nth(1).locator('td').last().textContent(), {
          timeout: 10_000,
        })
        .toBe('undone');
      expect(b.stack.settings.audit()).toHaveLength(2);
      expect(problems).toEqual([]);
      await context.close();
    },
    30_000,
  );
});
