/**
 * Route patterns resolved before the router runs (core's `resolveRoute` / `getRoute`), on
 * Express 5, Express 4 and @koa/router: nested routers, parameterised mounts, methods, HEAD,
 * case-insensitive mounts, sub-apps, plain middleware and 404s — each read by a middleware
 * in front of the router, before any route ran, and compared with what the route itself sees.
 * Plus the error helpers the breaker relies on.
 */
import type { IncomingMessage } from 'node:http';
import Router from '@koa/router';
import {
  clientErrorStatus,
  gateExpressErrorHandlers,
  getRoute,
  problemSent,
  recordRequestError,
  requestErrorOf,
  resolveRoute,
  sendProblem,
  setRoute,
  toKoa,
} from '@perfstack/core';
import express5 from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

type Express = typeof express5;

/** An app whose first middleware records what `resolveRoute` answers before the router runs. */
function expressApp(express: Express, version: 4 | 5) {
  const seen: Array<string | undefined> = [];
  const app = express();
  app.use((req, _res, next) => {
    seen.push(resolveRoute(req));
    next();
  });
  app.use(express.json());
  const posts = express.Router();
  posts.get('/posts/:pid', (req, res) => {
    res.json({ inRoute: getRoute(req) });
  });
  posts.get('/', (_req, res) => {
    res.end('posts root');
  });
  const comments = express.Router({ mergeParams: true });
  comments.post('/comments/:cid', (_req, res) => {
    res.end('comment');
  });
  posts.use('/posts/:pid', comments);
  app.use('/users/:uid', posts);
  app.get(version === 4 ? '/items/:id?' : '/items{/:id}', (_req, res) => {
    res.end('items');
  });
  app.get(['/a', '/b/:x'], (_req, res) => {
    res.end('array');
  });
  app.get('/users/me', (_req, res) => {
    res.end('never reached: the mount above answers /users/:uid first');
  });
  const admin = express();
  admin.get('/panel/:section', (_req, res) => {
    res.end('admin');
  });
  app.use('/admin', admin);
  app.use('/proxy', (_req, res) => {
    res.end('proxied');
  });
  app.use((_req, res) => {
    res.status(404).end('catch-all');
  });
  return { app, seen };
}

describe.each([
  ['Express 5', express5, 5],
  ['Express 4', express4 as unknown as Express, 4],
] as const)('%s', (_name, express, version) => {
  const cases: Array<[method: string, path: string, pattern: string | undefined]> = [
    ['GET', '/users/1000/posts/7', '/users/:uid/posts/:pid'],
    ['GET', '/users/1001/posts/8?x=1', '/users/:uid/posts/:pid'],
    ['GET', '/USERS/1002/posts/9', '/users/:uid/posts/:pid'],
    ['GET', '/users/1003/posts/9/', '/users/:uid/posts/:pid'],
    ['HEAD', '/users/1004/posts/1', '/users/:uid/posts/:pid'],
    ['GET', '/users/5', '/users/:uid'],
    ['GET', '/users/me', '/users/:uid'],
    ['POST', '/users/5/posts/6/comments/7', '/users/:uid/posts/:pid/comments/:cid'],
    ['GET', '/items', version === 4 ? '/items/:id?' : '/items{/:id}'],
    ['GET', '/items/4', version === 4 ? '/items/:id?' : '/items{/:id}'],
    ['GET', '/a', '/a'],
    ['GET', '/b/2', '/b/:x'],
    // A method no route handles, plain middleware, a sub-app, a 404: no pattern before the router.
    ['DELETE', '/users/1/posts/2', undefined],
    ['GET', '/proxy/anything', undefined],
    ['GET', '/admin/panel/users', undefined],
    ['GET', '/nowhere', undefined],
  ];

  it.each(cases)('%s %s → %s', async (method, path, pattern) => {
    const { app, seen } = expressApp(express, version);
    const server = await listen(app as unknown as Parameters<typeof listen>[0]);
    servers.push(server);
    const res = await request(`${server.url}${path}`, { method });
    expect(seen).toEqual([pattern]);
    if (pattern !== undefined && method === 'GET' && pattern.includes('posts/:pid') && !pattern.includes('comments')) {
      // The route itself reads the same name.
      expect(res.json()).toEqual({ inRoute: pattern });
    }
  });

  it('an explicit setRoute wins; a sub-app route is named by its mount path once it ran', async () => {
    const app = express();
    const late: Array<string | undefined> = [];
    app.use((req, res, next) => {
      if (req.url === '/explicit') setRoute(req, '/chosen');
      res.on('finish', () => late.push(getRoute(req)));
      next();
    });
    app.get('/explicit', (_req, res) => {
      res.end();
    });
    const admin = express();
    admin.get('/panel/:section', (req, res) => {
      late.push(getRoute(req));
      res.end();
    });
    app.use('/admin', admin);
    const server = await listen(app as unknown as Parameters<typeof listen>[0]);
    servers.push(server);
    await request(`${server.url}/explicit`);
    await request(`${server.url}/admin/panel/users`);
    expect(late).toEqual(['/chosen', '/admin/panel/:section', '/admin/panel/:section']);
  });

  it('a sub-app under a parameterised mount is named from its first request, and resolved before the router after it', async () => {
    const app = express();
    const early: Array<string | undefined> = [];
    const late: Array<string | undefined> = [];
    app.use((req, res, next) => {
      early.push(resolveRoute(req));
      res.on('finish', () => late.push(getRoute(req)));
      next();
    });
    const tenant = express();
    const items = express.Router();
    items.get('/items/:id', (req, res) => {
      res.json({ inRoute: getRoute(req) });
    });
    tenant.use('/shop/:shop', items);
    tenant.get('/home', (_req, res) => {
      res.end('home');
    });
    app.use('/t/:tenant', tenant);
    const server = await listen(app as unknown as Parameters<typeof listen>[0]);
    servers.push(server);
    const first = await request(`${server.url}/t/acme/shop/s1/items/1`);
    expect(first.json()).toEqual({ inRoute: '/t/:tenant/shop/:shop/items/:id' });
    await request(`${server.url}/t/globex/shop/s2/items/2`);
    await request(`${server.url}/t/initech/home`);
    expect(early).toEqual([undefined, '/t/:tenant/shop/:shop/items/:id', '/t/:tenant/home']);
    expect(late).toEqual(['/t/:tenant/shop/:shop/items/:id', '/t/:tenant/shop/:shop/items/:id', '/t/:tenant/home']);
  });

  it('routes added after the first request are found (the cache follows the stack)', async () => {
    const app = express();
    const seen: Array<string | undefined> = [];
    app.use((req, _res, next) => {
      seen.push(resolveRoute(req));
      next();
    });
    const server = await listen(app as unknown as Parameters<typeof listen>[0]);
    servers.push(server);
    await request(`${server.url}/late/1`);
    app.get('/late/:id', (_req, res) => {
      res.end();
    });
    await request(`${server.url}/late/1`);
    expect(seen).toEqual([undefined, '/late/:id']);
  });
});

describe('Express 4 string patterns with optional parts', () => {
  it.each([
    ['/acd', '/ab?cd'],
    ['/abcd', '/ab?cd'],
    ['/abbbcd', '/ab+cd'],
    ['/about', '/about/'],
    ['/ABOUT/', '/about/'],
    ['/files', '/files/:name?'],
    ['/files/a.txt', '/files/:name?'],
  ])('%s → %s', async (path, pattern) => {
    const app = express4();
    const seen: Array<string | undefined> = [];
    app.use((req, _res, next) => {
      seen.push(resolveRoute(req));
      next();
    });
    for (const route of ['/ab?cd', '/ab+cd', '/about/', '/files/:name?']) {
      app.get(route, (_req, res) => {
        res.end(route);
      });
    }
    const server = await listen(app as unknown as Parameters<typeof listen>[0]);
    servers.push(server);
    const res = await request(`${server.url}${path}`);
    expect([res.text, seen]).toEqual([pattern, [pattern]]);
  });
});

describe('Koa (@koa/router)', () => {
  it.each([
    ['GET', '/users/3/posts/4', '/users/:uid/posts/:pid'],
    ['HEAD', '/users/3/posts/4', '/users/:uid/posts/:pid'],
    ['GET', '/a/1', '/a/:b'],
    ['POST', '/a/1', '/a/:b'],
    ['DELETE', '/a/1', undefined],
    ['GET', '/zz', undefined],
  ])('%s %s → %s', async (method, path, pattern) => {
    const app = new Koa();
    const seen: Array<string | undefined> = [];
    app.use(
      toKoa((req, _res, next) => {
        seen.push(resolveRoute(req));
        next();
      }),
    );
    const nested = new Router();
    nested.get('/posts/:pid', (ctx) => {
      ctx.body = 'post';
    });
    const router = new Router();
    router.use('/users/:uid', nested.routes());
    router.get('/a/:b', (ctx) => {
      ctx.body = 'a';
    });
    router.post('/a/:b', (ctx) => {
      ctx.body = 'a';
    });
    app.use(router.routes());
    const server = await listen(app.callback());
    servers.push(server);
    await request(`${server.url}${path}`, { method });
    expect(seen).toEqual([pattern]);
  });
});

describe('errors', () => {
  it.each([
    [{ status: 400 }, 400],
    [{ statusCode: 413 }, 413],
    [{ status: 415, statusCode: 500 }, 415],
    [{ status: 500 }, undefined],
    [{ status: '400' }, undefined],
    [{ status: 399 }, undefined],
    [new Error('plain'), undefined],
    [null, undefined],
    ['400', undefined],
  ])('clientErrorStatus(%j) → %s', (error, status) => {
    expect(clientErrorStatus(error)).toBe(status);
  });

  it('recordRequestError keeps the first error; problemSent reads what sendProblem marked', async () => {
    const req = {} as IncomingMessage;
    expect(requestErrorOf(req)).toBeUndefined();
    const first = new Error('first');
    recordRequestError(req, first);
    recordRequestError(req, new Error('second'));
    expect(requestErrorOf(req)).toBe(first);

    let code: string | undefined = 'not read';
    const server = await listen((_req, res) => {
      const before = problemSent(res);
      sendProblem(res, { code: 'RATE_LIMITED', detail: 'slow down' });
      code = `${before}→${problemSent(res)}`;
    });
    servers.push(server);
    expect((await request(server.url)).status).toBe(429);
    expect(code).toBe('undefined→RATE_LIMITED');
  });

  it('the Express error gate records the error, calls the handler unchanged, and drops errors after a stack answer', async () => {
    const app = express5();
    const handled: string[] = [];
    let recorded: unknown;
    app.use((req, _res, next) => {
      gateExpressErrorHandlers(req);
      next();
    });
    app.get('/fail', () => {
      throw Object.assign(new Error('bad input'), { status: 422 });
    });
    app.get('/answered', (_req, res, next) => {
      sendProblem(res, { code: 'PAYLOAD_TOO_LARGE', detail: 'too big' });
      next(new Error('late parser error'));
    });
    app.use((error: Error, req: express5.Request, res: express5.Response, _next: express5.NextFunction) => {
      handled.push(error.message);
      recorded = requestErrorOf(req);
      res.status(418).json({ handled: error.message });
    });
    const server = await listen(app as unknown as Parameters<typeof listen>[0]);
    servers.push(server);
    const failed = await request(`${server.url}/fail`);
    expect([failed.status, failed.json()]).toEqual([418, { handled: 'bad input' }]);
    expect((recorded as Error).message).toBe('bad input');
    const answered = await request(`${server.url}/answered`);
    expect(answered.status).toBe(413);
    expect(handled).toEqual(['bad input']);
    // The gate keeps the handler's arity, so Express still treats it as an error handler.
    const layer = (
      app as unknown as { router: { stack: Array<{ handle: { length: number; name: string } }> } }
    ).router.stack.at(-1);
    expect(layer?.handle.length).toBe(4);
  });
});
