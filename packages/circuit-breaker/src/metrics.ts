/**
 * Prometheus metrics of every breaker on a registry: a state gauge per breaker (one series
 * per state, 1 for the current one, read at scrape time) and counters for short-circuits,
 * timeouts, bulkhead rejections and shed requests. The inbound middleware and outbound
 * breakers sharing a registry share these metrics, told apart by the `breaker` label.
 */
import { type Counter, counter, gauge, type Registry } from '@perfstack/core';
import type { ConcurrencyLimiter } from './adaptive.js';
import type { BreakerStateMachine } from './state-machine.js';

const STATES = ['closed', 'open', 'half-open'] as const;

/** Every source of breakers per registry, read by the one state gauge. */
const sources = new WeakMap<Registry, Set<() => Iterable<BreakerStateMachine>>>();

/** The counters a breaker increments. */
export interface BreakerMetrics {
  readonly shortCircuits: Counter<'breaker'>;
  readonly timeouts: Counter<'breaker'>;
  readonly rejections: Counter<'breaker'>;
  readonly shed: Counter<'reason'>;
  /** Stops reporting this source's breakers. */
  detach(): void;
}

/**
 * Registers the metrics on `registry` (get-or-create) and adds `breakers` to the state
 * gauge's sources.
 */
export function breakerMetrics(registry: Registry, breakers: () => Iterable<BreakerStateMachine>): BreakerMetrics {
  let set = sources.get(registry);
  if (set === undefined) {
    const created = new Set<() => Iterable<BreakerStateMachine>>();
    set = created;
    sources.set(registry, created);
    gauge(registry, {
      name: 'perfstack_circuit_breaker_state',
      help: 'Circuit breaker state: 1 for the current state of each breaker, 0 for the others',
      labelNames: ['breaker', 'state'],
      collect() {
        this.reset();
        for (const source of created) {
          for (const breaker of source()) {
            const current = breaker.state;
            for (const state of STATES) this.set({ breaker: breaker.name, state }, state === current ? 1 : 0);
          }
        }
      },
    });
  }
  set.add(breakers);
  const owner = set;
  return {
    shortCircuits: counter(registry, {
      name: 'perfstack_circuit_breaker_short_circuits_total',
      help: 'Calls or requests turned away because the breaker was open',
      labelNames: ['breaker'],
    }),
    timeouts: counter(registry, {
      name: 'perfstack_circuit_breaker_timeouts_total',
      help: 'Calls or requests that exceeded their time budget',
      labelNames: ['breaker'],
    }),
    rejections: counter(registry, {
      name: 'perfstack_circuit_breaker_rejections_total',
      help: 'Calls or requests turned away because the bulkhead was full',
      labelNames: ['breaker'],
    }),
    shed: counter(registry, {
      name: 'perfstack_circuit_breaker_shed_total',
      help: 'Requests shed because the process was overloaded',
      labelNames: ['reason'],
    }),
    detach() {
      owner.delete(breakers);
    },
  };
}

/** Every source of adaptive limiters per registry, read by the limit gauges. */
const limiterSources = new WeakMap<Registry, Set<() => Iterable<ConcurrencyLimiter>>>();

/** The counter the adaptive limiters increment. */
export interface ConcurrencyMetrics {
  readonly shed: Counter<'limiter'>;
  /** Stops reporting this source's limiters. */
  detach(): void;
}

/**
 * Registers the adaptive concurrency metrics on `registry` (get-or-create): the current limit
 * and the requests in flight per limiter, read at scrape time, and the requests shed at the
 * limit. The `limiter` label is a route key (bounded by `maxRoutes`) or `global`.
 */
export function concurrencyMetrics(
  registry: Registry,
  limiters: () => Iterable<ConcurrencyLimiter>,
): ConcurrencyMetrics {
  let set = limiterSources.get(registry);
  if (set === undefined) {
    const created = new Set<() => Iterable<ConcurrencyLimiter>>();
    set = created;
    limiterSources.set(registry, created);
    gauge(registry, {
      name: 'perfstack_concurrency_limit',
      help: 'Current adaptive concurrency limit (requests in flight at once) per limiter',
      labelNames: ['limiter'],
      collect() {
        this.reset();
        for (const source of created)
          for (const limiter of source()) this.set({ limiter: limiter.name }, limiter.limit);
      },
    });
    gauge(registry, {
      name: 'perfstack_concurrency_inflight',
      help: 'Requests in flight under an adaptive concurrency limit',
      labelNames: ['limiter'],
      collect() {
        this.reset();
        for (const source of created)
          for (const limiter of source()) this.set({ limiter: limiter.name }, limiter.inflight);
      },
    });
  }
  set.add(limiters);
  const owner = set;
  return {
    shed: counter(registry, {
      name: 'perfstack_concurrency_limit_shed_total',
      help: 'Requests shed with 503 OVERLOADED because an adaptive concurrency limit was reached',
      labelNames: ['limiter'],
    }),
    detach() {
      owner.delete(limiters);
    },
  };
}
