/**
 * The inbound middleware over real HTTP on Express 5: open circuits, half-open trials,
 * time budgets, bulkheads, fallbacks, learned route keys, per-route overrides, metrics.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { type CircuitBreakerMiddleware, circuitBreaker, type StateChangeEvent } from '@perfstack/circuit-breaker';
import { createRegistry, setFallback } from '@perfstack/core';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { FakeClock } from './fake-clock.js';

const servers: TestServer[] = [];
const breakers: CircuitBreakerMiddleware[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(breakers.splice(0).map((b) => b.close()));
});

async function serve(app: express.Express): Promise<string> {
  const server = await listen(app as unknown as http.RequestListener);
  servers.push(server);
  return server.url;
}

function track(breaker: CircuitBreakerMiddleware): CircuitBreakerMiddleware {
  breakers.push(breaker);
  return breaker;
}

/** A gate the handler waits on, opened by the test. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

const circuitOpenBody = {
  type: 'urn:perfstack:problem:circuit-open',
  title: 'Service Unavailable',
  status: 503,
  detail: 'The route is failing; its circuit breaker is open. Retry later.',
  code: 'CIRCUIT_OPEN',
};

describe('open circuit over HTTP', () => {
  it('answers 503 CIRCUIT_OPEN with Retry-After counting down to half-open, then recovers', async () => {
    const clock = new FakeClock();
    const breaker = track(circuitBreaker({ failureThreshold: 2, resetTimeout: '30s', overload: false, clock }));
    const changes: StateChangeEvent[] = [];
    breaker.on('state-change', (e) => changes.push(e));
    let healthy = false;
    let handled = 0;
    const app = express();
    app.use(breaker);
    app.get('/users/:id', (req, res) => {
      handled++;
      if (healthy) res.json({ id: req.params.id });
      else res.status(500).json({ error: 'db down' });
    });
    const url = await serve(app);

    // The pattern is resolved before the router runs: the first two requests open "GET /users/:id".
    for (const id of [1, 2]) expect((await request(`${url}/users/${id}`)).status).toBe(500);
    expect(changes).toEqual([
      { name: 'GET /users/:id', from: 'closed', to: 'open', reason: 'consecutive-failures', at: clock.now() },
    ]);

    const open = await request(`${url}/users/4`);
    expect(open.status).toBe(503);
    expect(open.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(open.headers['cache-control']).toBe('no-store');
    expect(open.headers['retry-after']).toBe('30');
    expect(open.json()).toEqual(circuitOpenBody);
    expect(handled).toBe(2);

    clock.advance(10_500);
    const later = await request(`${url}/users/5`);
    expect(later.status).toBe(503);
    expect(later.headers['retry-after']).toBe('20');

    const head = await request(`${url}/users/5`, { method: 'HEAD' });
    expect(head.status).toBe(503);
    expect(head.body.length).toBe(0);

    clock.advance(19_500);
    healthy = true;
    const trial = await request(`${url}/users/6`);
    expect(trial.status).toBe(200);
    expect(trial.json()).toEqual({ id: '6' });
    expect(trial.headers['retry-after']).toBeUndefined();
    expect(changes.map((c) => `${c.from}->${c.to}:${c.reason}`)).toEqual([
      'closed->open:consecutive-failures',
      'open->half-open:reset-timeout',
      'half-open->closed:half-open-successes',
    ]);
    expect(breaker.snapshot().breakers.find((b) => b.name === 'GET /users/:id')).toEqual({
      name: 'GET /users/:id',
      state: 'closed',
      failures: 2,
      successes: 1,
      rejected: 3,
      timeouts: 0,
    });
  });

  it('half-open lets exactly halfOpenMaxTrials requests reach the app; the rest get 503 with Retry-After: 1', async () => {
    const clock = new FakeClock();
    const breaker = track(
      circuitBreaker({
        failureThreshold: 1,
        resetTimeout: 1000,
        halfOpenMaxTrials: 2,
        successThreshold: 2,
        overload: false,
        clock,
        routes: { '/work': {} },
      }),
    );
    let fail = true;
    let reached = 0;
    const release = gate();
    const app = express();
    app.use(breaker);
    app.get('/work', async (_req, res) => {
      reached++;
      if (fail) {
        res.status(503).end('down');
        return;
      }
      await release.opened;
      res.end('done');
    });
    const url = await serve(app);
    expect((await request(`${url}/work`)).status).toBe(503);
    expect(breaker.snapshot().breakers).toMatchObject([{ name: 'GET /work', state: 'open' }]);
    clock.advance(1000);
    fail = false;
    reached = 0;
    const trials = [request(`${url}/work`), request(`${url}/work`)];
    const { waitFor } = await import('../../../test/helpers/http.js');
    await waitFor(() => reached === 2);
    const third = await request(`${url}/work`);
    expect(third.status).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    expect(third.json<{ code: string }>().code).toBe('CIRCUIT_OPEN');
    release.open();
    const done = await Promise.all(trials);
    expect(done.map((r) => [r.status, r.text])).toEqual([
      [200, 'done'],
      [200, 'done'],
    ]);
    expect(reached).toBe(2);
    expect(breaker.snapshot().breakers).toMatchObject([{ name: 'GET /work', state: 'closed' }]);
  });

  it('a client that disconnects during a trial gives the trial back (no verdict)', async () => {
    const clock = new FakeClock();
    const breaker = track(
      circuitBreaker({ failureThreshold: 1, resetTimeout: 1000, overload: false, clock, routes: { '/t': {} } }),
    );
    let mode: 'fail' | 'hang' | 'ok' = 'fail';
    const app = express();
    app.use(breaker);
    app.get('/t', (_req, res) => {
      if (mode === 'fail') res.status(500).end();
      else if (mode === 'ok') res.end('ok');
    });
    const url = await serve(app);
    await request(`${url}/t`);
    clock.advance(1000);
    mode = 'hang';
    await expect(request(`${url}/t`, { timeout: 100 })).rejects.toThrow(/timed out/);
    const { waitFor } = await import('../../../test/helpers/http.js');
    mode = 'ok';
    await waitFor(async () => (await request(`${url}/t`)).status === 200);
    expect(breaker.snapshot().breakers[0]?.state).toBe('closed');
  });

  it('counts what isFailure says (here: 429 too, not 503)', async () => {
    const breaker = track(
      circuitBreaker({
        failureThreshold: 1,
        overload: false,
        routes: { '/a': {} },
        isFailure: (status) => status === 429,
      }),
    );
    let status = 503;
    const app = express();
    app.use(breaker);
    app.get('/a', (_req, res) => {
      res.status(status).end();
    });
    const url = await serve(app);
    expect((await request(`${url}/a`)).status).toBe(503);
    expect(breaker.snapshot().breakers[0]?.state).toBe('closed');
    status = 429;
    expect((await request(`${url}/a`)).status).toBe(429);
    expect(breaker.snapshot().breakers[0]?.state).toBe('open');
  });

  it("counts a thrown error (Express's error handler answers 500)", async () => {
    const breaker = track(circuitBreaker({ failureThreshold: 2, overload: false, routes: { '/throw': {} } }));
    const app = express();
    app.use(breaker);
    app.get('/throw', () => {
      throw new Error('bug');
    });
    app.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).json({ error: 'internal' });
    });
    const url = await serve(app);
    expect((await request(`${url}/throw`)).status).toBe(500);
    expect((await request(`${url}/throw`)).status).toBe(500);
    expect((await request(`${url}/throw`)).status).toBe(503);
  });
});

describe('fallbacks', () => {
  it('a stale fallback registered with setFallback answers instead of the 503 (stale-if-error)', async () => {
    const breaker = track(circuitBreaker({ failureThreshold: 1, overload: false, routes: { '/products': {} } }));
    const reasons: string[] = [];
    const app = express();
    // Stands in for the cache: it has a stale entry for the URL and lets the breaker use it.
    app.use((req, _res, next) => {
      setFallback(req, (res, reason) => {
        reasons.push(reason);
        res.statusCode = 200;
        res.setHeader('Content-Type', 'application/json');
        res.setHeader('X-Cache', 'STALE');
        res.end('{"products":["stale"]}');
        return true;
      });
      next();
    });
    app.use(breaker);
    app.get('/products', (_req, res) => {
      res.status(500).end();
    });
    const url = await serve(app);
    expect((await request(`${url}/products`)).status).toBe(500);
    const stale = await request(`${url}/products`);
    expect(stale.status).toBe(200);
    expect(stale.headers['x-cache']).toBe('STALE');
    expect(stale.headers['retry-after']).toBeUndefined();
    expect(stale.text).toBe('{"products":["stale"]}');
    expect(reasons).toEqual(['circuit-open']);
  });

  it('a fallback that declines leaves the 503 to the breaker', async () => {
    const breaker = track(circuitBreaker({ failureThreshold: 1, overload: false, routes: { '/p': {} } }));
    const app = express();
    app.use((req, _res, next) => {
      setFallback(req, () => false);
      next();
    });
    app.use(breaker);
    app.get('/p', (_req, res) => {
      res.status(500).end();
    });
    const url = await serve(app);
    await request(`${url}/p`);
    const open = await request(`${url}/p`);
    expect(open.status).toBe(503);
    expect(open.json()).toEqual(circuitOpenBody);
  });

  it('the fallback option answers when no stale entry does', async () => {
    const seen: string[] = [];
    const breaker = track(
      circuitBreaker({
        failureThreshold: 1,
        overload: false,
        routes: { '/f': {} },
        fallback: (_req, res, reason) => {
          seen.push(reason);
          res.statusCode = 200;
          res.end('degraded mode');
        },
      }),
    );
    const app = express();
    app.use(breaker);
    app.get('/f', (_req, res) => {
      res.status(500).end();
    });
    const url = await serve(app);
    await request(`${url}/f`);
    const answer = await request(`${url}/f`);
    expect([answer.status, answer.text]).toEqual([200, 'degraded mode']);
    expect(seen).toEqual(['circuit-open']);
  });
});

describe('time budget', () => {
  it('answers 504 TIMEOUT, discards the late response, keeps the connection sound and does not crash', async () => {
    const breaker = track(circuitBreaker({ timeout: 100, overload: false, failureThreshold: 5 }));
    const timeouts: unknown[] = [];
    breaker.on('timeout', (e) => timeouts.push(e));
    let lateError: unknown = 'not run';
    const app = express();
    app.use(breaker);
    app.get('/slow', (_req, res) => {
      setTimeout(() => {
        try {
          res.setHeader('X-Late', 'yes');
          res.status(200);
          res.write('late chunk');
          res.json({ late: true });
          res.writeHead(201);
          res.end('more');
          lateError = undefined;
        } catch (error) {
          lateError = error;
        }
      }, 250);
    });
    app.get('/fast', (_req, res) => {
      res.json({ fast: true });
    });
    const url = await serve(app);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const timedOut = await request(`${url}/slow`, { agent });
      expect(timedOut.status).toBe(504);
      expect(timedOut.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(timedOut.headers['x-late']).toBeUndefined();
      expect(timedOut.headers['retry-after']).toBeUndefined();
      expect(timedOut.json()).toEqual({
        type: 'urn:perfstack:problem:timeout',
        title: 'Gateway Timeout',
        status: 504,
        detail: 'The route did not answer within its time budget.',
        code: 'TIMEOUT',
      });
      expect(timedOut.body.length).toBe(Number(timedOut.headers['content-length']));
      const { waitFor } = await import('../../../test/helpers/http.js');
      await waitFor(() => lateError !== 'not run', 2000);
      expect(lateError).toBeUndefined();
      // Same keep-alive socket: a late write leaking onto it would corrupt this response.
      const next = await request(`${url}/fast`, { agent });
      expect(next.status).toBe(200);
      expect(next.json()).toEqual({ fast: true });
    } finally {
      agent.destroy();
    }
    expect(timeouts).toEqual([{ name: 'GET /slow', timeoutMs: 100 }]);
    expect(breaker.snapshot().breakers.find((b) => b.name === 'GET /slow')).toMatchObject({ failures: 1, timeouts: 1 });
  });

  it('a late error passed to Express after the 504 does not crash the process', async () => {
    const breaker = track(circuitBreaker({ timeout: 50, overload: false }));
    let lateDone = false;
    const app = express();
    app.use(breaker);
    app.get('/late-error', (_req, _res, next) => {
      setTimeout(() => {
        next(new Error('late failure'));
        lateDone = true;
      }, 120);
    });
    const url = await serve(app);
    const res = await request(`${url}/late-error`);
    expect(res.status).toBe(504);
    const { waitFor } = await import('../../../test/helpers/http.js');
    await waitFor(() => lateDone);
    await new Promise((r) => setTimeout(r, 20));
    const again = await request(`${url}/late-error`);
    expect(again.status).toBe(504);
  });

  it('a stale fallback answers a timeout (reason "timeout") and the late response is discarded', async () => {
    const breaker = track(circuitBreaker({ timeout: 60, overload: false }));
    const app = express();
    app.use((req, _res, next) => {
      setFallback(req, (res, reason) => {
        res.statusCode = 200;
        res.setHeader('X-Cache', 'STALE');
        res.end(`stale (${reason})`);
        return true;
      });
      next();
    });
    app.use(breaker);
    let wrote = false;
    app.get('/slow', (_req, res) => {
      setTimeout(() => {
        res.send('fresh but late');
        wrote = true;
      }, 150);
    });
    const url = await serve(app);
    const res = await request(`${url}/slow`);
    expect([res.status, res.headers['x-cache'], res.text]).toEqual([200, 'STALE', 'stale (timeout)']);
    const { waitFor } = await import('../../../test/helpers/http.js');
    await waitFor(() => wrote);
  });

  it('per-route overrides: only the configured route has a budget', async () => {
    const breaker = track(circuitBreaker({ overload: false, routes: { '/reports/:id': { timeout: 50 } } }));
    const app = express();
    app.use(breaker);
    const slow = (_req: express.Request, res: express.Response) => {
      setTimeout(() => res.end('done'), 120);
    };
    app.get('/reports/:id', slow);
    app.get('/other', slow);
    const url = await serve(app);
    expect((await request(`${url}/reports/7`)).status).toBe(504);
    const other = await request(`${url}/other`);
    expect([other.status, other.text]).toEqual([200, 'done']);
  });
});

describe('bulkhead', () => {
  it('runs maxConcurrent, queues maxQueue, turns the rest away with 503 OVERLOADED + Retry-After', async () => {
    const breaker = track(circuitBreaker({ overload: false, routes: { '/job': { maxConcurrent: 1, maxQueue: 1 } } }));
    const rejections: unknown[] = [];
    breaker.on('rejection', (e) => rejections.push(e));
    const order: string[] = [];
    const release = gate();
    const app = express();
    app.use(breaker);
    app.get('/job', async (req, res) => {
      order.push(`start ${req.query.n}`);
      await release.opened;
      order.push(`end ${req.query.n}`);
      res.end(`job ${req.query.n}`);
    });
    const url = await serve(app);
    const { waitFor } = await import('../../../test/helpers/http.js');
    const first = request(`${url}/job?n=1`);
    await waitFor(() => order.length === 1);
    const second = request(`${url}/job?n=2`);
    await new Promise((r) => setTimeout(r, 50));
    const third = await request(`${url}/job?n=3`);
    expect(third.status).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    expect(third.json()).toEqual({
      type: 'urn:perfstack:problem:overloaded',
      title: 'Service Unavailable',
      status: 503,
      detail: 'Too many requests for this route are in progress. Retry later.',
      code: 'OVERLOADED',
    });
    expect(order).toEqual(['start 1']);
    release.open();
    const answers = await Promise.all([first, second]);
    expect(answers.map((a) => a.text)).toEqual(['job 1', 'job 2']);
    expect(order).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
    expect(rejections).toEqual([{ name: 'GET /job', reason: 'bulkhead-full' }]);
    // A rejection by the bulkhead is no verdict on the route.
    expect(breaker.snapshot().breakers[0]).toMatchObject({ state: 'closed', failures: 0, successes: 2 });
  });

  it('a request whose budget runs out in the queue gets 504 without a verdict on the route', async () => {
    const clock = new FakeClock();
    const breaker = track(
      circuitBreaker({ overload: false, clock, routes: { '/busy': { maxConcurrent: 1, maxQueue: 1, timeout: 150 } } }),
    );
    let started = 0;
    const app = express();
    app.use(breaker);
    app.get('/busy', (_req, res) => {
      started++;
      setTimeout(() => res.end('late'), 400);
    });
    const url = await serve(app);
    const { waitFor } = await import('../../../test/helpers/http.js');
    const first = request(`${url}/busy`);
    await waitFor(() => started === 1);
    const queuedRequest = request(`${url}/busy`);
    await waitFor(() => clock.pending === 2);
    // Both budgets run out at once: the running request's first, then the queued one's.
    clock.advance(150);
    const queued = await queuedRequest;
    expect(queued.status).toBe(504);
    expect(queued.json<{ code: string }>().code).toBe('TIMEOUT');
    expect((await first).status).toBe(504);
    expect(started).toBe(1);
    // Only the request the app ran is a failure (a timeout); the queued one is no verdict.
    expect(breaker.snapshot().breakers[0]).toMatchObject({ failures: 1, timeouts: 1, successes: 0 });
  });

  it('close() answers queued requests with 503 OVERLOADED and lets later ones through', async () => {
    const breaker = circuitBreaker({ overload: false, routes: { '/q': { maxConcurrent: 1, maxQueue: 5 } } });
    const release = gate();
    let started = 0;
    const app = express();
    app.use(breaker);
    app.get('/q', async (_req, res) => {
      started++;
      await release.opened;
      res.end('ok');
    });
    const url = await serve(app);
    const { waitFor } = await import('../../../test/helpers/http.js');
    const first = request(`${url}/q`);
    await waitFor(() => started === 1);
    const queued = request(`${url}/q`);
    await new Promise((r) => setTimeout(r, 50));
    await breaker.close();
    const rejected = await queued;
    expect(rejected.status).toBe(503);
    release.open();
    expect((await first).status).toBe(200);
    expect((await request(`${url}/q`)).status).toBe(200);
  });
});

describe('route keys', () => {
  it('keys requests by method and full pattern from the first request, mounted routers included', async () => {
    const breaker = track(circuitBreaker({ failureThreshold: 2, overload: false }));
    const app = express();
    app.use(breaker);
    const api = express.Router();
    api.get('/items/:id', (_req, res) => {
      res.status(500).end();
    });
    app.use('/api', api);
    app.get('/users/me', (_req, res) => {
      res.end('me');
    });
    app.get('/users/:id', (_req, res) => {
      res.end('user');
    });
    const url = await serve(app);
    await request(`${url}/users/me`);
    await request(`${url}/users/1`);
    await request(`${url}/api/items/1`);
    await request(`${url}/api/items/3?x=1`);
    const open = await request(`${url}/API/items/4/`);
    expect(open.status).toBe(503);
    expect((await request(`${url}/users/me`)).text).toBe('me');
    expect((await request(`${url}/users/2`)).text).toBe('user');
    const names = breaker
      .snapshot()
      .breakers.map((b) => [b.name, b.state])
      .sort();
    expect(names).toEqual([
      ['GET /api/items/:id', 'open'],
      ['GET /users/:id', 'closed'],
      ['GET /users/me', 'closed'],
    ]);
  });

  it('caps the number of breakers (maxRoutes); requests of further routes are not guarded', async () => {
    const warnings: string[] = [];
    const breaker = track(
      circuitBreaker({ overload: false, maxRoutes: 2, logger: { warn: (m) => warnings.push(m), error() {} } }),
    );
    const app = express();
    app.use(breaker);
    for (const name of ['a', 'b', 'c', 'd']) {
      app.get(`/${name}/:id`, (_req, res) => {
        res.end(name);
      });
    }
    const url = await serve(app);
    for (const name of ['a', 'b', 'c', 'd']) {
      await request(`${url}/${name}/1`);
      await request(`${url}/${name}/2`);
    }
    expect(
      breaker
        .snapshot()
        .breakers.map((b) => b.name)
        .sort(),
    ).toEqual(['GET /a/:id', 'GET /b/:id']);
    expect(warnings.filter((w) => w.startsWith('CB_TOO_MANY_BREAKERS'))).toHaveLength(1);
  });

  it("routes overrides apply by '/pattern' to every method and by 'METHOD /pattern' to one", async () => {
    const breaker = track(
      circuitBreaker({
        failureThreshold: 5,
        overload: false,
        routes: { 'POST /jobs/:id': { failureThreshold: 1 }, '/tasks/:id': { failureThreshold: 2 } },
      }),
    );
    const app = express();
    app.use(breaker);
    app.all('/jobs/:id', (_req, res) => {
      res.status(500).end();
    });
    app.all('/tasks/:id', (_req, res) => {
      res.status(500).end();
    });
    const url = await serve(app);
    expect((await request(`${url}/jobs/1`, { method: 'POST' })).status).toBe(500);
    expect((await request(`${url}/jobs/1`, { method: 'POST' })).status).toBe(503);
    expect((await request(`${url}/jobs/1`)).status).toBe(500);
    expect((await request(`${url}/jobs/1`)).status).toBe(500);
    for (const method of ['GET', 'DELETE']) {
      expect((await request(`${url}/tasks/1`, { method })).status).toBe(500);
      expect((await request(`${url}/tasks/1`, { method })).status).toBe(500);
      expect((await request(`${url}/tasks/1`, { method })).status).toBe(503);
    }
    expect(
      breaker
        .snapshot()
        .breakers.map((b) => [b.name, b.state])
        .sort(),
    ).toEqual([
      ['DELETE /tasks/:id', 'open'],
      ['GET /jobs/:id', 'closed'],
      ['GET /tasks/:id', 'open'],
      ['POST /jobs/:id', 'open'],
    ]);
  });

  it('a custom key function decides the breaker', async () => {
    const breaker = track(
      circuitBreaker({
        failureThreshold: 1,
        overload: false,
        key: (req) => (req.headers['x-tenant'] as string | undefined) ?? undefined,
      }),
    );
    const app = express();
    app.use(breaker);
    app.get('/x', (req, res) => {
      res.status(req.headers['x-tenant'] === 'bad' ? 500 : 200).end();
    });
    const url = await serve(app);
    await request(`${url}/x`, { headers: { 'x-tenant': 'bad' } });
    expect((await request(`${url}/x`, { headers: { 'x-tenant': 'bad' } })).status).toBe(503);
    expect((await request(`${url}/x`, { headers: { 'x-tenant': 'good' } })).status).toBe(200);
  });

  it('circuitBreaker.route() on a route keys by its exact pattern from the first request', async () => {
    const guard = track(circuitBreaker.route({ failureThreshold: 1, resetTimeout: '5s' }));
    const app = express();
    app.get('/orders/:id', guard, (_req, res) => {
      res.status(502).end();
    });
    const url = await serve(app);
    expect((await request(`${url}/orders/1`)).status).toBe(502);
    const open = await request(`${url}/orders/2`);
    expect([open.status, open.headers['retry-after']]).toEqual([503, '5']);
    expect(guard.snapshot()).toEqual({
      breakers: [expect.objectContaining({ name: 'GET /orders/:id', state: 'open' })],
      overloaded: false,
      shed: 0,
    });
  });
});

describe('observability', () => {
  it('exports a state gauge and counters, reports health, and reset() closes breakers', async () => {
    const registry = createRegistry();
    const breaker = track(circuitBreaker({ failureThreshold: 1, overload: false, registry, routes: { '/m': {} } }));
    const app = express();
    app.use(breaker);
    app.get('/m', (_req, res) => {
      res.status(500).end();
    });
    const url = await serve(app);
    expect(breaker.health()).toEqual({ status: 'ok', open: [], overloaded: false });
    await request(`${url}/m`);
    await request(`${url}/m`);
    await request(`${url}/m`);
    const text = await registry.metrics();
    expect(text).toContain('perfstack_circuit_breaker_state{breaker="GET /m",state="open"} 1');
    expect(text).toContain('perfstack_circuit_breaker_state{breaker="GET /m",state="closed"} 0');
    expect(text).toContain('perfstack_circuit_breaker_short_circuits_total{breaker="GET /m"} 2');
    expect(breaker.health()).toEqual({
      status: 'degraded',
      detail: 'breakers not closed: GET /m',
      open: ['GET /m'],
      overloaded: false,
    });
    breaker.reset('GET /m');
    expect(breaker.health().status).toBe('ok');
    expect((await request(`${url}/m`)).status).toBe(500);
  });

  it('exempt paths are never guarded, even with their breaker open', async () => {
    const breaker = track(circuitBreaker({ failureThreshold: 1, overload: false, exempt: ['/health'] }));
    const app = express();
    app.use(breaker);
    app.get('/health', (_req, res) => {
      res.status(503).json({ status: 'down' });
    });
    app.get('/health/live', (_req, res) => {
      res.json({ status: 'ok' });
    });
    const url = await serve(app);
    for (let i = 0; i < 3; i++) expect((await request(`${url}/health`)).json()).toEqual({ status: 'down' });
    expect((await request(`${url}/health/live`)).status).toBe(200);
    expect(breaker.snapshot().breakers).toEqual([]);
  });

  it('a throwing listener does not break requests; it is logged once', async () => {
    const errors: string[] = [];
    const breaker = track(
      circuitBreaker({
        failureThreshold: 1,
        overload: false,
        routes: { '/l': {} },
        logger: { warn() {}, error: (m) => errors.push(m) },
      }),
    );
    breaker.on('state-change', () => {
      throw new Error('listener bug');
    });
    const app = express();
    app.use(breaker);
    app.get('/l', (_req, res) => {
      res.status(500).end();
    });
    const url = await serve(app);
    expect((await request(`${url}/l`)).status).toBe(500);
    expect((await request(`${url}/l`)).status).toBe(503);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^CB_LISTENER_THREW/);
  });
});

// Keep the types honest: the middleware is a plain node:http middleware.
const _typed: (req: IncomingMessage, res: ServerResponse, next: () => void) => void = circuitBreaker({
  overload: false,
});
void _typed;
