/**
 * Boundaries of each algorithm, on both stores, with a controllable clock: exactly `limit`
 * requests pass, the next is a 429 with the right Retry-After, and the window (or refill)
 * restores service at exactly the computed instant.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from '../../../test/helpers/http.js';
import { FakeClock, limiterOn, StoreFixture, type StoreName } from './support.js';

const STORES: StoreName[] = ['memory', 'redis'];

describe.each(STORES)('algorithms on the %s store', (store) => {
  let fixture: StoreFixture;
  let clock: FakeClock;
  beforeEach(async () => {
    fixture = new StoreFixture(store);
    await fixture.open();
    clock = new FakeClock(1_000_000);
  });
  afterEach(async () => {
    await fixture.close();
  });

  it('fixed window: limit pass, the next is 429, the window restores', async () => {
    const limiter = limiterOn(fixture, { limit: 3, window: '10s', clock: clock.read });
    const { url } = await fixture.serve(limiter);
    for (let i = 0; i < 3; i++) {
      const res = await request(url);
      expect(res.status).toBe(200);
      expect(res.headers['ratelimit-policy']).toBe('"3-in-10sec"; q=3; w=10');
      expect(res.headers.ratelimit).toBe(`"3-in-10sec"; r=${2 - i}; t=10`);
      expect(res.headers['retry-after']).toBeUndefined();
    }
    const blocked = await request(url);
    expect(blocked.status).toBe(429);
    expect(blocked.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(blocked.headers['retry-after']).toBe('10');
    expect(blocked.headers.ratelimit).toBe('"3-in-10sec"; r=0; t=10');
    expect(blocked.json()).toEqual({
      type: 'urn:perfstack:problem:rate-limited',
      title: 'Too Many Requests',
      status: 429,
      detail: 'Too many requests, please try again later.',
      code: 'RATE_LIMITED',
      limit: '3-in-10sec',
      retryAfter: 10,
    });
    clock.advance(9_999);
    const still = await request(url);
    expect(still.status).toBe(429);
    expect(still.headers['retry-after']).toBe('1');
    clock.advance(1);
    const restored = await request(url);
    expect(restored.status).toBe(200);
    expect(restored.headers.ratelimit).toBe('"3-in-10sec"; r=2; t=10');
    expect(limiter.stats()).toMatchObject({ allowed: 4, blocked: 2 });
  });

  it('sliding window: weighted two-window estimate, exact retry instant', async () => {
    const limiter = limiterOn(fixture, { limit: 4, window: '10s', algorithm: 'sliding-window', clock: clock.read });
    const { url } = await fixture.serve(limiter);
    for (let i = 0; i < 4; i++) expect((await request(url)).status).toBe(200);
    const blocked = await request(url);
    expect(blocked.status).toBe(429);
    // The current window holds 4: the next request fits once the previous window's weight
    // leaves room, 2.5 s into the next window: 4 × (10 − 2.5)/10 = 3, plus 1 = 4.
    expect(blocked.headers['retry-after']).toBe('13');
    clock.advance(10_000);
    const nextWindow = await request(url);
    expect(nextWindow.status).toBe(429);
    expect(nextWindow.headers['retry-after']).toBe('3');
    clock.advance(2_499);
    expect((await request(url)).status).toBe(429);
    clock.advance(1);
    const passes = await request(url);
    expect(passes.status).toBe(200);
    // Fully forgotten at the end of the window after the current one (1_030_000 − 1_012_500 ms).
    expect(passes.headers.ratelimit).toBe('"4-in-10sec"; r=0; t=18');
    expect((await request(url)).status).toBe(429);
    clock.advance(20_000);
    for (let i = 0; i < 4; i++) expect((await request(url)).status).toBe(200);
    expect((await request(url)).status).toBe(429);
  });

  it('token bucket: burst of capacity, then refill at limit per window', async () => {
    const limiter = limiterOn(fixture, { limit: 5, window: '10s', algorithm: 'token-bucket', clock: clock.read });
    const { url } = await fixture.serve(limiter);
    const first = await request(url);
    expect(first.headers.ratelimit).toBe('"5-in-10sec"; r=4; t=2');
    for (let i = 0; i < 4; i++) expect((await request(url)).status).toBe(200);
    const blocked = await request(url);
    expect(blocked.status).toBe(429);
    expect(blocked.headers['retry-after']).toBe('2');
    clock.advance(1_999);
    expect((await request(url)).status).toBe(429);
    clock.advance(1);
    expect((await request(url)).status).toBe(200);
    expect((await request(url)).status).toBe(429);
    clock.advance(10_000);
    for (let i = 0; i < 5; i++) expect((await request(url)).status).toBe(200);
    expect((await request(url)).status).toBe(429);
  });

  it('weighted cost: a request takes cost units, and a denied one takes none', async () => {
    const limiter = limiterOn(fixture, {
      limit: 10,
      window: '1m',
      clock: clock.read,
      cost: (req) => (req.url === '/heavy' ? 4 : 1),
    });
    const { url } = await fixture.serve(limiter);
    expect((await request(`${url}/heavy`)).headers.ratelimit).toBe('"10-in-1min"; r=6; t=60');
    expect((await request(`${url}/heavy`)).headers.ratelimit).toBe('"10-in-1min"; r=2; t=60');
    const refused = await request(`${url}/heavy`);
    expect(refused.status).toBe(429);
    expect(refused.headers.ratelimit).toBe('"10-in-1min"; r=2; t=60');
    expect((await request(`${url}/light`)).status).toBe(200);
    expect((await request(`${url}/light`)).status).toBe(200);
    expect((await request(`${url}/light`)).status).toBe(429);
  });

  it('blockDuration: a client over the limit stays blocked for the set time', async () => {
    const limiter = limiterOn(fixture, { limit: 2, window: '10s', blockDuration: '1m', clock: clock.read });
    const { url } = await fixture.serve(limiter);
    expect((await request(url)).status).toBe(200);
    expect((await request(url)).status).toBe(200);
    const blocked = await request(url);
    expect(blocked.status).toBe(429);
    expect(blocked.headers['retry-after']).toBe('60');
    clock.advance(30_000); // the window is long over, the block is not
    const stillBlocked = await request(url);
    expect(stillBlocked.status).toBe(429);
    expect(stillBlocked.headers['retry-after']).toBe('30');
    expect(stillBlocked.headers.ratelimit).toBe('"2-in-10sec"; r=0; t=30');
    clock.advance(30_000);
    expect((await request(url)).status).toBe(200);
  });

  it('several limits: each its own policy; all-or-nothing; global shared by all clients', async () => {
    const limiter = limiterOn(fixture, {
      clock: clock.read,
      keyGenerator: (req) => String(req.headers['x-user']),
      limits: [
        { limit: 2, window: '1s', name: 'burst' },
        { limit: 3, window: '1m', name: 'global', scope: 'global', algorithm: 'sliding-window' },
      ],
    });
    const { url } = await fixture.serve(limiter);
    const a1 = await request(url, { headers: { 'x-user': 'a' } });
    expect(a1.headers['ratelimit-policy']).toBe('"burst"; q=2; w=1, "global"; q=3; w=60');
    // The clock-aligned global window started at 960_000; it is forgotten at 1_080_000.
    expect(a1.headers.ratelimit).toBe('"burst"; r=1; t=1, "global"; r=2; t=80');
    expect((await request(url, { headers: { 'x-user': 'a' } })).status).toBe(200);
    const a3 = await request(url, { headers: { 'x-user': 'a' } });
    expect(a3.status).toBe(429);
    expect(a3.json<{ limit: string }>().limit).toBe('burst');
    // The refused request consumed nothing from the global limit:
    expect(a3.headers.ratelimit).toBe('"burst"; r=0; t=1, "global"; r=1; t=80');
    expect((await request(url, { headers: { 'x-user': 'b' } })).status).toBe(200);
    const b2 = await request(url, { headers: { 'x-user': 'b' } });
    expect(b2.status).toBe(429);
    expect(b2.json<{ limit: string }>().limit).toBe('global');
    expect(limiter.stats().limits.map((l) => [l.name, l.allowed, l.blocked])).toEqual([
      ['burst', 3, 1],
      ['global', 3, 1],
    ]);
  });

  it('getKey and resetKey show and clear a client', async () => {
    const limiter = limiterOn(fixture, { limit: 2, window: '1m', clock: clock.read, keyGenerator: () => 'k1' });
    const { url } = await fixture.serve(limiter);
    expect(await limiter.getKey('k1')).toBeUndefined();
    await request(url);
    await request(url);
    expect((await request(url)).status).toBe(429);
    expect(await limiter.getKey('k1')).toEqual({
      key: 'k1',
      limits: [{ name: '2-in-1min', limit: 2, used: 2, remaining: 0, resetTime: new Date(clock.now + 60_000) }],
    });
    await limiter.resetKey('k1');
    expect(await limiter.getKey('k1')).toBeUndefined();
    expect((await request(url)).status).toBe(200);
  });
});
