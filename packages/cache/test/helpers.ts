/** Shared bits of the cache tests. */
import { type ResponseCache, responseCache } from '@perfstack/cache';
import { silentLogger } from '@perfstack/core';
import { afterEach } from 'vitest';
import { listen, type TestServer } from '../../../test/helpers/http.js';

export { listen, request, waitFor } from '../../../test/helpers/http.js';

/** A clock the tests move by hand (the cache's `now` option). */
export function manualClock(start = Date.UTC(2026, 0, 1)) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** Closes every server made through {@link track}. */
export function serverTracker() {
  const servers: TestServer[] = [];
  return {
    async listen(listener: Parameters<typeof listen>[0]) {
      const server = await listen(listener);
      servers.push(server);
      return server;
    },
    async closeAll() {
      await Promise.all(servers.splice(0).map((s) => s.close()));
    },
  };
}

/**
 * Quiet caches made for one test, closed (with the test's servers) after each test:
 * `const { make } = cacheTracker(servers)` registers the afterEach itself.
 */
export function cacheTracker(servers: ReturnType<typeof serverTracker>) {
  const caches: ResponseCache[] = [];
  afterEach(async () => {
    await servers.closeAll();
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  return {
    make(options: Parameters<typeof responseCache>[0] = {}): ResponseCache {
      const c = responseCache({ logger: silentLogger, ...options });
      caches.push(c);
      return c;
    },
  };
}
