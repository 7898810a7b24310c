/**
 * The `fleetBus` option: without Redis, a bus carries invalidations between processes (what
 * `perfstack/cluster` plugs in: the cluster hub relays each message to every other worker).
 * Here three caches, each behind its own real HTTP server, share an in-process bus with the
 * hub's semantics (a message goes to every member but its sender); the cluster transports
 * themselves are proven in test/reliability/node-cluster.test.ts and pm2-cluster.test.ts.
 */
import { type CacheFleetBus, cache, type ResponseCache } from '@perfstack/cache';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { cacheTracker, request, serverTracker, waitFor } from './helpers.js';

const servers = serverTracker();
const { make } = cacheTracker(servers);

/** A bus with the hub's semantics: every member but the sender hears a message. */
function hubBus() {
  const members: Array<Map<string, Set<(message: string) => void>>> = [];
  return {
    member(): CacheFleetBus {
      const mine = new Map<string, Set<(message: string) => void>>();
      members.push(mine);
      return {
        publish(channel, message) {
          for (const m of members) if (m !== mine) for (const l of m.get(channel) ?? []) l(message);
        },
        subscribe(channel, listener) {
          let set = mine.get(channel);
          if (set === undefined) {
            set = new Set();
            mine.set(channel, set);
          }
          set.add(listener);
          return { dispose: () => set.delete(listener) };
        },
      };
    },
  };
}

/** Every instance answers for one site, as the workers of one app do. */
const site = { headers: { host: 'shop.example' } };

async function instance(c: ResponseCache, name: string) {
  const app = express();
  app.use(c);
  app.get('/products', cache({ ttl: '5m', tags: ['products'] }), (_req, res) => {
    res.send(`products from ${name}`);
  });
  app.post('/products', (_req, res) => {
    res.status(201).send('created');
  });
  const { url } = await servers.listen(app);
  return url;
}

async function fleet() {
  const bus = hubBus();
  const caches = ['a', 'b', 'c'].map(() => make({ fleetBus: bus.member() }));
  const urls = await Promise.all(caches.map((c, i) => instance(c, String(i))));
  for (const url of urls) {
    expect((await request(`${url}/products`, site)).headers['x-cache']).toBe('MISS');
    expect((await request(`${url}/products`, site)).headers['x-cache']).toBe('HIT');
  }
  return { caches, urls };
}

describe('fleetBus: invalidations reach every process without Redis', () => {
  it('invalidate({ tags }) on one cache empties the others', async () => {
    const { caches, urls } = await fleet();
    expect(await (caches[0] as ResponseCache).invalidate({ tags: ['products'] })).toBe(1);
    for (const c of caches) expect(c.stats().entries).toBe(0);
    for (const url of urls) expect((await request(`${url}/products`, site)).headers['x-cache']).toBe('MISS');
  });

  it('invalidate({ key }) and ({ prefix }) travel too', async () => {
    const { caches, urls } = await fleet();
    await (caches[1] as ResponseCache).invalidate({ key: '/products' });
    for (const c of caches) expect(c.stats().entries).toBe(0);
    for (const url of urls) await request(`${url}/products`, site);
    for (const c of caches) expect(c.stats().entries).toBe(1);
    await (caches[2] as ResponseCache).invalidate({ prefix: '/prod' });
    for (const c of caches) expect(c.stats().entries).toBe(0);
  });

  it('a successful unsafe request on one process invalidates its URL on all (RFC 9111 §4.4)', async () => {
    const { caches, urls } = await fleet();
    const post = await request(`${urls[1]}/products`, { ...site, method: 'POST' });
    expect(post.status).toBe(201);
    expect(post.headers['x-cache']).toBe('BYPASS');
    await waitFor(() => caches.every((c) => c.stats().entries === 0));
    for (const url of urls) expect((await request(`${url}/products`, site)).headers['x-cache']).toBe('MISS');
  });

  it('a closed cache stops listening', async () => {
    const bus = hubBus();
    const a = make({ fleetBus: bus.member() });
    const b = make({ fleetBus: bus.member() });
    const urlB = await instance(b, 'b');
    await request(`${urlB}/products`, site);
    await b.close();
    await a.invalidate({ tags: ['products'] });
    expect(b.stats().entries).toBe(1);
  });
});
