import { createRegistry } from '@perfstack/core';
import { describe, expect, it } from 'vitest';
import { CacheCounters, MAX_ROUTES } from '../src/stats.js';

describe('per-route stats', () => {
  it('keeps at most MAX_ROUTES route labels; the rest share "other"', async () => {
    const registry = createRegistry();
    const counters = new CacheCounters(registry, () => ({ entries: 0, bytes: 0 }));
    for (let i = 0; i < MAX_ROUTES + 50; i++) counters.route(`/r${i}`).count('miss');
    const stats = counters.snapshot(0, 0);
    expect(Object.keys(stats.routes)).toHaveLength(MAX_ROUTES + 1);
    expect(stats.routes.other).toEqual({ hits: 0, misses: 50, stale: 0, bypass: 0, hitRatio: 0 });
    expect(stats.misses).toBe(MAX_ROUTES + 50);
    expect(await registry.metrics()).toContain('perfstack_cache_misses_total{route="other"} 50');
  });
});
