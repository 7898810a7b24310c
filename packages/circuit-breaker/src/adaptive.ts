/**
 * Adaptive concurrency: an inbound concurrency limit that finds itself, so an operator need
 * not guess `maxConcurrent`. The algorithm is TCP Vegas applied to requests, as in Netflix's
 * concurrency-limits (`VegasLimit`; Brakmo & Peterson, "TCP Vegas", 1995):
 *
 * - `minRtt` is the latency of the route with nothing queued (the smallest one seen);
 * - with `limit` requests in flight and a sample latency `rtt`, the requests waiting somewhere
 *   behind the route (a pool, a backend, the CPU) are estimated as
 *   `queue = limit × (1 − minRtt / rtt)` (Little's law: a backend with N slots at limit L answers
 *   in `rtt ≈ minRtt × L / N`, so `queue ≈ L − N`);
 * - with `lg = max(1, log10(limit))`: `queue ≤ lg` → grow by `6·lg` (nothing queues yet);
 *   `queue < 3·lg` → grow by `lg`; `queue > 6·lg` → shrink by `lg`; in between → hold. A
 *   timeout (a drop) shrinks by `lg`. So the limit settles a few requests above the capacity
 *   behind the route: enough to keep it busy, too few for a queue to build.
 * - a sample taken while less than half the limit was in flight says nothing about the limit
 *   (the route is app-limited) and is skipped, so an idle route does not grow without bound.
 *
 * `minRtt` alone would drift: under sustained load every sample is queued, and a route whose
 * real no-load latency rose (a deploy, a slower database) would be shed forever. So every
 * `minRttInterval` the limiter re-measures it like Envoy's adaptive-concurrency filter: the
 * limit drops to `minLimit` for `minRttSamples` requests (which then queue nowhere), their
 * smallest latency becomes the new `minRtt`, and the previous limit is restored.
 *
 * Per request, admission is one comparison and one increment; the update on completion is a
 * handful of float operations and one `Math.log10`, no allocation.
 */
import {
  type ConcurrencyLimitFigures,
  checkOptionsObject,
  optionTypeError,
  parseDuration,
  readInteger,
  readNumber,
} from '@perfstack/core';
import { PKG } from './policy.js';

/** Options of the adaptive concurrency limit (`adaptiveConcurrency: true` takes every default). */
export interface AdaptiveConcurrencyOptions {
  /** The limit before the first measurement. @default 20 */
  readonly initialLimit?: number;
  /** The limit never goes below this (and the minRtt probe runs at it). @default 1 */
  readonly minLimit?: number;
  /** The limit never goes above this. @default 1000 */
  readonly maxLimit?: number;
  /** Share of each computed step that is applied, in (0, 1]; lower is smoother and slower. @default 1 */
  readonly smoothing?: number;
  /** How often the no-load latency is re-measured; `false`: never (the smallest sample ever stays). @default '60s' */
  readonly minRttInterval?: number | string | false;
  /** Requests that measure the no-load latency during a probe. @default 20 */
  readonly minRttSamples?: number;
  /**
   * `'route'`: one limit per guarded route; `'global'`: one limit shared by every guarded route
   * that does not set its own `adaptiveConcurrency` (top level only).
   * @default 'route'
   */
  readonly scope?: 'route' | 'global';
}

/** The resolved adaptive concurrency settings. */
export interface AdaptiveConfig {
  readonly initialLimit: number;
  readonly minLimit: number;
  readonly maxLimit: number;
  readonly smoothing: number;
  readonly minRttIntervalMs: number | undefined;
  readonly minRttSamples: number;
  readonly scope: 'route' | 'global';
}

const ADAPTIVE_KEYS = [
  'initialLimit',
  'minLimit',
  'maxLimit',
  'smoothing',
  'minRttInterval',
  'minRttSamples',
  'scope',
] as const;

/**
 * Resolves `adaptiveConcurrency` (`true`, `false` or an options object); `undefined` inherits
 * `base` (the top-level setting, for a route).
 *
 * @throws {TypeError|RangeError} naming the option, the bad value and the accepted form
 */
export function resolveAdaptive(
  value: unknown,
  base: AdaptiveConfig | undefined,
  prefix: string,
): AdaptiveConfig | undefined {
  const name = `${prefix}adaptiveConcurrency`;
  if (value === undefined) return base;
  if (value === false) return undefined;
  if (value !== true && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw optionTypeError(PKG, name, value, 'true, false or an options object, e.g. { maxLimit: 200 }');
  }
  const options = (
    value === true ? {} : checkOptionsObject(PKG, `circuitBreaker({ ${name} })`, value, ADAPTIVE_KEYS)
  ) as AdaptiveConcurrencyOptions;
  if (options.scope !== undefined && options.scope !== 'route' && options.scope !== 'global') {
    throw optionTypeError(PKG, `${name}.scope`, options.scope, "'route' or 'global'");
  }
  if (prefix !== '' && options.scope !== undefined) {
    throw new RangeError(
      `${PKG}: option "${name}.scope" can only be set at the top level, got ${JSON.stringify(options.scope)}`,
    );
  }
  const minLimit = readInteger(PKG, `${name}.minLimit`, options.minLimit, 1, 1, 100_000);
  const maxLimit = readInteger(PKG, `${name}.maxLimit`, options.maxLimit, Math.max(1000, minLimit), 1, 1_000_000);
  if (maxLimit < minLimit) {
    throw new RangeError(`${PKG}: option "${name}.maxLimit" must be ≥ minLimit (${minLimit}), got ${maxLimit}`);
  }
  const initialLimit = readInteger(
    PKG,
    `${name}.initialLimit`,
    options.initialLimit,
    Math.min(maxLimit, Math.max(minLimit, 20)),
    minLimit,
    maxLimit,
  );
  const smoothing = readNumber(PKG, `${name}.smoothing`, options.smoothing, 1, 0.01, 1);
  const minRttIntervalMs =
    options.minRttInterval === false
      ? undefined
      : parseDuration(options.minRttInterval ?? '60s', `${name}.minRttInterval`, { pkg: PKG, min: 1 });
  const minRttSamples = readInteger(PKG, `${name}.minRttSamples`, options.minRttSamples, 20, 1, 100_000);
  // A route that sets its own options gets its own limit, even under a global one.
  const scope = options.scope ?? 'route';
  return { initialLimit, minLimit, maxLimit, smoothing, minRttIntervalMs, minRttSamples, scope };
}

/** One adaptive limit: admission on the request path, an update per finished request. */
export class ConcurrencyLimiter {
  readonly name: string;
  readonly config: AdaptiveConfig;
  /** Requests admitted and not finished. */
  inflight = 0;
  /** Requests refused at the limit. */
  shed = 0;
  #limit: number;
  /** `floor(#limit)`, what admission compares with. */
  #ceiling: number;
  #minRtt = 0;
  #probing = false;
  #probeStartedAt = 0;
  #probeLeft = 0;
  #probeMin = Number.POSITIVE_INFINITY;
  #limitBeforeProbe = 0;
  #nextProbeAt = Number.POSITIVE_INFINITY;
  #windowRtt = 0;
  #windowSamples = 0;
  #windowMaxInflight = 0;
  #windowDropped = false;

  /**
   * A standalone limiter (the one `adaptiveConcurrency` puts on a route), for work the
   * middleware does not see: a queue consumer, a WebSocket handler. Call `tryAcquire()` before
   * the work and `complete(startedAt, inflightAtStart, now, dropped)` or `release()` after it.
   *
   * @param name names it in snapshots
   * @param options as for `adaptiveConcurrency` (`scope` is ignored)
   * @returns the limiter
   * @throws {TypeError|RangeError} on an invalid option, naming it
   * @example
   * const limiter = ConcurrencyLimiter.create('thumbnails', { maxLimit: 64 });
   * if (!limiter.tryAcquire()) return reject();
   * const startedAt = performance.now(), inflight = limiter.inflight;
   * try { await work(); } finally { limiter.complete(startedAt, inflight, performance.now(), false); }
   */
  static create(name: string, options: AdaptiveConcurrencyOptions | true = true): ConcurrencyLimiter {
    return new ConcurrencyLimiter(name, resolveAdaptive(options, undefined, '') as AdaptiveConfig);
  }

  constructor(name: string, config: AdaptiveConfig) {
    this.name = name;
    this.config = config;
    this.#limit = config.initialLimit;
    this.#ceiling = config.initialLimit;
  }

  /** The current limit. */
  get limit(): number {
    return this.#ceiling;
  }

  /** Admits one request (true) or refuses it at the limit (false). */
  tryAcquire(): boolean {
    if (this.inflight >= this.#ceiling) {
      this.shed++;
      return false;
    }
    this.inflight++;
    return true;
  }

  /** Gives the slot back without a sample (the client went away, an error that says nothing of load). */
  release(): void {
    this.inflight--;
  }

  /**
   * Gives the slot back and learns from its latency.
   *
   * @param startedAt when it was admitted (ms, same clock as `now`)
   * @param inflightAtStart requests in flight when it was admitted (itself included)
   * @param now the time it finished
   * @param dropped true for a timeout: shrink without looking at the latency
   */
  complete(startedAt: number, inflightAtStart: number, now: number, dropped: boolean): void {
    this.inflight--;
    const rtt = Math.max(now - startedAt, 1e-3);
    if (this.#probing) {
      if (startedAt < this.#probeStartedAt) return; // admitted before the probe: it may have queued
      if (rtt < this.#probeMin) this.#probeMin = rtt;
      if (--this.#probeLeft > 0) return;
      this.#probing = false;
      this.#minRtt = this.#probeMin;
      this.#setLimit(this.#limitBeforeProbe);
      this.#resetWindow();
      this.#scheduleProbe(now);
      return;
    }
    if (now >= this.#nextProbeAt) {
      this.#probing = true;
      this.#probeStartedAt = now;
      this.#probeLeft = this.config.minRttSamples;
      this.#probeMin = Number.POSITIVE_INFINITY;
      this.#limitBeforeProbe = this.#limit;
      this.#setLimit(this.config.minLimit);
      return;
    }
    if (this.#minRtt === 0 || rtt < this.#minRtt) {
      if (this.#minRtt === 0) this.#scheduleProbe(now);
      this.#minRtt = rtt;
    }
    // One update per round trip, as TCP Vegas does: a window of `limit` samples.
    this.#windowRtt += rtt;
    this.#windowSamples++;
    if (inflightAtStart > this.#windowMaxInflight) this.#windowMaxInflight = inflightAtStart;
    if (dropped) this.#windowDropped = true;
    if (this.#windowSamples < this.#ceiling) return;
    const averageRtt = this.#windowRtt / this.#windowSamples;
    const maxInflight = this.#windowMaxInflight;
    const windowDropped = this.#windowDropped;
    this.#resetWindow();
    this.#update(averageRtt, maxInflight, windowDropped);
  }

  #update(rtt: number, maxInflight: number, dropped: boolean): void {
    const limit = this.#limit;
    const lg = limit < 10 ? 1 : Math.log10(limit);
    let next: number;
    if (dropped) next = limit - lg;
    else {
      // App-limited: too little load to say anything about the limit.
      if (maxInflight * 2 < limit) return;
      const queue = limit * (1 - this.#minRtt / rtt);
      if (queue <= lg) next = limit + 6 * lg;
      else if (queue < 3 * lg) next = limit + lg;
      else if (queue > 6 * lg) next = limit - lg;
      else return;
    }
    const { minLimit, maxLimit, smoothing } = this.config;
    next = Math.min(Math.max(next, minLimit), maxLimit);
    this.#setLimit(limit + (next - limit) * smoothing);
  }

  #resetWindow(): void {
    this.#windowRtt = 0;
    this.#windowSamples = 0;
    this.#windowMaxInflight = 0;
    this.#windowDropped = false;
  }

  /** The figures for the dashboard and metrics. */
  snapshot(): ConcurrencyLimitFigures {
    return {
      name: this.name,
      limit: this.#ceiling,
      inflight: this.inflight,
      shed: this.shed,
      minRttMs: this.#minRtt === 0 ? null : Math.round(this.#minRtt * 1000) / 1000,
      probing: this.#probing,
    };
  }

  #setLimit(limit: number): void {
    this.#limit = limit;
    this.#ceiling = Math.max(1, Math.floor(limit));
  }

  #scheduleProbe(now: number): void {
    const interval = this.config.minRttIntervalMs;
    this.#nextProbeAt = interval === undefined ? Number.POSITIVE_INFINITY : now + interval;
  }
}
