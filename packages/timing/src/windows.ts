/**
 * Rolling windows of 1, 5 and 15 minutes, kept as ring buffers of per-interval slots.
 *
 * The whole stack keeps 90 slots of 10 seconds; each route keeps 10 slots of 30 seconds
 * (the per-route table covers 5 minutes). A slot is reused when its interval comes round
 * again, so memory depends on the number of slots and routes (capped), never on the number
 * of requests or distinct URLs. Recording finds the current slot by dividing the clock,
 * resets it if it holds an old interval, and bumps a few counters: O(1), no allocation.
 *
 * A window of N slots is the current (partial) slot plus the N - 1 before it, so "1 minute"
 * covers between 50 and 60 seconds of traffic; rates divide by the time actually covered.
 */
import type { LatencySummary, RouteStats, WindowStats } from '@perfstack/core';
import { LatencyHistogram } from './histogram.js';

/** Width of a stack-wide slot, ms. */
export const SLOT_MS = 10_000;
/** Stack-wide slots kept: 15 minutes. */
export const SLOT_COUNT = 90;
/** Width of a per-route slot, ms. */
export const ROUTE_SLOT_MS = 30_000;
/** Per-route slots kept: 5 minutes. */
export const ROUTE_SLOT_COUNT = 10;

/** How a response passed the cache layer, read from its `X-Cache` header. */
export const CacheOutcome = { None: 0, Hit: 1, Miss: 2 } as const;
/** One of {@link CacheOutcome}'s values. */
export type CacheOutcome = (typeof CacheOutcome)[keyof typeof CacheOutcome];

/** A route in the per-route table, with the counts behind its ratios. */
export interface TimingRouteStats extends RouteStats {
  /** 5xx responses in the window. */
  readonly errors: number;
  /** Mean latency, ms. */
  readonly mean: number;
  readonly cacheHits: number;
  readonly cacheMisses: number;
}

const PERCENTILES = [50, 95, 99] as const;

class Slot {
  epoch = -1;
  requests = 0;
  errors = 0;
  cacheHits = 0;
  cacheMisses = 0;
  /** Responses by status class: index 1 is 1xx ... index 5 is 5xx; index 0 anything else. */
  readonly statusClasses = new Uint32Array(6);
  readonly latency = new LatencyHistogram();

  reset(epoch: number): void {
    this.epoch = epoch;
    this.requests = 0;
    this.errors = 0;
    this.cacheHits = 0;
    this.cacheMisses = 0;
    this.statusClasses.fill(0);
    this.latency.reset();
  }
}

class RouteSlot {
  epoch = -1;
  requests = 0;
  errors = 0;
  cacheHits = 0;
  cacheMisses = 0;
  readonly latency = new LatencyHistogram();

  reset(epoch: number): void {
    this.epoch = epoch;
    this.requests = 0;
    this.errors = 0;
    this.cacheHits = 0;
    this.cacheMisses = 0;
    this.latency.reset();
  }
}

/** The rolling record of one (method, route) pair. Slots are allocated on first use. */
export class RouteSeries {
  readonly #slots: Array<RouteSlot | undefined> = new Array(ROUTE_SLOT_COUNT).fill(undefined);

  constructor(
    readonly method: string,
    readonly route: string,
  ) {}

  record(now: number, ms: number, isError: boolean, cache: CacheOutcome): void {
    const epoch = Math.floor(now / ROUTE_SLOT_MS);
    const index = epoch % ROUTE_SLOT_COUNT;
    let slot = this.#slots[index];
    if (slot === undefined) {
      slot = new RouteSlot();
      this.#slots[index] = slot;
    }
    if (slot.epoch !== epoch) slot.reset(epoch);
    slot.requests++;
    if (isError) slot.errors++;
    if (cache === CacheOutcome.Hit) slot.cacheHits++;
    else if (cache === CacheOutcome.Miss) slot.cacheMisses++;
    slot.latency.record(ms);
  }

  /** Stats over the route window, or `undefined` when the route had no traffic in it. */
  stats(now: number, coveredSeconds: number, scratch: LatencyHistogram): TimingRouteStats | undefined {
    const current = Math.floor(now / ROUTE_SLOT_MS);
    scratch.reset();
    let requests = 0;
    let errors = 0;
    let cacheHits = 0;
    let cacheMisses = 0;
    for (const slot of this.#slots) {
      if (slot === undefined || slot.epoch > current || slot.epoch <= current - ROUTE_SLOT_COUNT) continue;
      requests += slot.requests;
      errors += slot.errors;
      cacheHits += slot.cacheHits;
      cacheMisses += slot.cacheMisses;
      scratch.add(slot.latency);
    }
    if (requests === 0) return undefined;
    const [p50, p95, p99] = scratch.percentiles(PERCENTILES) as [number, number, number];
    return {
      route: this.route,
      method: this.method,
      count: requests,
      rps: requests / coveredSeconds,
      errors,
      errorRate: errors / requests,
      p50,
      p95,
      p99,
      mean: scratch.mean(),
      cacheHits,
      cacheMisses,
      cacheHitRatio: ratio(cacheHits, cacheHits + cacheMisses),
    };
  }
}

function ratio(part: number, whole: number): number {
  return whole === 0 ? 0 : part / whole;
}

/** The three windows a snapshot shows. */
export interface Windows {
  readonly '1m': WindowStats;
  readonly '5m': WindowStats;
  readonly '15m': WindowStats;
}

/** Stack-wide rolling windows plus the per-route series. */
export class RollingWindows {
  /** Made when their interval first sees a request (90 histograms are 300 KB a stack need not pay for up front). */
  readonly #slots: Array<Slot | undefined> = new Array(SLOT_COUNT).fill(undefined);
  readonly #startedAt: number;
  readonly #scratch = new LatencyHistogram();

  constructor(startedAt: number) {
    this.#startedAt = startedAt;
  }

  /** Records one finished request. */
  record(now: number, ms: number, status: number, cache: CacheOutcome, series: RouteSeries): void {
    const epoch = Math.floor(now / SLOT_MS);
    let slot = this.#slots[epoch % SLOT_COUNT];
    if (slot === undefined) {
      slot = new Slot();
      this.#slots[epoch % SLOT_COUNT] = slot;
    }
    if (slot.epoch !== epoch) slot.reset(epoch);
    slot.requests++;
    const statusClass = status >= 100 && status < 600 ? (status / 100) | 0 : 0;
    (slot.statusClasses[statusClass] as number)++;
    const isError = statusClass === 5;
    if (isError) slot.errors++;
    if (cache === CacheOutcome.Hit) slot.cacheHits++;
    else if (cache === CacheOutcome.Miss) slot.cacheMisses++;
    slot.latency.record(ms);
    series.record(now, ms, isError, cache);
  }

  /** Seconds of traffic a window of `slots` slots of `slotMs` covers at `now`. */
  covered(now: number, slots: number, slotMs: number): number {
    const current = Math.floor(now / slotMs);
    const span = (slots - 1) * slotMs + (now - current * slotMs);
    return Math.max(1, Math.min(span, now - this.#startedAt)) / 1000;
  }

  /** The 1, 5 and 15 minute windows, in one pass over the slots, newest first. */
  windows(now: number): Windows {
    const current = Math.floor(now / SLOT_MS);
    const acc = this.#scratch;
    acc.reset();
    const totals = { requests: 0, errors: 0, cacheHits: 0, cacheMisses: 0, classes: new Array<number>(6).fill(0) };
    const out: WindowStats[] = [];
    const bounds = [6, 30, 90];
    let bound = 0;
    for (let age = 0; age < SLOT_COUNT; age++) {
      const epoch = current - age;
      const slot = this.#slots[((epoch % SLOT_COUNT) + SLOT_COUNT) % SLOT_COUNT];
      if (slot !== undefined && slot.epoch === epoch) {
        totals.requests += slot.requests;
        totals.errors += slot.errors;
        totals.cacheHits += slot.cacheHits;
        totals.cacheMisses += slot.cacheMisses;
        for (let c = 0; c < 6; c++)
          totals.classes[c] = (totals.classes[c] as number) + (slot.statusClasses[c] as number);
        acc.add(slot.latency);
      }
      if (age + 1 === bounds[bound]) {
        out.push(this.#windowStats(now, bounds[bound] as number, totals, acc));
        bound++;
      }
    }
    return { '1m': out[0] as WindowStats, '5m': out[1] as WindowStats, '15m': out[2] as WindowStats };
  }

  #windowStats(
    now: number,
    slots: number,
    totals: { requests: number; errors: number; cacheHits: number; cacheMisses: number; classes: number[] },
    latency: LatencyHistogram,
  ): WindowStats {
    const [p50, p95, p99] = latency.percentiles(PERCENTILES) as [number, number, number];
    const summary: LatencySummary = { p50, p95, p99, mean: latency.mean(), max: latency.max };
    const statusClasses: Record<string, number> = {};
    for (let c = 1; c < 6; c++) {
      const n = totals.classes[c] as number;
      if (n > 0) statusClasses[`${c}xx`] = n;
    }
    if ((totals.classes[0] as number) > 0) statusClasses.other = totals.classes[0] as number;
    return {
      windowSeconds: (slots * SLOT_MS) / 1000,
      requests: totals.requests,
      rps: totals.requests / this.covered(now, slots, SLOT_MS),
      errors: totals.errors,
      errorRate: ratio(totals.errors, totals.requests),
      latency: summary,
      cacheHits: totals.cacheHits,
      cacheMisses: totals.cacheMisses,
      cacheHitRatio: ratio(totals.cacheHits, totals.cacheHits + totals.cacheMisses),
      statusClasses,
    };
  }

  /** The per-route table over the route window, busiest first. */
  routes(now: number, series: Iterable<RouteSeries>): TimingRouteStats[] {
    const covered = this.covered(now, ROUTE_SLOT_COUNT, ROUTE_SLOT_MS);
    const out: TimingRouteStats[] = [];
    for (const one of series) {
      const stats = one.stats(now, covered, this.#scratch);
      if (stats !== undefined) out.push(stats);
    }
    out.sort((a, b) => b.count - a.count || b.p95 - a.p95 || (a.route < b.route ? -1 : a.route > b.route ? 1 : 0));
    return out;
  }
}
