/**
 * One name per route, everywhere: the full route pattern through nested routers and
 * parameterised mounts (`app.use('/users/:uid', router)` + `router.get('/posts/:pid')` →
 * `/users/:uid/posts/:pid`) on Express 5, Express 4, @koa/router and node:http, in the
 * Prometheus labels of /metrics, the breaker keys and the dashboard's route table — never a
 * raw value — and the breaker guards a route from its first request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import Router from '@koa/router';
import express5 from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { type PerformanceStack, performanceStack } from 'perfstack';
import { performanceStack as koaStack } from 'perfstack/koa';
import { createListener, setRoute } from 'perfstack/node';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };
const stackOptions = {
  env: false,
  log: quiet,
  logger: { destination: { write() {} } },
  rateLimit: { limit: 100_000, window: '1m' },
  circuitBreaker: { failureThreshold: 2, resetTimeout: '30s' },
} as const;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function serve(listener: Parameters<typeof listen>[0]): Promise<string> {
  const server = await listen(listener);
  closers.push(() => server.close());
  return server.url;
}

const POSTS = '/users/:uid/posts/:pid';
const MEMBERS = '/orgs/:org/teams/:team/members/:mid';
const FAIL = '/users/:uid/fail';

/** Requests for five users, members of two orgs, then a failing route; returns the failing route's answers. */
async function exercise(url: string): Promise<number[]> {
  for (let uid = 1000; uid < 1005; uid++) {
    const res = await request(`${url}/users/${uid}/posts/7`);
    expect([res.status, res.json()]).toEqual([200, { post: '7' }]);
  }
  for (const org of ['acme', 'globex']) {
    const res = await request(`${url}/orgs/${org}/teams/t1/members/m${org.length}`);
    expect([res.status, res.json()]).toEqual([200, { member: `m${org.length}` }]);
  }
  const statuses: number[] = [];
  for (let uid = 1; uid <= 3; uid++) statuses.push((await request(`${url}/users/${uid}/fail`)).status);
  return statuses;
}

async function expectPatternsEverywhere(url: string, stack: PerformanceStack): Promise<void> {
  const metrics = (await request(`${url}/metrics`)).text;
  expect(metrics).toContain(`route="${POSTS}"`);
  expect(metrics).toContain(`route="${MEMBERS}"`);
  expect(metrics).toContain(`route="${FAIL}"`);
  expect(metrics).not.toMatch(/route="[^"]*(\/users\/\d|acme|globex)/);

  const names = (stack.layers.circuitBreaker?.snapshot().breakers ?? []).map((b) => [b.name, b.state]);
  expect(names).toEqual([
    [`GET ${POSTS}`, 'closed'],
    [`GET ${MEMBERS}`, 'closed'],
    [`GET ${FAIL}`, 'open'],
  ]);

  const snapshot = (await request(`${url}/dashboard/api/snapshot`)).json<{
    routes: Array<{ route: string; method: string; count: number }>;
  }>();
  const table = snapshot.routes.map((r) => [r.method, r.route, r.count]).sort();
  expect(table).toEqual(
    [
      ['GET', POSTS, 5],
      ['GET', MEMBERS, 2],
      ['GET', FAIL, 3],
    ].sort(),
  );
}

describe.each([
  ['Express 5', express5],
  ['Express 4', express4 as unknown as typeof express5],
])('%s', (_name, express) => {
  it('labels, breaker keys and the dashboard use the full pattern; the breaker guards from the first request', async () => {
    const stack = performanceStack(stackOptions);
    closers.push(() => stack.close());
    const app = express();
    app.use(stack);
    app.use('/dashboard', stack.dashboard());
    app.get('/metrics', stack.metrics());
    const posts = express.Router();
    posts.get('/posts/:pid', (req, res) => {
      res.json({ post: req.params.pid });
    });
    posts.get('/fail', (_req, res) => {
      res.status(500).json({ error: 'down' });
    });
    app.use('/users/:uid', posts);
    const members = express.Router();
    members.get('/members/:mid', (req, res) => {
      res.json({ member: req.params.mid });
    });
    const teams = express.Router();
    teams.use('/teams/:team', members);
    app.use('/orgs/:org', teams);
    const url = await serve(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);

    // failureThreshold 2: the first two requests of the route count, the third is refused.
    expect(await exercise(url)).toEqual([500, 500, 503]);
    await expectPatternsEverywhere(url, stack);
  });
});

describe('Koa (@koa/router, nested router under a parameterised prefix)', () => {
  it('labels, breaker keys and the dashboard use the full pattern; the breaker guards from the first request', async () => {
    const koa = koaStack(stackOptions);
    closers.push(() => koa.close());
    const app = new Koa();
    app.use(koa);
    app.use(koa.endpoints());
    const posts = new Router();
    posts.get('/posts/:pid', (ctx) => {
      ctx.body = { post: ctx.params.pid };
    });
    posts.get('/fail', (ctx) => {
      ctx.status = 500;
      ctx.body = { error: 'down' };
    });
    const members = new Router();
    members.get('/members/:mid', (ctx) => {
      ctx.body = { member: ctx.params.mid };
    });
    const teams = new Router();
    teams.use('/teams/:team', members.routes());
    const router = new Router();
    router.use('/users/:uid', posts.routes());
    router.use('/orgs/:org', teams.routes());
    app.use(router.routes());
    const url = await serve(createServer(app.callback()));

    expect(await exercise(url)).toEqual([500, 500, 503]);
    await expectPatternsEverywhere(url, koa.stack);
  });
});

describe('node:http', () => {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] as string;
    const post = /^\/users\/[^/]+\/posts\/([^/]+)$/.exec(path);
    const member = /^\/orgs\/[^/]+\/teams\/[^/]+\/members\/([^/]+)$/.exec(path);
    res.setHeader('content-type', 'application/json');
    if (post) res.end(JSON.stringify({ post: post[1] }));
    else if (member) res.end(JSON.stringify({ member: member[1] }));
    else if (/^\/users\/[^/]+\/fail$/.test(path)) {
      res.statusCode = 500;
      res.end(JSON.stringify({ error: 'down' }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  };
  const routeOf = (req: IncomingMessage): string | undefined => {
    const path = (req.url ?? '/').split('?')[0] as string;
    if (/^\/users\/[^/]+\/posts\/[^/]+$/.test(path)) return POSTS;
    if (/^\/orgs\/[^/]+\/teams\/[^/]+\/members\/[^/]+$/.test(path)) return MEMBERS;
    if (/^\/users\/[^/]+\/fail$/.test(path)) return FAIL;
    return undefined;
  };

  it('the route option names the pattern before the stack runs: guarded from the first request', async () => {
    const stack = performanceStack(stackOptions);
    closers.push(() => stack.close());
    const url = await serve(createListener(stack, handler, { route: routeOf }));
    expect(await exercise(url)).toEqual([500, 500, 503]);
    await expectPatternsEverywhere(url, stack);
  });

  it('setRoute inside the handler (the fallback): the first response counts on its route, later requests are guarded', async () => {
    const stack = performanceStack(stackOptions);
    closers.push(() => stack.close());
    const url = await serve(
      createListener(stack, (req, res) => {
        const pattern = routeOf(req);
        if (pattern !== undefined) setRoute(req, pattern);
        handler(req, res);
      }),
    );
    expect(await exercise(url)).toEqual([500, 500, 503]);
    await expectPatternsEverywhere(url, stack);
  });
});
