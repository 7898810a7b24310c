/**
 * Process overload shedding with a real blocked event loop: the sampler sees the delay,
 * new requests get 503 OVERLOADED with Retry-After, exempt paths are still served, and
 * shedding stops once the loop is healthy again.
 */
import type http from 'node:http';
import { circuitBreaker, type OverloadEvent, type ShedEvent } from '@perfstack/circuit-breaker';
import { createRegistry } from '@perfstack/core';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { listen, request, waitFor } from '../../../test/helpers/http.js';

function blockEventLoop(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy: nothing else runs on this thread
  }
}

describe('overload shedding', () => {
  it('sheds new requests with 503 OVERLOADED while the event loop is blocked, except exempt paths', async () => {
    const registry = createRegistry();
    const breaker = circuitBreaker({
      overload: { maxEventLoopDelay: 100, sampleInterval: 300 },
      exempt: ['/health'],
      registry,
    });
    const shed: ShedEvent[] = [];
    const verdicts: OverloadEvent[] = [];
    breaker.on('shed', (e) => shed.push(e));
    breaker.on('overload', (e) => verdicts.push(e));
    const app = express();
    app.use(breaker);
    app.get('/api', (_req, res) => {
      res.json({ ok: true });
    });
    app.get('/health', (_req, res) => {
      res.json({ status: 'ok' });
    });
    const server = await listen(app as unknown as http.RequestListener);
    try {
      expect((await request(`${server.url}/api`)).status).toBe(200);
      blockEventLoop(450);
      await waitFor(() => breaker.snapshot().overloaded, 1000, 1);
      const [api, health] = await Promise.all([request(`${server.url}/api`), request(`${server.url}/health`)]);
      expect(api.status).toBe(503);
      expect(api.headers['retry-after']).toBe('1');
      expect(api.json()).toEqual({
        type: 'urn:perfstack:problem:overloaded',
        title: 'Service Unavailable',
        status: 503,
        detail: 'The server is overloaded. Retry later.',
        code: 'OVERLOADED',
      });
      expect([health.status, health.json()]).toEqual([200, { status: 'ok' }]);
      expect(breaker.health()).toMatchObject({ status: 'degraded', overloaded: true });
      expect(shed).toEqual([{ reason: 'event-loop-delay', path: '/api' }]);
      expect(verdicts[0]).toMatchObject({ overloaded: true, reason: 'event-loop-delay' });
      expect(verdicts[0]?.eventLoopDelayMs).toBeGreaterThan(100);
      expect(await registry.metrics()).toContain('perfstack_circuit_breaker_shed_total{reason="event-loop-delay"} 1');

      await waitFor(() => !breaker.snapshot().overloaded, 3000);
      expect((await request(`${server.url}/api`)).status).toBe(200);
      expect(breaker.snapshot()).toMatchObject({ overloaded: false, shed: 1 });
    } finally {
      await server.close();
      await breaker.close();
    }
  });

  it('sheds on heap used over its threshold', async () => {
    const breaker = circuitBreaker({ overload: { maxEventLoopDelay: false, maxHeapUsedBytes: 1, sampleInterval: 20 } });
    const app = express();
    app.use(breaker);
    app.get('/api', (_req, res) => {
      res.end('ok');
    });
    const server = await listen(app as unknown as http.RequestListener);
    try {
      await waitFor(() => breaker.snapshot().overloaded);
      const res = await request(`${server.url}/api`);
      expect(res.status).toBe(503);
      expect(res.json<{ code: string }>().code).toBe('OVERLOADED');
      expect(breaker.health()).toMatchObject({ status: 'degraded', detail: 'shedding load (heap-used)' });
    } finally {
      await server.close();
      await breaker.close();
    }
  });

  it('close() stops the sampler: later requests pass through', async () => {
    const breaker = circuitBreaker({ overload: { maxEventLoopDelay: false, maxRssBytes: 1, sampleInterval: 20 } });
    await waitFor(() => breaker.snapshot().overloaded);
    await breaker.close();
    expect(breaker.snapshot().overloaded).toBe(false);
    let passed = false;
    breaker({ url: '/x', headers: {}, method: 'GET' } as never, {} as never, () => {
      passed = true;
    });
    expect(passed).toBe(true);
  });
});
