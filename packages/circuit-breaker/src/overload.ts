/**
 * Process overload detection for load shedding, sampled on an `unref()`ed timer like
 * @fastify/under-pressure: event-loop delay from `monitorEventLoopDelay` (node:perf_hooks),
 * heap used and RSS. The request path reads one boolean; nothing is measured per request.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { checkOptionsObject, parseBytes, parseDuration } from '@perfstack/core';
import type { BreakerClock, TimerHandle } from './clock.js';
import type { OverloadEvent, OverloadReason } from './events.js';
import { PKG } from './policy.js';

/** Thresholds for process overload shedding. Each one is off unless set, except the event-loop delay. */
export interface OverloadOptions {
  /** Event-loop delay (the worst in a sample interval) above which requests are shed. @default '1s' */
  readonly maxEventLoopDelay?: number | string | false;
  /** V8 heap used above which requests are shed. Off unless set. @default false */
  readonly maxHeapUsedBytes?: number | string | false;
  /** Resident set size above which requests are shed. Off unless set. @default false */
  readonly maxRssBytes?: number | string | false;
  /** How often the figures are sampled. @default '1s' */
  readonly sampleInterval?: number | string;
}

/** Resolved overload thresholds. */
export interface OverloadConfig {
  readonly maxEventLoopDelayMs: number | undefined;
  readonly maxHeapUsedBytes: number | undefined;
  readonly maxRssBytes: number | undefined;
  readonly sampleIntervalMs: number;
}

const OVERLOAD_KEYS = ['maxEventLoopDelay', 'maxHeapUsedBytes', 'maxRssBytes', 'sampleInterval'] as const;

/** The histogram's timer resolution in ms; a delay is what exceeds it. */
const RESOLUTION_MS = 10;

/** Resolves the `overload` option (`false` turns shedding off). */
export function resolveOverload(value: OverloadOptions | false | undefined): OverloadConfig | undefined {
  if (value === false) return undefined;
  if (typeof value !== 'object' && value !== undefined) {
    throw new TypeError(`${PKG}: option "overload" must be an object or false, got ${String(value)}`);
  }
  const options = checkOptionsObject(PKG, 'circuitBreaker({ overload })', value, OVERLOAD_KEYS);
  const ms = (v: unknown, name: string, fallback: number | undefined, min: number) =>
    v === undefined ? fallback : v === false ? undefined : parseDuration(v, `overload.${name}`, { pkg: PKG, min });
  const bytes = (v: unknown, name: string) =>
    v === undefined || v === false ? undefined : parseBytes(v, `overload.${name}`, { pkg: PKG, min: 1 });
  const config: OverloadConfig = {
    maxEventLoopDelayMs: ms(options.maxEventLoopDelay, 'maxEventLoopDelay', 1000, 1),
    maxHeapUsedBytes: bytes(options.maxHeapUsedBytes, 'maxHeapUsedBytes'),
    maxRssBytes: bytes(options.maxRssBytes, 'maxRssBytes'),
    sampleIntervalMs: ms(options.sampleInterval, 'sampleInterval', 1000, 10) as number,
  };
  if (
    config.maxEventLoopDelayMs === undefined &&
    config.maxHeapUsedBytes === undefined &&
    config.maxRssBytes === undefined
  ) {
    return undefined;
  }
  return config;
}

/** Samples process figures and keeps the verdict the request path reads. */
export class OverloadMonitor {
  /** Replaced by runtime settings (`tune`); read per sample. */
  config: OverloadConfig;
  /** True while the last sample passed a threshold. */
  overloaded = false;
  reason: OverloadReason | undefined;
  eventLoopDelayMs = 0;
  heapUsedBytes = 0;
  rssBytes = 0;
  readonly #clock: BreakerClock;
  readonly #onChange: (event: OverloadEvent) => void;
  readonly #histogram: IntervalHistogram | undefined;
  #timer: TimerHandle | undefined;
  #expectedAt = 0;
  #closed = false;

  constructor(config: OverloadConfig, clock: BreakerClock, onChange: (event: OverloadEvent) => void) {
    this.config = config;
    this.#clock = clock;
    this.#onChange = onChange;
    if (config.maxEventLoopDelayMs !== undefined) {
      this.#histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
      this.#histogram.enable();
    }
    this.#schedule();
  }

  /** Takes one sample now and updates the verdict (the timer calls it; tests may too). */
  sample(): void {
    const config = this.config;
    let reason: OverloadReason | undefined;
    if (this.#histogram !== undefined) {
      // The worst timer lateness in the interval, or our own timer's drift if it is worse.
      const histogramMs = this.#histogram.count > 0 ? this.#histogram.max / 1e6 - RESOLUTION_MS : 0;
      const driftMs = this.#expectedAt > 0 ? this.#clock.now() - this.#expectedAt : 0;
      this.eventLoopDelayMs = Math.max(0, histogramMs, driftMs);
      this.#histogram.reset();
      if (this.eventLoopDelayMs > (config.maxEventLoopDelayMs as number)) reason = 'event-loop-delay';
    }
    if (config.maxHeapUsedBytes !== undefined) {
      this.heapUsedBytes = process.memoryUsage().heapUsed;
      if (reason === undefined && this.heapUsedBytes > config.maxHeapUsedBytes) reason = 'heap-used';
    }
    if (config.maxRssBytes !== undefined) {
      this.rssBytes = process.memoryUsage.rss();
      if (reason === undefined && this.rssBytes > config.maxRssBytes) reason = 'rss';
    }
    const overloaded = reason !== undefined;
    const changed = overloaded !== this.overloaded || reason !== this.reason;
    this.overloaded = overloaded;
    this.reason = reason;
    if (changed) {
      this.#onChange({
        overloaded,
        reason,
        eventLoopDelayMs: this.eventLoopDelayMs,
        heapUsedBytes: this.heapUsedBytes,
        rssBytes: this.rssBytes,
      });
    }
  }

  /** Stops sampling. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#histogram?.disable();
    this.overloaded = false;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#expectedAt = this.#clock.now() + this.config.sampleIntervalMs;
    this.#timer = this.#clock.setTimeout(() => {
      this.sample();
      this.#schedule();
    }, this.config.sampleIntervalMs);
  }
}
