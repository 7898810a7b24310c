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
import { describe, expect, it } from 'vitest';

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
});
