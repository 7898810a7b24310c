/**
 * Adaptive concurrency (issue 19, item 3) over real HTTP, on a controllable clock.
 *
 * The proof: a route in front of a fixed-capacity fake backend (SLOTS slots, each request
 * holds one for SERVICE_MS of clock time, the excess waits in FIFO order) takes 4x its
 * capacity, open loop. Time moves only when the test advances the fake clock, one tick at a
 * time, after every request of the tick has reached the route (or was shed) and every answer
 * of the tick has closed, so each run is deterministic whatever the machine's load. Four
 * runs: no limit, a static limit too low, a static limit too high, the adaptive limit. The
 * numbers are printed; the assertions are on the adaptive limit's convergence (a band around
 * the capacity) and on ratios between the runs.
 */
import http from 'node:http';
import { type CircuitBreakerOptions, circuitBreaker, type RejectionEvent } from '@perfstack/circuit-breaker';
import { createRegistry } from '@perfstack/core';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { listen, request } from '../../../test/helpers/http.js';
import { FakeClock } from './fake-clock.js';

const SLOTS = 8;
const SERVICE_MS = 20;
const TICK_MS = 5;
/** 4x the backend's capacity (SLOTS / SERVICE_MS requests per ms). */
const ARRIVALS_PER_TICK = (4 * SLOTS * TICK_MS) / SERVICE_MS;
const TICKS = 120;
/** Latencies and throughput are read over the second half, after the limit has settled. */
const MEASURE_FROM_TICK = 60;

/** N slots; a job holds one for `serviceMs` of clock time; the excess waits in FIFO order. */
class FixedCapacityBackend {
  #busy = 0;
  readonly #queue: Array<() => void> = [];
  constructor(
    readonly clock: FakeClock,
    readonly slots: number,
    readonly serviceMs: number,
  ) {}
  run(done: () => void): void {
    if (this.#busy < this.slots) this.#start(done);
    else this.#queue.push(done);
  }
  #start(done: () => void): void {
    this.#busy++;
    this.clock.setTimeout(() => {
      this.#busy--;
      const next = this.#queue.shift();
      if (next !== undefined) this.#start(next);
      done();
    }, this.serviceMs);
  }
}

interface RunResult {
  readonly label: string;
  readonly served: number;
  readonly shed: number;
  readonly p50: number;
  readonly p99: number;
  readonly limit: number | undefined;
  readonly limits: number[];
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('the simulation did not settle');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function runOverload(label: string, options: CircuitBreakerOptions | undefined): Promise<RunResult> {
  const clock = new FakeClock(0);
  const backend = new FixedCapacityBackend(clock, SLOTS, SERVICE_MS);
  const breaker = options === undefined ? undefined : circuitBreaker({ overload: false, clock, ...options });
  let entered = 0;
  let rejected = 0;
  let completed = 0;
  let closedOk = 0;
  let measuring = false;
  const latencies: number[] = [];
  let served = 0;
  let shed = 0;
  const app = express();
  app.use((req, res, next) => {
    const arrivedAt = clock.now();
    res.on('close', () => {
      if (res.statusCode === 200) {
        closedOk++;
        if (measuring) {
          served++;
          latencies.push(clock.now() - arrivedAt);
        }
      } else {
        rejected++;
        if (measuring) shed++;
        if (res.statusCode !== 503) throw new Error(`unexpected ${res.statusCode} for ${req.url}`);
      }
    });
    next();
  });
  if (breaker !== undefined) app.use(breaker);
  app.get('/work', (_req, res) => {
    entered++;
    backend.run(() => {
      completed++;
      res.end('ok');
    });
  });
  const server = await listen(app as unknown as http.RequestListener);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const limits: number[] = [];
  let sent = 0;
  try {
    for (let tick = 0; tick < TICKS; tick++) {
      measuring = tick >= MEASURE_FROM_TICK;
      for (let i = 0; i < ARRIVALS_PER_TICK; i++) {
        sent++;
        http
          .get(`${server.url}/work`, { agent }, (res) => res.resume())
          .on('error', () => {
            // sockets cut at the end of the no-limit run
          });
      }
      // Every request of this tick is in the app or was answered, every finished one closed.
      await until(() => entered + rejected === sent && closedOk === completed);
      clock.advance(TICK_MS);
      await until(() => closedOk === completed);
      const limit = breaker?.snapshot().breakers[0]?.concurrency?.limit;
      if (limit !== undefined && tick % 10 === 9) limits.push(limit);
    }
  } finally {
    agent.destroy();
    await server.close();
    await breaker?.close();
  }
  latencies.sort((a, b) => a - b);
  return {
    label,
    served,
    shed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    limit: breaker?.snapshot().breakers[0]?.concurrency?.limit,
    limits,
  };
}

describe('adaptive concurrency', () => {
  it('converges near the capacity of a fixed-capacity backend under 4x overload and keeps p99 bounded', async () => {
    // Independent runs (each its own clock and server), run side by side to save wall time.
    const [none, low, high, adaptive] = await Promise.all([
      runOverload('no limit', undefined),
      runOverload(`static ${SLOTS / 2}`, { maxConcurrent: SLOTS / 2 }),
      runOverload(`static ${SLOTS * 4}`, { maxConcurrent: SLOTS * 4 }),
      runOverload('adaptive', { adaptiveConcurrency: { minRttInterval: false } }),
    ]);
    const lines = [none, low, high, adaptive].map(
      (r) =>
        `${r.label.padEnd(10)} served ${String(r.served).padStart(4)}  shed ${String(r.shed).padStart(4)}  ` +
        `p50 ${String(r.p50).padStart(5)} ms  p99 ${String(r.p99).padStart(5)} ms` +
        (r.limits.length > 0 ? `  limit every 50 ms: ${r.limits.join(' ')}` : ''),
    );
    console.log(
      `backend: ${SLOTS} slots × ${SERVICE_MS} ms (capacity ${(SLOTS * 1000) / SERVICE_MS} req/s), ` +
        `4x offered; second half of ${TICKS * TICK_MS} ms of clock time\n${lines.join('\n')}`,
    );
    // Converged: a few requests above the capacity, never far from it.
    expect(adaptive.limit).toBeGreaterThanOrEqual(SLOTS);
    expect(adaptive.limit).toBeLessThanOrEqual(2 * SLOTS);
    for (const limit of adaptive.limits.slice(6)) {
      expect(limit).toBeGreaterThanOrEqual(SLOTS);
      expect(limit).toBeLessThanOrEqual(2 * SLOTS);
    }
    // Bounded p99: at most twice the service time, a small fraction of the no-limit run's.
    expect(adaptive.p99).toBeLessThanOrEqual(2 * SERVICE_MS);
    expect(adaptive.p99 / none.p99).toBeLessThan(0.1);
    // ... while serving what the backend can: as much as without a limit.
    expect(adaptive.served / none.served).toBeGreaterThan(0.9);
    // A static limit below the capacity sheds too much: it serves far less.
    expect(low.served / adaptive.served).toBeLessThan(0.6);
    // A static limit above it lets the queue (and the latency) grow.
    expect(high.p99 / adaptive.p99).toBeGreaterThan(1.5);
    // Deterministic (clock-driven), but each tick waits for real HTTP: slow on a loaded machine.
  }, 120_000);

  it('sheds over the limit with 503 OVERLOADED problem+json and Retry-After, reports the limit in snapshot() and /metrics', async () => {
    const registry = createRegistry();
    const rejections: RejectionEvent[] = [];
    const breaker = circuitBreaker({
      overload: false,
      registry,
      adaptiveConcurrency: { initialLimit: 2, minLimit: 2, maxLimit: 2 },
    });
    breaker.on('rejection', (e) => rejections.push(e));
    const release: Array<() => void> = [];
    const app = express();
    app.use(breaker);
    app.get('/slow', (_req, res) => {
      release.push(() => res.json({ ok: true }));
    });
    const server = await listen(app as unknown as http.RequestListener);
    try {
      const held = [request(`${server.url}/slow`), request(`${server.url}/slow`)];
      await new Promise<void>((resolve) => {
        const check = () => (release.length === 2 ? resolve() : setTimeout(check, 5));
        check();
      });
      const over = await request(`${server.url}/slow`);
      expect(over.status).toBe(503);
      expect(over.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(over.headers['retry-after']).toBe('1');
      expect(over.json()).toEqual({
        type: 'urn:perfstack:problem:overloaded',
        title: 'Service Unavailable',
        status: 503,
        detail: 'The route is at its concurrency limit. Retry later.',
        code: 'OVERLOADED',
      });
      expect(rejections).toEqual([{ name: 'GET /slow', reason: 'concurrency-limit' }]);
      const breakers = breaker.snapshot().breakers;
      expect(breakers).toHaveLength(1);
      expect(breakers[0]?.state).toBe('closed');
      expect(breakers[0]?.concurrency).toEqual({
        name: 'GET /slow',
        limit: 2,
        inflight: 2,
        shed: 1,
        minRttMs: null,
        probing: false,
      });
      const metrics = await registry.metrics();
      expect(metrics).toContain('perfstack_concurrency_limit{limiter="GET /slow"} 2');
      expect(metrics).toContain('perfstack_concurrency_inflight{limiter="GET /slow"} 2');
      expect(metrics).toContain('perfstack_concurrency_limit_shed_total{limiter="GET /slow"} 1');
      for (const done of release) done();
      for (const res of await Promise.all(held)) expect(res.status).toBe(200);
      const after = breaker.snapshot().breakers[0]?.concurrency;
      expect(after?.inflight).toBe(0);
      expect(after?.minRttMs).toBeGreaterThan(0);
      // The shed request was no failure of the route.
      expect(breakers[0]?.failures).toBe(0);
    } finally {
      await server.close();
      await breaker.close();
    }
  });

  it("scope 'global' shares one limit across routes; a route's own options or false opt out", async () => {
    const registry = createRegistry();
    const breaker = circuitBreaker({
      overload: false,
      registry,
      adaptiveConcurrency: { scope: 'global', initialLimit: 1, minLimit: 1, maxLimit: 1 },
      routes: { '/free': { adaptiveConcurrency: false }, '/own': { adaptiveConcurrency: { maxLimit: 5 } } },
    });
    const release: Array<() => void> = [];
    const app = express();
    app.use(breaker);
    for (const path of ['/a', '/b', '/free', '/own']) {
      app.get(path, (_req, res) => {
        if (path === '/a') release.push(() => res.end('a'));
        else res.end(path);
      });
    }
    const server = await listen(app as unknown as http.RequestListener);
    try {
      const heldA = request(`${server.url}/a`);
      await new Promise<void>((resolve) => {
        const check = () => (release.length === 1 ? resolve() : setTimeout(check, 5));
        check();
      });
      const [b, free, own] = await Promise.all([
        request(`${server.url}/b`),
        request(`${server.url}/free`),
        request(`${server.url}/own`),
      ]);
      expect([b.status, (b.json() as { code: string }).code]).toEqual([503, 'OVERLOADED']);
      expect([free.status, free.text]).toEqual([200, '/free']);
      expect([own.status, own.text]).toEqual([200, '/own']);
      const byName = Object.fromEntries(breaker.snapshot().breakers.map((s) => [s.name, s.concurrency?.name ?? null]));
      expect(byName).toEqual({ 'GET /a': 'global', 'GET /b': 'global', 'GET /free': null, 'GET /own': 'GET /own' });
      const metrics = await registry.metrics();
      expect(metrics).toContain('perfstack_concurrency_limit{limiter="global"} 1');
      expect(metrics).toContain('perfstack_concurrency_limit_shed_total{limiter="global"} 1');
      expect(metrics).toContain('perfstack_concurrency_limit{limiter="GET /own"} 5');
      release[0]?.();
      expect((await heldA).status).toBe(200);
    } finally {
      await server.close();
      await breaker.close();
    }
  });
});
