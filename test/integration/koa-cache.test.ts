/**
 * perfstack/koa's `cache()` is Koa middleware: it goes straight into @koa/router, behind the
 * Koa stack, and wrapping it in `toKoa()` too changes nothing.
 */
import Router from '@koa/router';
import Koa from 'koa';
import { cache, performanceStack, toKoa } from 'perfstack/koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';

let server: TestServer | undefined;
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await server?.close();
  await close?.();
  server = undefined;
  close = undefined;
});

describe("perfstack/koa's route cache()", () => {
  it('caches a @koa/router route as Koa middleware: MISS, then HIT with the stored body, route-labelled', async () => {
    const stack = performanceStack({ env: false, redis: false, logger: false });
    close = () => stack.close();
    let calls = 0;
    const router = new Router();
    const productsCache = cache({ ttl: '1m', tags: ['products'] });
    expect(toKoa(productsCache)).toBe(productsCache);
    router.get('/products/:id', productsCache, (ctx) => {
      calls += 1;
      ctx.body = { id: ctx.params.id, calls };
    });
    router.get('/wrapped', toKoa(cache({ ttl: '1m' })), (ctx) => {
      calls += 1;
      ctx.body = { wrapped: true, calls };
    });
    const app = new Koa();
    app.use(stack);
    app.use(router.routes());
    server = await listen(app.callback());

    const miss = await request(`${server.url}/products/7`);
    expect(miss.status).toBe(200);
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.json()).toEqual({ id: '7', calls: 1 });
    const hit = await request(`${server.url}/products/7`);
    expect(hit.status).toBe(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual({ id: '7', calls: 1 });
    expect(hit.headers['server-timing']).toMatch(/^cache;dur=[0-9.]+;desc=hit, total;dur=[0-9.]+$/);
    expect(stack.cache.stats().routes['/products/:id']).toMatchObject({ hits: 1, misses: 1 });

    expect((await request(`${server.url}/wrapped`)).headers['x-cache']).toBe('MISS');
    const wrapped = await request(`${server.url}/wrapped`);
    expect(wrapped.headers['x-cache']).toBe('HIT');
    expect(wrapped.json()).toEqual({ wrapped: true, calls: 2 });
    expect(calls).toBe(2);

    expect(await stack.cache.invalidate({ tags: ['products'] })).toBe(1);
    const again = await request(`${server.url}/products/7`);
    expect(again.headers['x-cache']).toBe('MISS');
    expect(again.json()).toEqual({ id: '7', calls: 3 });
  });
});
