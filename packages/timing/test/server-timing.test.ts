import { addServerTiming, type Middleware, onBeforeHead } from '@perfstack/core';
import { appTiming, type Timing } from '@perfstack/timing';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { closeAll, type FakeClock, fakeClock, quietTiming } from './support.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await closeAll();
});

/** A stand-in for the cache layer: marks the response and adds its own Server-Timing entry. */
const fakeCacheLayer: Middleware = (_req, res, next) => {
  onBeforeHead(res, () => res.setHeader('X-Cache', 'MISS'));
  addServerTiming(res, 'cache', undefined, 'miss');
  next();
};

async function serve(t: Timing, clock?: FakeClock, extra: Middleware[] = []): Promise<TestServer> {
  const app = express();
  app.use(t);
  for (const layer of extra) app.use(layer);
  app.get('/slow', (_req, res) => {
    clock?.advance(42.5);
    res.send('done');
  });
  app.get('/stream', (_req, res) => {
    res.write('a');
    clock?.advance(5);
    setTimeout(() => res.end('b'), 5);
  });
  return listen(app);
}

describe('Server-Timing', () => {
  it('adds total;dur= with the time to the head, measured on the clock', async () => {
    const clock = fakeClock();
    server = await serve(quietTiming({ clock }), clock);
    const res = await request(`${server.url}/slow`);
    expect(res.status).toBe(200);
    expect(res.text).toBe('done');
    expect(res.headers['server-timing']).toBe('total;dur=42.5');
    expect(res.headers['x-response-time']).toBeUndefined();
  });

  it('is sane on the real clock: a positive number of milliseconds, below the test timeout', async () => {
    server = await serve(quietTiming());
    const res = await request(`${server.url}/slow`);
    const match = /^total;dur=(\d+(?:\.\d+)?)$/.exec(String(res.headers['server-timing']));
    expect(match).not.toBeNull();
    const ms = Number(match?.[1]);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(10_000);
  });

  it("joins other layers' entries, with total last and app measured by appTiming()", async () => {
    const clock = fakeClock();
    server = await serve(quietTiming({ clock }), clock, [fakeCacheLayer, appTiming()]);
    const res = await request(`${server.url}/slow`);
    expect(res.headers['x-cache']).toBe('MISS');
    const header = String(res.headers['server-timing']);
    const entries = header.split(', ');
    expect(entries[0]).toBe('cache;desc=miss');
    expect(entries[1]).toMatch(/^app;dur=\d+(\.\d+)?$/);
    expect(entries[2]).toBe('total;dur=42.5');
    expect(entries).toHaveLength(3);
  });

  it('is measured on 404s answered by the framework and on streamed responses (at the head)', async () => {
    const clock = fakeClock();
    server = await serve(quietTiming({ clock }), clock);
    const missing = await request(`${server.url}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.headers['server-timing']).toBe('total;dur=0');
    const streamed = await request(`${server.url}/stream`);
    expect(streamed.text).toBe('ab');
    expect(streamed.headers['server-timing']).toBe('total;dur=0');
  });

  it('is absent with serverTiming: false', async () => {
    server = await serve(quietTiming({ serverTiming: false }));
    const res = await request(`${server.url}/slow`);
    expect(res.status).toBe(200);
    expect(res.headers['server-timing']).toBeUndefined();
  });
});

describe('X-Response-Time', () => {
  it('is added with responseTimeHeader: true, in milliseconds with three decimals', async () => {
    const clock = fakeClock();
    server = await serve(quietTiming({ clock, responseTimeHeader: true }), clock);
    const res = await request(`${server.url}/slow`);
    expect(res.headers['x-response-time']).toBe('42.500ms');
    expect(res.headers['server-timing']).toBe('total;dur=42.5');
  });

  it('can use another header name, and works without Server-Timing', async () => {
    const clock = fakeClock();
    server = await serve(quietTiming({ clock, responseTimeHeader: 'X-Elapsed', serverTiming: false }), clock);
    const res = await request(`${server.url}/slow`);
    expect(res.headers['x-elapsed']).toBe('42.500ms');
    expect(res.headers['x-response-time']).toBeUndefined();
    expect(res.headers['server-timing']).toBeUndefined();
  });
});

describe('requests answered by an inner layer or abandoned by the client', () => {
  it('measures a response an inner layer answers by itself (a cache hit), with its Server-Timing entry', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock });
    const cacheHit: Middleware = (_req, res) => {
      clock.advance(0.25);
      addServerTiming(res, 'cache', undefined, 'hit');
      res.setHeader('X-Cache', 'HIT');
      res.end('from cache');
    };
    server = await serve(t, clock, [cacheHit]);
    const res = await request(`${server.url}/slow`);
    expect(res.text).toBe('from cache');
    expect(res.headers['server-timing']).toBe('cache;desc=hit, total;dur=0.25');
    const w = t.snapshot().windows['1m'];
    expect([w.requests, w.cacheHits, w.cacheMisses, w.latency.max]).toEqual([1, 1, 0, 0.25]);
  });

  it('does not file a request whose client left before any head, and frees its in-flight slot', async () => {
    const t = quietTiming();
    const app = express();
    app.use(t);
    let arrived = false;
    app.get('/never', () => {
      arrived = true; // never answers
    });
    server = await listen(app);
    const abandoned = request(`${server.url}/never`, { timeout: 100 });
    await expect(abandoned).rejects.toThrow(/timed out/);
    expect(arrived).toBe(true);
    await waitFor(() => t.snapshot().inFlight === 0);
    const snapshot = t.snapshot();
    expect(snapshot.inFlight).toBe(0);
    expect(snapshot.totalRequests).toBe(0);
    expect(await t.registry.metrics()).not.toContain('http_requests_total{');
  });
});
