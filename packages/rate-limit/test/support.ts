/**
 * Shared test plumbing: an Express app around a limiter, a controllable clock, and the
 * two stores (memory; Redis on the shared test server under a unique prefix).
 */
import { createRegistry, createSharedRedis, type PerfstackLogger, type SharedRedis } from '@perfstack/core';
import { type RateLimiter, type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
import express from 'express';
import { listen, type TestServer } from '../../../test/helpers/http.js';
import { cleanPrefix, redisUrl, uniquePrefix } from '../../../test/helpers/redis.js';

/** A clock tests move by hand. */
export class FakeClock {
  now: number;
  constructor(start = 1_000_000) {
    this.now = start;
  }
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** A logger that keeps what it was told. */
export function memoryLogger(): PerfstackLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    warn: (message: string) => {
      lines.push(`warn ${message}`);
    },
    error: (message: string) => {
      lines.push(`error ${message}`);
    },
  };
}

/** The store a test runs on. */
export type StoreName = 'memory' | 'redis';

/** Opens what a store needs (a Redis connection under a fresh prefix) and cleans it up. */
export class StoreFixture {
  redis: SharedRedis | undefined;
  #url = '';
  #prefix = '';
  readonly #closers: Array<() => Promise<void>> = [];

  constructor(readonly store: StoreName) {}

  async open(): Promise<void> {
    if (this.store !== 'redis') return;
    this.#url = await redisUrl();
    this.#prefix = uniquePrefix('rl');
    this.redis = createSharedRedis({ url: this.#url, keyPrefix: this.#prefix, logger: memoryLogger() });
    await this.redis.connect();
  }

  /** Limiter options for this store. */
  options(extra: RateLimitOptions): RateLimitOptions {
    return {
      registry: createRegistry(),
      logger: memoryLogger(),
      ...extra,
      ...(this.redis ? { redis: this.redis } : {}),
    };
  }

  /** An Express app with `limiter` in front of `GET /` (answers `ok`) on a real port. */
  async serve(limiter: RateLimiter): Promise<TestServer> {
    const app = express();
    app.use(limiter);
    app.use((_req, res) => {
      res.send('ok');
    });
    const server = await listen(app as never);
    this.#closers.push(
      () => server.close(),
      () => limiter.close(),
    );
    return server;
  }

  async close(): Promise<void> {
    for (const close of this.#closers.splice(0).reverse()) await close();
    if (this.redis) {
      await this.redis.close();
      await cleanPrefix(this.#url, this.#prefix);
      this.redis = undefined;
    }
  }
}

/** Makes a limiter on a fixture. */
export function limiterOn(fixture: StoreFixture, options: RateLimitOptions): RateLimiter {
  return rateLimit(fixture.options(options));
}
