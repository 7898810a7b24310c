/**
 * Counters of the rate limiter: plain integers on the request path (no prom-client call
 * per request), copied into prom-client counters when the registry is scraped.
 *
 * Metrics (on the shared registry, get-or-create, so several limiters share them):
 * - `perfstack_rate_limit_requests_total{limit, outcome="allowed"|"blocked"}`
 * - `perfstack_rate_limit_store_errors_total`
 * - `perfstack_rate_limit_fallback_total`: requests decided by the local limiter because the
 *   Redis store failed.
 */
import { Counter, type Registry } from '@perfstack/core';

/** The numbers one limiter keeps. */
export class LimiterCounters {
  readonly names: readonly string[];
  readonly allowed: number[];
  readonly blocked: number[];
  allowedTotal = 0;
  blockedTotal = 0;
  skipped = 0;
  storeErrors = 0;
  fallback = 0;
  unavailable = 0;

  constructor(names: readonly string[]) {
    this.names = names;
    this.allowed = names.map(() => 0);
    this.blocked = names.map(() => 0);
  }

  /** Counts an allowed request (it passed every limit). */
  allow(): void {
    this.allowedTotal++;
    const a = this.allowed;
    for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) + 1;
  }

  /** Counts a refused request under each limit whose bit is set in `mask`. */
  block(mask: number): void {
    this.blockedTotal++;
    const b = this.blocked;
    for (let i = 0; i < b.length; i++) if ((mask & (1 << i)) !== 0) b[i] = (b[i] as number) + 1;
  }
}

const sources = new WeakMap<Registry, Set<LimiterCounters>>();

type CollectingCounter = Counter<string> & { reset(): void };

function collectingCounter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  fill: (counter: CollectingCounter, limiters: Set<LimiterCounters>) => void,
): void {
  if (registry.getSingleMetric(name)) return;
  new Counter({
    name,
    help,
    labelNames: [...labelNames],
    registers: [registry],
    collect(this: CollectingCounter) {
      this.reset();
      const set = sources.get(registry);
      if (set) fill(this, set);
    },
  });
}

/** Registers a limiter's counters on `registry`; returns the function that unregisters them. */
export function registerCounters(registry: Registry, counters: LimiterCounters): () => void {
  let set = sources.get(registry);
  if (set === undefined) {
    set = new Set();
    sources.set(registry, set);
  }
  set.add(counters);
  collectingCounter(
    registry,
    'perfstack_rate_limit_requests_total',
    'Requests seen by rate limits, by limit name and outcome.',
    ['limit', 'outcome'],
    (counter, limiters) => {
      for (const c of limiters) {
        for (let i = 0; i < c.names.length; i++) {
          counter.inc({ limit: c.names[i] as string, outcome: 'allowed' }, c.allowed[i] as number);
          counter.inc({ limit: c.names[i] as string, outcome: 'blocked' }, c.blocked[i] as number);
        }
      }
    },
  );
  collectingCounter(
    registry,
    'perfstack_rate_limit_store_errors_total',
    'Rate-limit store (Redis) calls that failed or timed out.',
    [],
    (counter, limiters) => {
      let n = 0;
      for (const c of limiters) n += c.storeErrors;
      counter.inc(n);
    },
  );
  collectingCounter(
    registry,
    'perfstack_rate_limit_fallback_total',
    'Requests decided by the local in-memory limiter while the Redis store was failing.',
    [],
    (counter, limiters) => {
      let n = 0;
      for (const c of limiters) n += c.fallback;
      counter.inc(n);
    },
  );
  const registered = set;
  return () => {
    registered.delete(counters);
  };
}
