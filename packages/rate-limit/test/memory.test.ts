/**
 * The memory store stays bounded: one million distinct client keys through the middleware
 * leave at most `maxKeys` entries and no heap growth once the store is full. (Heap is
 * measured, not time. The middleware is called directly: a million HTTP round trips would
 * only measure the HTTP stack.)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createRegistry } from '@perfstack/core';
import { rateLimit } from '@perfstack/rate-limit';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { listen, request } from '../../../test/helpers/http.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

describe('memory store', () => {
  it('1 million distinct keys: bounded by maxKeys, no heap growth once full', () => {
    const maxKeys = 50_000;
    const limiter = rateLimit({
      registry: createRegistry(),
      limit: 10,
      window: '1m',
      maxKeys,
      keyGenerator: (req) => req.headers['x-key'] as string,
    });
    const headers: Record<string, string> = { 'x-key': '' };
    const req = { headers, method: 'GET', url: '/', socket: {} } as unknown as IncomingMessage;
    const res = { headersSent: false, setHeader() {} } as unknown as ServerResponse;
    let passed = 0;
    const next = () => {
      passed++;
    };
    const run = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        headers['x-key'] = `client-${i}`;
        limiter(req, res, next);
      }
    };
    const baseline = heap();
    run(0, 200_000);
    const full = heap();
    run(200_000, 1_000_000);
    const after = heap();
    expect(passed).toBe(1_000_000);
    expect(limiter.stats().keys).toBe(maxKeys);
    // 800k more distinct keys once full: the heap does not grow (2 MB of slack for noise).
    expect(after - full).toBeLessThan(2 * 1024 * 1024);
    // And the full store is small: under 300 bytes per key.
    expect(full - baseline).toBeLessThan(maxKeys * 300);
    void limiter.close();
  });

  it('a blocked client stays blocked while 200,000 other keys pass (held keys are never evicted by other traffic)', async () => {
    const limiter = rateLimit({
      registry: createRegistry(),
      limit: 5,
      window: '1m',
      keyGenerator: (req) => req.headers['x-key'] as string,
    });
    const app = express();
    app.use(limiter);
    app.use((_req, res) => {
      res.send('ok');
    });
    const server = await listen(app as never);
    try {
      const victim = { headers: { 'x-key': 'victim' } };
      const first: number[] = [];
      for (let i = 0; i < 6; i++) first.push((await request(server.url, victim)).status);
      expect(first).toEqual([200, 200, 200, 200, 200, 429]);
      expect(limiter.stats()).toMatchObject({ keys: 1, heldKeys: 1 });
      // 200,000 other clients, one request each (twice the default maxKeys of 100,000).
      const headers: Record<string, string> = { 'x-key': '' };
      const req = { headers, method: 'GET', url: '/', socket: {} } as unknown as IncomingMessage;
      const res = { headersSent: false, setHeader() {} } as unknown as ServerResponse;
      let passed = 0;
      for (let i = 0; i < 200_000; i++) {
        headers['x-key'] = `other-${i}`;
        limiter(req, res, () => {
          passed++;
        });
      }
      expect(passed).toBe(200_000);
      expect(limiter.stats()).toMatchObject({ keys: 100_001, heldKeys: 1 });
      const after = await request(server.url, victim);
      expect(after.status).toBe(429);
      expect(after.headers.ratelimit).toMatch(/^"5-in-1min"; r=0; t=\d+$/);
      // The idle unblocked keys were the ones evicted: the oldest is gone, the newest kept.
      expect(await limiter.getKey('other-0')).toBeUndefined();
      expect((await limiter.getKey('other-199999'))?.limits[0]?.used).toBe(1);
    } finally {
      await server.close();
      await limiter.close();
    }
  });

  it('held keys are bounded on their own (maxHeldKeys): the least recently seen blocked key drops out first', async () => {
    const limiter = rateLimit({
      registry: createRegistry(),
      limit: 1,
      window: '1m',
      maxHeldKeys: 2,
      keyGenerator: (req) => req.headers['x-key'] as string,
    });
    const app = express();
    app.use(limiter);
    app.use((_req, res) => {
      res.send('ok');
    });
    const server = await listen(app as never);
    const status = async (key: string) => (await request(server.url, { headers: { 'x-key': key } })).status;
    try {
      // limit 1: one request leaves 0 remaining, so each key is held at once.
      expect([await status('a'), await status('b'), await status('c')]).toEqual([200, 200, 200]);
      expect(limiter.stats()).toMatchObject({ keys: 2, heldKeys: 2 });
      expect(await status('b')).toBe(429);
      expect(await status('c')).toBe(429);
      expect(await status('a')).toBe(200); // 'a' was the least recently seen held key
    } finally {
      await server.close();
      await limiter.close();
    }
  });
});
