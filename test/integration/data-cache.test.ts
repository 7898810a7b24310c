/**
 * `stack.data` on the preset, over real HTTP: an Express app whose routes use the data
 * cache and the response cache; one tag bus between them (no Redis: linked in the process);
 * `memoize` on the stack's data cache; the data cache next to the response cache in
 * `/metrics`, `/health`, the dashboard snapshot and the report.
 */

import { cache } from '@perfstack/cache';
import express from 'express';
import { Memoize, memoize, performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function app() {
  const stack = performanceStack({ env: false, log: quiet, logger: false, rateLimit: false });
  closers.push(() => stack.close());
  const loads = { product: 0, list: 0 };
  const products = stack.data.namespace('products');
  const server = express();
  server.use(stack);
  server.use('/dashboard', stack.dashboard());
  server.get('/metrics', stack.metrics());
  server.get('/health', stack.health());
  server.get('/products', cache({ ttl: '5m', tags: ['products'] }), (_req, res) => {
    loads.list++;
    res.json({ list: loads.list });
  });
  server.get('/products/:id', async (req, res) => {
    const product = await products.wrap(
      req.params.id,
      async () => {
        loads.product++;
        return { id: req.params.id, load: loads.product };
      },
      { ttl: '5m', tags: ['products'] },
    );
    res.json(product);
  });
  server.post('/products', async (_req, res) => {
    res.json({ removed: await stack.cache.invalidate({ tags: ['products'] }) });
  });
  const http: TestServer = await listen(server);
  closers.push(() => http.close());
  return { stack, url: http.url, loads };
}

describe('stack.data', () => {
  it('serves app data from the data cache and shares one tag bus with the response cache', async () => {
    const { stack, url, loads } = await app();
    expect((await request(`${url}/products/1`)).json()).toEqual({ id: '1', load: 1 });
    expect((await request(`${url}/products/1`)).json()).toEqual({ id: '1', load: 1 });
    expect((await request(`${url}/products`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${url}/products`)).headers['x-cache']).toBe('HIT');
    // stack.cache.invalidate clears the data entries with the tag too
    const removed = (await request(`${url}/products`, { method: 'POST' })).json<{ removed: number }>();
    expect(removed.removed).toBe(2);
    expect((await request(`${url}/products/1`)).json()).toEqual({ id: '1', load: 2 });
    expect((await request(`${url}/products`)).headers['x-cache']).toBe('MISS');
    // and stack.data.invalidate clears the response entries
    expect((await request(`${url}/products`)).headers['x-cache']).toBe('HIT');
    await stack.data.invalidate({ tags: ['products'] });
    expect((await request(`${url}/products`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${url}/products/1`)).json()).toEqual({ id: '1', load: 3 });
    expect(loads).toEqual({ product: 3, list: 3 });
  });

  it('is the default cache of memoize and @Memoize while the stack is open', async () => {
    const { stack } = await app();
    let calls = 0;
    const price = memoize(
      async (sku: string) => {
        calls++;
        return sku.length;
      },
      { key: (sku) => `price:${sku}` },
    );
    expect(await price('abc')).toBe(3);
    expect(await price('abc')).toBe(3);
    expect(calls).toBe(1);
    expect(await stack.data.get('price:abc')).toBe(3);
    expect(typeof Memoize).toBe('function');
  });

  it('shows the data cache next to the response cache: metrics, health, snapshot, report', async () => {
    const { url } = await app();
    await request(`${url}/products/1`);
    await request(`${url}/products/1`);
    await request(`${url}/products/2`);
    const metrics = (await request(`${url}/metrics`)).text;
    expect(metrics).toContain('perfstack_data_cache_hits_total{namespace="products"} 1');
    expect(metrics).toContain('perfstack_data_cache_misses_total{namespace="products"} 2');
    expect(metrics).toContain('perfstack_data_cache_entries 2');
    const health = (await request(`${url}/health`)).json<{ checks: Record<string, { status: string }> }>();
    expect(health.checks.data).toEqual({ status: 'ok', l2: 'none', entries: 2 });
    const snapshot = (await request(`${url}/dashboard/api/snapshot`)).json<{
      sources: Record<string, boolean>;
      data: Record<string, unknown>;
    }>();
    expect(snapshot.sources.data).toBe(true);
    expect(snapshot.data).toMatchObject({
      hits: 1,
      misses: 2,
      stale: 0,
      hitRatio: 1 / 3,
      entries: 2,
      evictions: 0,
      refreshesAhead: 0,
      warmStarted: 0,
      namespaces: { products: { hits: 1, misses: 2, stale: 0, hitRatio: 1 / 3, refreshesAhead: 0, warmStarted: 0 } },
    });
    expect(snapshot.data.bytes).toBeGreaterThan(0);
    const report = (await request(`${url}/dashboard/api/report?format=json`)).json<{ inputs: { data: unknown } }>();
    expect(report.inputs.data).toEqual({
      hits: 1,
      misses: 2,
      hitRatio: 1 / 3,
      refreshesAhead: 0,
      warmStarted: 0,
      namespaces: { default: { hitRatio: 0 }, products: { hitRatio: 1 / 3 } },
    });
  });

  it('can be turned off, and rejects bad options by name', async () => {
    const stack = performanceStack({ env: false, log: quiet, logger: false, data: false });
    closers.push(() => stack.close());
    expect(() => stack.data).toThrow('stack.data is off');
    expect(() => performanceStack({ env: false, log: quiet, logger: false, data: { ttl: 'never' } })).toThrow('ttl');
  });
});
