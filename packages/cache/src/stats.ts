/**
 * Cache numbers, overall and per route, for `stats()` and the shared Prometheus
 * registry. Per-route counters and their prom-client children are made once per route
 * and reused, so counting a hit is two increments. The route label is the route
 * pattern (never the raw URL) and at most {@link MAX_ROUTES} distinct values are kept;
 * the rest share `other`.
 */
import { type CacheStats, type Counter, counter, gauge, type Registry } from '@perfstack/core';

/** Most distinct route labels. */
export const MAX_ROUTES = 200;
const OTHER_ROUTE = 'other';

/** What a request's outcome was. */
export type Outcome = 'hit' | 'miss' | 'stale' | 'bypass';

interface Child {
  inc(): void;
}

/** Counters of one route. */
export class RouteCounters {
  hits = 0;
  misses = 0;
  stale = 0;
  bypass = 0;
  /** Freshness lifetime of the last entry stored for the route (the report cites it). */
  ttlMs: number | undefined;
  readonly #children: Record<Outcome, Child> | undefined;

  constructor(children: Record<Outcome, Child> | undefined) {
    this.#children = children;
  }

  /** Counts one outcome. */
  count(outcome: Outcome): void {
    switch (outcome) {
      case 'hit':
        this.hits++;
        break;
      case 'miss':
        this.misses++;
        break;
      case 'stale':
        this.stale++;
        break;
      default:
        this.bypass++;
    }
    this.#children?.[outcome].inc();
  }
}

const ratio = (hits: number, misses: number) => (hits + misses === 0 ? 0 : hits / (hits + misses));

/** The stats of one cache instance. */
export class CacheCounters {
  evictions = 0;
  /** Entries loaded into memory at start from the most read in Redis (warm start). */
  warmStartedEntries = 0;
  readonly #routes = new Map<string, RouteCounters>();
  readonly #metrics: Record<Outcome, Counter<'route'>> | undefined;
  readonly #evictions: Counter | undefined;
  readonly #warmStarted: Counter | undefined;

  constructor(registry: Registry | undefined, size: () => { entries: number; bytes: number }) {
    if (registry === undefined) return;
    const make = (outcome: string, help: string) =>
      counter(registry, { name: `perfstack_cache_${outcome}_total`, help, labelNames: ['route'] as const });
    this.#metrics = {
      hit: make('hits', 'Responses served fresh from the cache'),
      miss: make('misses', 'Cacheable requests the origin answered'),
      stale: make('stale', 'Responses served stale (stale-while-revalidate or stale-if-error)'),
      bypass: make(
        'bypass',
        'Requests that could not use the cache (unsafe method, credentials, a response that may not be stored)',
      ),
    };
    this.#evictions = counter(registry, {
      name: 'perfstack_cache_evictions_total',
      help: 'Entries evicted from memory to stay within maxEntries/maxBytes',
    });
    this.#warmStarted = counter(registry, {
      name: 'perfstack_cache_warm_started_total',
      help: 'Entries loaded into memory at start from the most read in Redis (warm start)',
    });
    gauge(registry, {
      name: 'perfstack_cache_entries',
      help: 'Entries in the in-memory cache',
      collect() {
        this.set(size().entries);
      },
    });
    gauge(registry, {
      name: 'perfstack_cache_bytes',
      help: 'Bytes accounted in the in-memory cache',
      collect() {
        this.set(size().bytes);
      },
    });
  }

  /** The counters of a route label (bounded). */
  route(label: string): RouteCounters {
    let counters = this.#routes.get(label);
    if (counters !== undefined) return counters;
    if (this.#routes.size >= MAX_ROUTES && label !== OTHER_ROUTE) return this.route(OTHER_ROUTE);
    const metrics = this.#metrics;
    counters = new RouteCounters(
      metrics === undefined
        ? undefined
        : {
            hit: metrics.hit.labels(label),
            miss: metrics.miss.labels(label),
            stale: metrics.stale.labels(label),
            bypass: metrics.bypass.labels(label),
          },
    );
    this.#routes.set(label, counters);
    return counters;
  }

  /** Counts evictions. */
  evicted(count: number): void {
    this.evictions += count;
    this.#evictions?.inc(count);
  }

  /** Counts entries loaded by the warm start. */
  warmStarted(count: number): void {
    this.warmStartedEntries += count;
    this.#warmStarted?.inc(count);
  }

  /** The numbers as the dashboard reads them. */
  snapshot(entries: number, bytes: number): CacheStats {
    let hits = 0;
    let misses = 0;
    let stale = 0;
    let bypass = 0;
    const routes: [
      string,
      { hits: number; misses: number; stale: number; bypass: number; hitRatio: number; ttlMs?: number },
    ][] = [];
    for (const [label, r] of this.#routes) {
      hits += r.hits;
      misses += r.misses;
      stale += r.stale;
      bypass += r.bypass;
      // entries, then Object.fromEntries: a route named `__proto__` stays an own property
      routes.push([
        label,
        {
          hits: r.hits,
          misses: r.misses,
          stale: r.stale,
          bypass: r.bypass,
          hitRatio: ratio(r.hits + r.stale, r.misses),
          ...(r.ttlMs === undefined ? {} : { ttlMs: r.ttlMs }),
        },
      ]);
    }
    return {
      hits,
      misses,
      stale,
      bypass,
      evictions: this.evictions,
      warmStarted: this.warmStartedEntries,
      entries,
      bytes,
      hitRatio: ratio(hits + stale, misses),
      routes: Object.fromEntries(routes),
    };
  }
}
