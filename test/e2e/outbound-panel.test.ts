/// <reference lib="dom" />
/**
 * End to end, kept short: the dashboard's outbound panel in Debian's Chromium. A stack client
 * with a dead and a live origin, an offload pool and an adaptive limit: the page shows the
 * client's retry rate (KPI and panel), the origin that is out, the pool's queue, wait and
 * utilisation, and the route's current concurrency limit, with no console errors.
 */
import { createServer, type Server } from 'node:http';
import express from 'express';
import { type PerformanceStack, performanceStack } from 'perfstack';
import type { Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { BROWSER_REQUIRED, launchChromium } from '../helpers/browser.js';
import { listen, request, type TestServer } from '../helpers/http.js';

const TASK = new URL('../integration/fixtures/cpu-task.mjs', import.meta.url);

let browser: Browser | undefined;
const servers: TestServer[] = [];
let stack: PerformanceStack | undefined;

afterAll(async () => {
  await browser?.close();
  await Promise.all(servers.map((s) => s.close()));
  await stack?.close();
});

describe('the outbound panel in chromium', () => {
  it.runIf(BROWSER_REQUIRED)(
    'shows clients, origins out, the retry-rate KPI, offload pools and adaptive limits',
    async () => {
      const live = await listen(createServer((_req, res) => res.end('{"stock":7}')) as Server);
      servers.push(live);
      const gone = await listen(createServer() as Server);
      await gone.close();
      stack = performanceStack({
        env: false,
        log: { warn() {}, error() {} },
        logger: { destination: { write() {} } as never },
        // Process overload shedding (503 when the event loop lags a second, as it can while
        // Chromium starts on a loaded CI machine) is not what this page test is about.
        circuitBreaker: { adaptiveConcurrency: { initialLimit: 40 }, overload: false },
      });
      const inventory = stack.client('inventory', { origins: [gone.url, live.url], retry: { maxAttempts: 3 } });
      const thumbnails = stack.offload(TASK, { pool: 'thumbnails', maxThreads: 1, maxQueue: 3 });
      const app = express();
      app.use('/dashboard', stack.dashboard());
      app.use(stack);
      app.get('/stock', async (_req, res) => {
        const down = await inventory.request({ path: '/stock' });
        res.type('json').send(await down.body.text());
      });
      app.get('/thumb', thumbnails);
      const server = await listen(app);
      servers.push(server);

      browser = await launchChromium();
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      expect((await page.goto(`${server.url}/dashboard`))?.status()).toBe(200);
      await expect.poll(() => page.locator('#conn').textContent(), { timeout: 10_000 }).toBe('live');
      // The calls are made once the page is live: the retry rate is over the client's last 10 s,
      // and on a loaded machine launching Chromium can take longer than that.
      for (let i = 0; i < 5; i++) {
        const stock = await request(`${server.url}/stock`);
        expect(stock.status, stock.text).toBe(200);
      }
      expect((await request(`${server.url}/thumb?ms=5&id=a`)).status).toBe(200);
      const text = async (selector: string) => (await page.locator(selector).first().textContent()) ?? '';
      await expect.poll(() => text('[data-kpi="retries"] .value'), { timeout: 10_000 }).toBe('100.0%');
      expect(await text('[data-client="inventory"]')).toContain('retries 100.0%');
      // The KPI reads 100 % from the first call on; the dead origin's breaker opens after a few:
      // wait for the snapshot that shows it.
      await expect.poll(() => text(`[data-origin="${gone.url}"] [data-healthy]`), { timeout: 10_000 }).toBe('open');
      expect(await page.locator(`[data-origin="${gone.url}"] [data-healthy="false"]`).count()).toBe(1);
      expect(await page.locator(`[data-origin="${live.url}"] [data-healthy="true"]`).count()).toBe(1);
      expect(await text('[data-pool="thumbnails"] [data-queue-depth]')).toMatch(
        /^queue 0\/3 · wait p50 .+ p99 .+ · utilisation \d+\.\d+% · 0\/\d+ threads busy$/,
      );
      // In-flight drops when the response's 'close' fires, which can follow the client's read of
      // it: a snapshot taken between the two reads 1; the next one reads 0.
      await expect
        .poll(() => text('[data-breaker-row="GET /stock"] [data-concurrency-limit]'), { timeout: 10_000 })
        .toBe('limit 40 · 0 in flight');
      expect(await text('#alerts')).toContain('Outbound client "inventory" retries 100.0% of its calls');
      expect(problems).toEqual([]);
    },
    30_000,
  );
});
