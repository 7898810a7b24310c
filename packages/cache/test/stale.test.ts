import { cache, REFRESH_HEADER } from '@perfstack/cache';
import { HttpProblemError, sendProblem, tryFallback } from '@perfstack/core';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { cacheTracker, manualClock, request, serverTracker, waitFor } from './helpers.js';

const servers = serverTracker();
const { make } = cacheTracker(servers);

describe('stale-while-revalidate', () => {
  it('serves STALE at once and refreshes in the background, one refresh per key', async () => {
    const clock = manualClock();
    const c = make({ now: clock.now });
    const app = express();
    app.use(c);
    let version = 1;
    let originCalls = 0;
    const refreshMarkers: unknown[] = [];
    app.get('/news', cache({ ttl: '10s', staleWhileRevalidate: '1m' }), (req, res) => {
      originCalls++;
      refreshMarkers.push(req.headers[REFRESH_HEADER]);
      setTimeout(() => res.send(`news v${version}`), 30);
    });
    const { url } = await servers.listen(app);
    expect((await request(`${url}/news`)).text).toBe('news v1');
    version = 2;
    clock.advance(11_000);
    const stale = await Promise.all([request(`${url}/news`), request(`${url}/news`), request(`${url}/news`)]);
    for (const r of stale) {
      expect(r.headers['x-cache']).toBe('STALE');
      expect(r.text).toBe('news v1');
      expect(r.headers.age).toBe('11');
      expect(r.headers['server-timing']).toMatch(/desc=stale/);
    }
    await waitFor(async () => (await request(`${url}/news`)).headers['x-cache'] === 'HIT');
    const fresh = await request(`${url}/news`);
    expect(fresh.text).toBe('news v2');
    expect(fresh.headers.age).toBe('0');
    expect(originCalls).toBe(2);
    // The refresh marker is consumed by the cache and never reaches the app.
    expect(refreshMarkers).toEqual([undefined, undefined]);
    expect(c.stats().stale).toBeGreaterThanOrEqual(3);
  });

  it('a client cannot force a refresh by sending the marker header', async () => {
    const c = make();
    const app = express();
    app.use(c);
    let calls = 0;
    app.get('/x', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.send('x');
    });
    const { url } = await servers.listen(app);
    await request(`${url}/x`);
    const forged = await request(`${url}/x`, { headers: { [REFRESH_HEADER]: 'guess' } });
    expect(forged.headers['x-cache']).toBe('HIT');
    expect(calls).toBe(1);
  });

  it('takes the window from the response Cache-Control (RFC 5861) when the route does not set it', async () => {
    const clock = manualClock();
    const c = make({ now: clock.now });
    const app = express();
    app.use(c);
    app.get('/r', (_req, res) => res.set('Cache-Control', 'public, max-age=1, stale-while-revalidate=30').send('r'));
    const { url } = await servers.listen(app);
    await request(`${url}/r`);
    clock.advance(5000);
    expect((await request(`${url}/r`)).headers['x-cache']).toBe('STALE');
    clock.advance(60_000);
    await waitFor(async () => (await request(`${url}/r`)).headers['x-cache'] !== 'STALE');
  });
});

describe('stale-if-error', () => {
  async function setup(mode: { value: 'ok' | '500' | 'throw' | 'breaker' | 'timeout' }) {
    const clock = manualClock();
    const c = make({ now: clock.now });
    const app = express();
    app.use((_req, res, next) => {
      res.setHeader('X-Request-Id', 'req-1');
      next();
    });
    app.use(c);
    // A stand-in for the circuit breaker: it asks for a fallback before its 503/504.
    app.use((req, res, next) => {
      if (mode.value === 'breaker') {
        if (tryFallback(req, res, 'circuit-open')) return;
        sendProblem(res, new HttpProblemError({ code: 'CIRCUIT_OPEN', detail: 'open' }), req.method);
        return;
      }
      if (mode.value === 'timeout') {
        setTimeout(() => {
          if (tryFallback(req, res, 'timeout')) return;
          sendProblem(res, new HttpProblemError({ code: 'TIMEOUT', detail: 'late' }), req.method);
        }, 20);
        return;
      }
      next();
    });
    let calls = 0;
    app.get('/prices', cache({ ttl: '10s', staleIfError: '1h' }), (_req, res) => {
      calls++;
      if (mode.value === 'throw') throw new Error('database down');
      if (mode.value === '500') {
        res.status(500).json({ error: 'upstream failed' });
        return;
      }
      if (mode.value === 'timeout') return; // never answers
      res.set('X-Origin', 'yes').json({ price: 42 });
    });
    app.get('/plain', cache({ ttl: '10s' }), (_req, _res) => {
      throw new Error('no stale allowed here');
    });
    const { url } = await servers.listen(app);
    return { url, clock, calls: () => calls };
  }

  it('serves the stale entry when the origin answers 5xx', async () => {
    const mode = { value: 'ok' as 'ok' | '500' | 'throw' | 'breaker' | 'timeout' };
    const { url, clock, calls } = await setup(mode);
    await request(`${url}/prices`);
    clock.advance(60_000);
    mode.value = '500';
    const res = await request(`${url}/prices`);
    expect(res.status).toBe(200);
    expect(res.headers['x-cache']).toBe('STALE');
    expect(res.headers.age).toBe('60');
    expect(res.headers['x-origin']).toBe('yes');
    expect(res.headers['x-request-id']).toBe('req-1');
    expect(res.json()).toEqual({ price: 42 });
    expect(calls()).toBe(2);
  });

  it('serves the stale entry when the handler throws', async () => {
    const mode = { value: 'ok' as 'ok' | '500' | 'throw' | 'breaker' | 'timeout' };
    const { url, clock } = await setup(mode);
    await request(`${url}/prices`);
    clock.advance(60_000);
    mode.value = 'throw';
    const res = await request(`${url}/prices`);
    expect(res.status).toBe(200);
    expect(res.headers['x-cache']).toBe('STALE');
    expect(res.json()).toEqual({ price: 42 });
    // Without stale-if-error on the route, the error goes out as it is.
    expect((await request(`${url}/plain`)).status).toBe(500);
  });

  it('serves the stale entry when an inner breaker is open or times out (setFallback/tryFallback)', async () => {
    const mode = { value: 'ok' as 'ok' | '500' | 'throw' | 'breaker' | 'timeout' };
    const { url, clock } = await setup(mode);
    await request(`${url}/prices`);
    clock.advance(60_000);
    mode.value = 'breaker';
    const open = await request(`${url}/prices`);
    expect(open.status).toBe(200);
    expect(open.headers['x-cache']).toBe('STALE');
    expect(open.json()).toEqual({ price: 42 });
    mode.value = 'timeout';
    const late = await request(`${url}/prices`);
    expect(late.status).toBe(200);
    expect(late.headers['x-cache']).toBe('STALE');
    // Past the stale-if-error window, the breaker's own problem goes out.
    clock.advance(2 * 3_600_000);
    mode.value = 'breaker';
    const gone = await request(`${url}/prices`);
    expect(gone.status).toBe(503);
    expect(gone.headers['x-cache']).toBe('MISS');
    expect(gone.json<{ code: string }>().code).toBe('CIRCUIT_OPEN');
  });

  it('a 5xx without a stale entry passes through unchanged', async () => {
    const mode = { value: '500' as 'ok' | '500' | 'throw' | 'breaker' | 'timeout' };
    const { url } = await setup(mode);
    const res = await request(`${url}/prices`);
    expect(res.status).toBe(500);
    expect(res.json()).toEqual({ error: 'upstream failed' });
    expect(res.headers['x-cache']).toBe('MISS');
  });
});
