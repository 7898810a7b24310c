/**
 * The stack's endpoints (`/metrics`, `/health`, `/dashboard/...`) are exempt — no rate
 * limit, no access-log line, no timing (route metrics, Server-Timing) — exactly when the
 * framework routes the request to them: case changes and a trailing slash per the app's
 * `case sensitive routing` / `strict routing`, mounted sub-apps, the method of a route; on
 * Express 4, Express 5, Koa and node:http. Each row is a real exchange, and its observables
 * are checked together: who answered, and every exemption.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import Router from '@koa/router';
import express5 from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { type PerformanceStack, type PerformanceStackOptions, performanceStack } from 'perfstack';
import { performanceStack as koaStack } from 'perfstack/koa';
import { createListener } from 'perfstack/node';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };

/** Collects access-log lines. */
class Lines {
  readonly urls: string[] = [];
  write(line: string): void {
    const parsed = JSON.parse(line) as { req?: { url?: string }; responseTime?: number };
    if (parsed.responseTime !== undefined && parsed.req?.url !== undefined) this.urls.push(parsed.req.url);
  }
}

type Answer = 'metrics' | 'health' | 'dashboard' | 'app';

interface Row {
  readonly method: string;
  readonly path: string;
  /** Who answers: one of the endpoints (exempt) or the app (limited, logged, timed). */
  readonly answer: Answer;
}

const servers: TestServer[] = [];
const stacks: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const s of stacks.splice(0)) await s.close();
});

function options(lines: Lines): PerformanceStackOptions {
  return { env: false, log: quiet, logger: { destination: lines }, rateLimit: { limit: 10_000, window: '1m' } };
}

/** What answered, read from the response alone. */
function answeredBy(status: number, headers: Record<string, unknown>, text: string): Answer {
  const type = String(headers['content-type'] ?? '');
  if (status === 200 && type.startsWith('text/plain') && text.includes('# HELP')) return 'metrics';
  if (text.startsWith('app:')) return 'app';
  // the snapshot carries the health too: read it first
  if (type.startsWith('application/json') && text.includes('"latency"') && text.includes('"breakers"')) {
    return 'dashboard';
  }
  if (type.startsWith('application/json') && /^\{"status":"(ok|degraded|down)"/.test(text)) return 'health';
  if (type.startsWith('text/html')) return 'dashboard';
  if (status === 302 && String(headers.location ?? '').endsWith('/')) return 'dashboard';
  return 'app';
}

async function check(base: string, lines: Lines, rows: readonly Row[]): Promise<void> {
  const failures: string[] = [];
  for (const [i, row] of rows.entries()) {
    const res = await request(`${base}${row.path}`, { method: row.method });
    const by = answeredBy(res.status, res.headers, res.text);
    const limited = res.headers['ratelimit-policy'] !== undefined;
    const timed = res.headers['server-timing'] !== undefined;
    // A marker request, logged for sure: once its line is there, the row's line would be too.
    const marker = `/__marker/${i}`;
    await request(`${base}${marker}`);
    await waitFor(() => lines.urls.includes(marker), 5000, 5);
    const logged = lines.urls.includes(row.path);
    const exempt = row.answer !== 'app';
    const got = { by, limited, timed, logged };
    const want = { by: row.answer, limited: !exempt, timed: !exempt, logged: !exempt };
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      failures.push(`${row.method} ${row.path}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  }
  expect(failures).toEqual([]);
}

const EXPRESS_DEFAULT: readonly Row[] = [
  { method: 'GET', path: '/metrics', answer: 'metrics' },
  { method: 'GET', path: '/Metrics', answer: 'metrics' },
  { method: 'GET', path: '/METRICS/', answer: 'metrics' },
  { method: 'GET', path: '/health/', answer: 'health' },
  { method: 'GET', path: '/HEALTH', answer: 'health' },
  { method: 'GET', path: '/health//', answer: 'app' },
  { method: 'GET', path: '/healthz', answer: 'app' },
  { method: 'POST', path: '/metrics', answer: 'app' },
  { method: 'GET', path: '/metrics?x=1', answer: 'metrics' },
  { method: 'GET', path: '/dashboard/api/snapshot', answer: 'dashboard' },
  { method: 'GET', path: '/Dashboard/api/snapshot', answer: 'dashboard' },
  { method: 'GET', path: '/DASHBOARD/', answer: 'dashboard' },
  { method: 'GET', path: '/dashboards', answer: 'app' },
  { method: 'GET', path: '/products', answer: 'app' },
];

const CASE_SENSITIVE: readonly Row[] = [
  { method: 'GET', path: '/metrics', answer: 'metrics' },
  { method: 'GET', path: '/Metrics', answer: 'app' },
  { method: 'GET', path: '/HEALTH', answer: 'app' },
  { method: 'GET', path: '/health/', answer: 'health' },
  { method: 'GET', path: '/Dashboard/api/snapshot', answer: 'app' },
  { method: 'GET', path: '/dashboard/api/snapshot', answer: 'dashboard' },
];

const STRICT: readonly Row[] = [
  { method: 'GET', path: '/metrics', answer: 'metrics' },
  { method: 'GET', path: '/metrics/', answer: 'app' },
  { method: 'GET', path: '/Health', answer: 'health' },
  { method: 'GET', path: '/health/', answer: 'app' },
  { method: 'GET', path: '/dashboard/api/snapshot', answer: 'dashboard' },
];

type ExpressFactory = typeof express5;

function expressApp(express: ExpressFactory, stack: PerformanceStack) {
  const app = express();
  app.use(stack);
  app.use('/dashboard', stack.dashboard());
  app.get('/metrics', stack.metrics());
  app.get('/health', stack.health());
  app.get('/__marker/:i', (_req, res) => {
    res.send('app: marker');
  });
  app.get('/products', (_req, res) => {
    res.send('app: products');
  });
  app.use((req, res) => {
    res.status(404).send(`app: no ${req.method} ${req.path}`);
  });
  return app;
}

describe.each([
  ['Express 5', express5 as ExpressFactory],
  ['Express 4', express4 as unknown as ExpressFactory],
])('%s', (_name, express) => {
  it('default routing: any case, one trailing slash, GET/HEAD for the routes, a prefix for the dashboard', async () => {
    const lines = new Lines();
    const stack = performanceStack(options(lines));
    stacks.push(stack);
    const server = await listen(expressApp(express, stack));
    servers.push(server);
    await check(server.url, lines, EXPRESS_DEFAULT);
    // HEAD has no body to tell who answered; it is exempt like GET
    const head = await request(`${server.url}/HEALTH`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['ratelimit-policy']).toBeUndefined();
    expect(head.headers['server-timing']).toBeUndefined();
  });

  it('case sensitive routing: a case change is an ordinary request', async () => {
    const lines = new Lines();
    const stack = performanceStack(options(lines));
    stacks.push(stack);
    const direct = express();
    direct.set('case sensitive routing', true);
    direct.use(stack);
    direct.use('/dashboard', stack.dashboard());
    direct.get('/metrics', stack.metrics());
    direct.get('/health', stack.health());
    direct.get('/__marker/:i', (_req, res) => {
      res.send('app: marker');
    });
    direct.use((req, res) => {
      res.status(404).send(`app: no ${req.method} ${req.path}`);
    });
    const directServer = await listen(direct);
    servers.push(directServer);
    await check(directServer.url, lines, CASE_SENSITIVE);
  });

  it('strict routing: a trailing slash is an ordinary request (the dashboard mount ignores strict, as use() does)', async () => {
    const lines = new Lines();
    const stack = performanceStack(options(lines));
    stacks.push(stack);
    const app = express();
    app.set('strict routing', true);
    app.use(stack);
    app.use('/dashboard', stack.dashboard());
    app.get('/metrics', stack.metrics());
    app.get('/health', stack.health());
    app.get('/__marker/:i', (_req, res) => {
      res.send('app: marker');
    });
    app.use((req, res) => {
      res.status(404).send(`app: no ${req.method} ${req.path}`);
    });
    const server = await listen(app);
    servers.push(server);
    await check(server.url, lines, STRICT);
  });

  it('a sub-app mounted at a path: the stack and its endpoints inside it', async () => {
    const lines = new Lines();
    const stack = performanceStack(options(lines));
    stacks.push(stack);
    const app = express();
    app.use('/api', expressApp(express, stack));
    const server = await listen(app);
    servers.push(server);
    // The access line logs the full URL (originalUrl): the rows' paths are given in full.
    const rows: Row[] = [
      { method: 'GET', path: '/api/metrics', answer: 'metrics' },
      { method: 'GET', path: '/API/Metrics/', answer: 'metrics' },
      { method: 'GET', path: '/api/dashboard/api/snapshot', answer: 'dashboard' },
      { method: 'GET', path: '/api/products', answer: 'app' },
      { method: 'GET', path: '/api/metricsx', answer: 'app' },
    ];
    const failures: string[] = [];
    for (const row of rows) {
      const res = await request(`${server.url}${row.path}`, { method: row.method });
      const by = answeredBy(res.status, res.headers, res.text);
      const exempt = row.answer !== 'app';
      const limited = res.headers['ratelimit-policy'] !== undefined;
      if (by !== row.answer || limited === exempt) failures.push(`${row.path}: ${by}, limited ${limited}`);
    }
    await request(`${server.url}/api/__marker/0`);
    await waitFor(() => lines.urls.includes('/api/__marker/0'));
    expect(failures).toEqual([]);
    expect(lines.urls.filter((u) => !u.includes('__marker')).sort()).toEqual(['/api/metricsx', '/api/products']);
  });
});

const KOA_AND_NODE: readonly Row[] = [
  { method: 'GET', path: '/metrics', answer: 'metrics' },
  { method: 'GET', path: '/Metrics', answer: 'metrics' },
  { method: 'GET', path: '/metrics/', answer: 'metrics' },
  { method: 'GET', path: '/HEALTH/', answer: 'health' },
  { method: 'GET', path: '/health//', answer: 'app' },
  { method: 'POST', path: '/health', answer: 'app' },
  { method: 'GET', path: '/Dashboard/api/snapshot', answer: 'dashboard' },
  { method: 'GET', path: '/dashboard/api/snapshot', answer: 'dashboard' },
  { method: 'GET', path: '/dashboardx', answer: 'app' },
  { method: 'GET', path: '/products', answer: 'app' },
];

describe('Koa', () => {
  it('stack.endpoints() routes with the matcher that exempts: any case, one trailing slash', async () => {
    const lines = new Lines();
    const stack = koaStack(options(lines));
    stacks.push(stack);
    const app = new Koa();
    const router = new Router();
    router.get('/__marker/:i', (ctx) => {
      ctx.body = 'app: marker';
    });
    app.use(stack);
    app.use(stack.endpoints());
    app.use(router.routes());
    app.use((ctx) => {
      ctx.status = 404;
      ctx.body = `app: no ${ctx.method} ${ctx.path}`;
    });
    const server = await listen(app.callback());
    servers.push(server);
    await check(server.url, lines, KOA_AND_NODE);
  });
});

describe('node:http', () => {
  it('createListener routes with the matcher that exempts: any case, one trailing slash', async () => {
    const lines = new Lines();
    const stack = performanceStack(options(lines));
    stacks.push(stack);
    const listener = createListener(stack, (req: IncomingMessage, res: ServerResponse) => {
      res.statusCode = req.url?.startsWith('/__marker/') ? 200 : 404;
      res.end(`app: ${req.method} ${req.url}`);
    });
    const server = await listen(listener);
    servers.push(server);
    await check(server.url, lines, KOA_AND_NODE);
  });
});

describe('logEndpoints', () => {
  it('puts the endpoints on the access log, still exempt from limits and timing', async () => {
    const lines = new Lines();
    const stack = performanceStack({ ...options(lines), logger: { destination: lines, logEndpoints: true } });
    stacks.push(stack);
    const server = await listen(expressApp(express5, stack));
    servers.push(server);
    const res = await request(`${server.url}/Metrics`);
    expect(res.status).toBe(200);
    expect(res.headers['ratelimit-policy']).toBeUndefined();
    await waitFor(() => lines.urls.includes('/Metrics'));
  });
});

describe('stack.endpointOf', () => {
  it('names the endpoint a path is routed to under given settings', () => {
    const stack = performanceStack({ env: false, log: quiet, logger: false });
    stacks.push(stack);
    const req = (method: string, url: string) => ({ method, url, headers: {} }) as IncomingMessage;
    expect(stack.endpointOf(req('GET', '/Metrics/'))).toBe('metrics');
    expect(stack.endpointOf(req('DELETE', '/Dashboard'))).toBe('dashboard');
    expect(stack.endpointOf(req('PUT', '/health'))).toBeUndefined();
    expect(stack.endpointOf(req('GET', '/'))).toBeUndefined();
  });
});
