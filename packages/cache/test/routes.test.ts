import type http from 'node:http';
import Router from '@koa/router';
import { Cacheable, cache } from '@perfstack/cache';
import { compose, setRoute, toKoa, withMiddleware } from '@perfstack/core';
import express from 'express';
import Koa from 'koa';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { cacheTracker, request, serverTracker } from './helpers.js';

const servers = serverTracker();
const { make } = cacheTracker(servers);

describe('cache() route middleware', () => {
  it('works with no global layer (a shared in-memory instance)', async () => {
    const app = express();
    let calls = 0;
    app.get('/alone', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.send('alone');
    });
    const { url } = await servers.listen(app);
    expect((await request(`${url}/alone`)).headers['x-cache']).toBe('MISS');
    const hit = await request(`${url}/alone`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.text).toBe('alone');
    expect(calls).toBe(1);
  });

  it('uses the instance given as store, with its stats and invalidation', async () => {
    const c = make();
    const app = express();
    app.get('/mine', cache({ ttl: '1m', tags: ['mine'], store: c }), (_req, res) => res.send('mine'));
    const { url } = await servers.listen(app);
    await request(`${url}/mine`);
    expect((await request(`${url}/mine`)).headers['x-cache']).toBe('HIT');
    expect(c.stats().hits).toBe(1);
    expect(await c.invalidate({ tags: ['mine'] })).toBe(1);
    expect((await request(`${url}/mine`)).headers['x-cache']).toBe('MISS');
  });

  it('a custom key makes several URLs share one entry, under the global layer and alone', async () => {
    const c = make();
    const app = express();
    app.use(c);
    let calls = 0;
    const byLang = cache({ ttl: '1m', key: (req) => `lang:${req.headers['accept-language'] ?? 'en'}` });
    app.get('/a', byLang, (req, res) => {
      calls++;
      res.send(`hello in ${req.headers['accept-language'] ?? 'en'}`);
    });
    app.get('/b', byLang, (_req, res) => {
      calls++;
      res.send('b');
    });
    const { url } = await servers.listen(app);
    await request(`${url}/a`, { headers: { 'accept-language': 'fr' } });
    const shared = await request(`${url}/b`, { headers: { 'accept-language': 'fr' } });
    expect(shared.headers['x-cache']).toBe('HIT');
    expect(shared.text).toBe('hello in fr');
    expect(calls).toBe(1);
    expect(await c.invalidate({ key: 'lang:fr' })).toBe(1);
  });

  it('@Cacheable() caches a class method handler (TC39 decorator, compiled by TypeScript 5)', async () => {
    const c = make();
    // Vite's transformer (oxc) does not lower standard decorators yet, so the controller is
    // compiled by TypeScript itself, exactly as a user's build would compile it.
    const source = `
      export function defineController(Cacheable: any) {
        class Products {
          calls = 0;
          @Cacheable({ ttl: '5m', tags: ['products'] })
          list(_req: any, res: any) {
            this.calls++;
            res.setHeader('Content-Type', 'application/json');
            res.end(JSON.stringify({ products: ['a', 'b'], calls: this.calls }));
          }
          @Cacheable({ ttl: '5m' })
          async broken(_req: any, _res: any) {
            throw new Error('async failure');
          }
        }
        return Products;
      }`;
    const compiled = ts.transpileModule(source, {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, experimentalDecorators: false },
    }).outputText;
    expect(compiled).toContain('__esDecorate');
    const mod = (await import(`data:text/javascript;base64,${Buffer.from(compiled).toString('base64')}`)) as {
      defineController(decorator: typeof Cacheable): new () => {
        calls: number;
        list(req: http.IncomingMessage, res: http.ServerResponse, next: (e?: unknown) => void): void;
        broken(req: http.IncomingMessage, res: http.ServerResponse, next: (e?: unknown) => void): void;
      };
    };
    const Products = mod.defineController(Cacheable);
    const controller = new Products();
    const app = express();
    app.use(c);
    app.get('/products', (req, res, next) => controller.list(req, res, next));
    app.get('/broken', (req, res, next) => controller.broken(req, res, next));
    const { url } = await servers.listen(app);
    await request(`${url}/products`);
    const hit = await request(`${url}/products`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual({ products: ['a', 'b'], calls: 1 });
    expect(controller.calls).toBe(1);
    expect(await c.invalidate({ tags: ['products'] })).toBe(1);
    expect((await request(`${url}/broken`)).status).toBe(500);
    // Misuse is caught when the class is defined.
    expect(() => Cacheable({ ttl: 'soon' })).toThrow(/option "ttl"/);
    expect(() =>
      (Cacheable() as unknown as (v: unknown, ctx: { kind: string }) => unknown)(undefined, { kind: 'field' }),
    ).toThrow(/decorates class methods/);
  });

  it('leaves requests the global layer skipped alone', async () => {
    const c = make({ skip: (req) => req.url === '/health' });
    const app = express();
    app.use(c);
    app.get('/health', cache({ ttl: '1m' }), (_req, res) => res.send('ok'));
    const { url } = await servers.listen(app);
    await request(`${url}/health`);
    const again = await request(`${url}/health`);
    expect(again.headers['x-cache']).toBeUndefined();
  });
});

describe('the same cache under Koa and node:http', () => {
  it('Koa (toKoa) with @koa/router: global layer + route opt-in, HIT skips the app', async () => {
    const c = make();
    const app = new Koa();
    const router = new Router();
    let calls = 0;
    app.use(toKoa(c));
    router.get('/koa/:id', toKoa(cache({ ttl: '1m', tags: ['koa'] })), (ctx) => {
      calls++;
      ctx.set('Cache-Tag', 'koa-header');
      ctx.body = { id: ctx.params.id };
    });
    router.post('/koa/:id', (ctx) => {
      ctx.body = 'changed';
    });
    app.use(router.routes());
    const { url } = await servers.listen(app.callback());
    const miss = await request(`${url}/koa/1`);
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.headers['cache-tag']).toBeUndefined();
    const hit = await request(`${url}/koa/1`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual({ id: '1' });
    expect(hit.headers['content-type']).toBe('application/json; charset=utf-8');
    const head = await request(`${url}/koa/1`, { method: 'HEAD' });
    expect(head.headers['x-cache']).toBe('HIT');
    expect(head.body.length).toBe(0);
    expect(calls).toBe(1);
    expect(c.stats().routes['/koa/:id']).toMatchObject({ hits: 2, misses: 1 });
    await request(`${url}/koa/1`, { method: 'POST' });
    expect((await request(`${url}/koa/1`)).headers['x-cache']).toBe('MISS');
    expect(await c.invalidate({ tags: ['koa-header'] })).toBe(1);
  });

  it('node:http (withMiddleware): public max-age responses and route opt-in with compose', async () => {
    const c = make();
    let calls = 0;
    const products = compose([c, cache({ ttl: '1m' })]);
    const handler = withMiddleware(c, (req, res) => {
      calls++;
      setRoute(req, '/plain');
      res.setHeader('Cache-Control', 'public, max-age=60');
      res.setHeader('Content-Type', 'text/plain');
      res.end(`plain ${req.url}`);
    });
    const routed = withMiddleware(products, (_req, res) => {
      calls++;
      res.end('routed');
    });
    const { url } = await servers.listen((req, res) => (req.url === '/routed' ? routed(req, res) : handler(req, res)));
    await request(`${url}/p?x=1`);
    const hit = await request(`${url}/p?x=1`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.text).toBe('plain /p?x=1');
    expect(hit.headers['cache-control']).toBe('public, max-age=60');
    expect((await request(`${url}/p?x=2`)).headers['x-cache']).toBe('MISS');
    await request(`${url}/routed`);
    expect((await request(`${url}/routed`)).headers['x-cache']).toBe('HIT');
    expect(calls).toBe(3);
    expect(c.stats().routes['/plain']).toMatchObject({ hits: 1, misses: 2 });
  });
});
