/**
 * Small fake layers that implement core's data contracts, for the dashboard's tests.
 * They hold real numbers that grow as a test sends traffic (the real layers are built by
 * other packages; the dashboard only ever sees these contracts).
 */
import type {
  Alert,
  BreakerSnapshot,
  CacheSource,
  CacheStats,
  CircuitBreakerSource,
  RateLimitSource,
  RateLimitStats,
  SizeLimitSource,
  TimingSnapshot,
  TimingSource,
  WindowStats,
} from '@perfstack/core';

interface Sample {
  readonly at: number;
  readonly method: string;
  readonly route: string;
  readonly status: number;
  readonly ms: number;
  readonly cache?: 'hit' | 'miss';
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

function windowOf(samples: readonly Sample[], seconds: number, now: number): WindowStats {
  const inside = samples.filter((s) => s.at > now - seconds * 1000);
  const sorted = inside.map((s) => s.ms).sort((a, b) => a - b);
  const errors = inside.filter((s) => s.status >= 500).length;
  const hits = inside.filter((s) => s.cache === 'hit').length;
  const misses = inside.filter((s) => s.cache === 'miss').length;
  const statusClasses: Record<string, number> = {};
  for (const s of inside)
    statusClasses[`${Math.floor(s.status / 100)}xx`] = (statusClasses[`${Math.floor(s.status / 100)}xx`] ?? 0) + 1;
  return {
    windowSeconds: seconds,
    requests: inside.length,
    rps: inside.length / seconds,
    errors,
    errorRate: inside.length ? errors / inside.length : 0,
    latency: {
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      p99: percentile(sorted, 99),
      mean: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : 0,
      max: sorted.at(-1) ?? 0,
    },
    cacheHits: hits,
    cacheMisses: misses,
    cacheHitRatio: hits + misses ? hits / (hits + misses) : 0,
    statusClasses,
  };
}

/** Timing: records requests and computes windows, routes and alerts from them. */
export class FakeTiming implements TimingSource {
  readonly samples: Sample[] = [];
  alerts: Alert[] = [];
  inFlight = 0;

  record(sample: Omit<Sample, 'at'>): void {
    this.samples.push({ ...sample, at: Date.now() });
  }

  snapshot(): TimingSnapshot {
    const now = Date.now();
    const routes = new Map<string, Sample[]>();
    for (const s of this.samples) {
      const key = `${s.method} ${s.route}`;
      const list = routes.get(key) ?? [];
      list.push(s);
      routes.set(key, list);
    }
    return {
      at: now,
      totalRequests: this.samples.length,
      inFlight: this.inFlight,
      windows: {
        '1m': windowOf(this.samples, 60, now),
        '5m': windowOf(this.samples, 300, now),
        '15m': windowOf(this.samples, 900, now),
      },
      routes: [...routes.values()].map((list) => {
        const w = windowOf(list, 300, now);
        const first = list[0]!;
        return {
          route: first.route,
          method: first.method,
          count: w.requests,
          rps: w.rps,
          errorRate: w.errorRate,
          p50: w.latency.p50,
          p95: w.latency.p95,
          p99: w.latency.p99,
          cacheHitRatio: w.cacheHitRatio,
        };
      }),
      process: {
        rssBytes: 100 * 1024 * 1024 + this.samples.length * 1024,
        heapUsedBytes: 40 * 1024 * 1024 + this.samples.length * 512,
        heapTotalBytes: 60 * 1024 * 1024,
        heapLimitBytes: 2048 * 1024 * 1024,
        eventLoopDelayMs: { p50: 1.2, p99: 3.4 + (this.samples.length % 7), max: 9 },
        cpuPercent: 12.5,
        uptimeSeconds: 42,
      },
      alerts: this.alerts,
    };
  }
}

/** Cache: counts hits and misses, keeps tagged keys, invalidates them. */
export class FakeCache implements CacheSource {
  hits = 0;
  misses = 0;
  readonly entries = new Map<string, readonly string[]>();
  readonly invalidations: unknown[] = [];
  /** Per-route stats as the real cache reports them (tests set them; `ttlMs` is an optional extra). */
  routes: Record<
    string,
    { hits: number; misses: number; stale: number; bypass: number; hitRatio: number; ttlMs?: number }
  > = {};

  lookup(key: string, tags: readonly string[]): 'hit' | 'miss' {
    if (this.entries.has(key)) {
      this.hits++;
      return 'hit';
    }
    this.misses++;
    this.entries.set(key, tags);
    return 'miss';
  }

  stats(): CacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      stale: 0,
      bypass: 0,
      evictions: 0,
      warmStarted: 0,
      entries: this.entries.size,
      bytes: this.entries.size * 1000,
      hitRatio: this.hits + this.misses ? this.hits / (this.hits + this.misses) : 0,
      routes: this.routes,
    };
  }

  async invalidate(selector: { key?: string; tags?: readonly string[]; prefix?: string }): Promise<number> {
    this.invalidations.push(selector);
    let removed = 0;
    for (const [key, tags] of this.entries) {
      const match =
        (selector.key !== undefined && key === selector.key) ||
        (selector.prefix !== undefined && key.startsWith(selector.prefix)) ||
        (selector.tags?.some((t) => tags.includes(t)) ?? false);
      if (match) {
        this.entries.delete(key);
        removed++;
      }
    }
    return removed;
  }
}

/** Rate limit: a per-key counter with a limit. */
export class FakeRateLimit implements RateLimitSource {
  allowed = 0;
  blocked = 0;
  readonly counts = new Map<string, number>();
  readonly resets: string[] = [];

  constructor(readonly limit = 1000) {}

  hit(key: string): boolean {
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    if (n > this.limit) {
      this.blocked++;
      return false;
    }
    this.allowed++;
    return true;
  }

  stats(): RateLimitStats {
    return {
      allowed: this.allowed,
      blocked: this.blocked,
      storeErrors: 0,
      limits: [{ name: 'global', allowed: this.allowed, blocked: this.blocked }],
    };
  }

  async resetKey(key: string): Promise<void> {
    this.resets.push(key);
    this.counts.delete(key);
  }
}

/** Breakers: named breakers that open after `threshold` failures in a row. */
export class FakeBreakers implements CircuitBreakerSource {
  readonly breakers = new Map<string, BreakerSnapshot>();

  constructor(readonly threshold = 3) {}

  result(name: string, ok: boolean): void {
    const b = this.breakers.get(name) ?? { name, state: 'closed', failures: 0, successes: 0, rejected: 0, timeouts: 0 };
    const failures = ok ? 0 : b.failures + 1;
    const state = failures >= this.threshold ? 'open' : b.state;
    this.breakers.set(name, {
      ...b,
      failures,
      successes: b.successes + (ok ? 1 : 0),
      state,
      ...(state === 'open' && b.state !== 'open' ? { openedAt: Date.now() } : {}),
    });
  }

  isOpen(name: string): boolean {
    return this.breakers.get(name)?.state === 'open';
  }

  snapshot() {
    return { breakers: [...this.breakers.values()], overloaded: false, shed: 0 };
  }

  reset(name?: string): void {
    for (const b of this.breakers.values()) {
      if (name === undefined || b.name === name) {
        this.breakers.set(b.name, {
          name: b.name,
          state: 'closed',
          failures: 0,
          successes: b.successes,
          rejected: b.rejected,
          timeouts: 0,
        });
      }
    }
  }
}

/** Size limit: counts rejections by kind. */
export class FakeSizeLimit implements SizeLimitSource {
  readonly rejected: Record<string, number> = { body: 0, url: 0, headers: 0 };

  stats() {
    return { rejected: { ...this.rejected } };
  }
}

/** All fakes together. */
export function fakeSources() {
  return {
    timing: new FakeTiming(),
    cache: new FakeCache(),
    rateLimit: new FakeRateLimit(),
    circuitBreaker: new FakeBreakers(),
    sizeLimit: new FakeSizeLimit(),
  };
}

/** A logger that keeps what it was told. */
export function memoryLogger() {
  const lines: { level: string; message: string; details?: unknown }[] = [];
  return {
    lines,
    warn: (message: string, details?: unknown) => lines.push({ level: 'warn', message, details }),
    error: (message: string, details?: unknown) => lines.push({ level: 'error', message, details }),
  };
}
