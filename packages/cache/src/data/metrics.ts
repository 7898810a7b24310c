/**
 * The data cache's Prometheus metrics on the shared registry. Nothing is counted per read
 * in prom-client: the counters live in the cache (plain fields) and are copied into the
 * metrics when the registry is scraped (`collect`), so a hit costs no metric call. The
 * `namespace` label is bounded (at most `MAX_NAMESPACES` per cache).
 *
 * Several data caches on one registry are summed (one collector per registry).
 */
import { counter, gauge, type Registry } from '@perfstack/core';
import type { DataEngine, SpaceCounter } from './engine.js';

const engines = new WeakMap<Registry, Set<DataEngine>>();

type Field = SpaceCounter;

function sumBy(set: ReadonlySet<DataEngine>, field: Field): Map<string, number> {
  const out = new Map<string, number>();
  for (const engine of set) {
    for (const [name, c] of engine.spaces) out.set(name, (out.get(name) ?? 0) + c[field]);
  }
  return out;
}

/** Registers the metrics of `engine` (made once per registry; closed engines drop out). */
export function registerMetrics(registry: Registry, engine: DataEngine): void {
  let set = engines.get(registry);
  if (set !== undefined) {
    set.add(engine);
    return;
  }
  set = new Set([engine]);
  engines.set(registry, set);
  const live = set;
  const prune = () => {
    for (const e of live) if (e.closed) live.delete(e);
  };
  const perSpace = (name: string, help: string, field: Field) =>
    counter(registry, {
      name,
      help,
      labelNames: ['namespace'] as const,
      collect() {
        prune();
        this.reset();
        for (const [space, value] of sumBy(live, field)) this.inc({ namespace: space }, value);
      },
    });
  perSpace('perfstack_data_cache_hits_total', 'Data-cache reads answered from memory or Redis', 'hits');
  perSpace('perfstack_data_cache_misses_total', 'Data-cache reads that found nothing', 'misses');
  perSpace('perfstack_data_cache_stale_total', 'Data-cache wrap() calls answered stale while refreshing', 'stale');
  perSpace(
    'perfstack_data_cache_refreshes_ahead_total',
    'Data-cache entries refreshed in the background before they expired',
    'refreshesAhead',
  );
  perSpace(
    'perfstack_data_cache_warm_started_total',
    'Data-cache entries loaded into memory at start from the hottest in Redis',
    'warmStarted',
  );
  const total = (read: (e: DataEngine) => number) => {
    prune();
    let sum = 0;
    for (const e of live) sum += read(e);
    return sum;
  };
  gauge(registry, {
    name: 'perfstack_data_cache_entries',
    help: 'Entries in the data cache memory (L1)',
    collect() {
      this.set(total((e) => e.entries));
    },
  });
  gauge(registry, {
    name: 'perfstack_data_cache_bytes',
    help: 'Bytes accounted in the data cache memory (L1)',
    collect() {
      this.set(total((e) => e.bytes));
    },
  });
  counter(registry, {
    name: 'perfstack_data_cache_evictions_total',
    help: 'Data-cache entries evicted from memory to stay within maxEntries/maxBytes',
    collect() {
      this.reset();
      this.inc(total((e) => e.evictions));
    },
  });
}
