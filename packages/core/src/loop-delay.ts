/**
 * Event-loop delay as the dashboard and timing report it: `perf_hooks.monitorEventLoopDelay`
 * at prom-client's 10 ms resolution, net of that resolution.
 *
 * The monitor is a libuv timer that fires every `resolution` ms and records the time since it
 * last fired, so each sample is the resolution plus the lateness: an idle process at the
 * default 10 ms resolution reads p50 ≈ 10 ms, which is the timer's period, not lag. Here the
 * period is subtracted from every figure: an idle process reads p50 ≈ 0–0.2 ms. The period
 * stays at 10 ms (prom-client's default precision): at 1 ms an idle process paid about 2% of
 * a core in timer wake-ups (measured in the dashboard README); the price of 10 ms is that a
 * stall shorter than 10 ms is seen only when it overlaps the timer's due time.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** The monitor's timer period, ms (prom-client's default precision); subtracted from every reading. */
export const LOOP_DELAY_RESOLUTION_MS = 10;

/** Event-loop delay percentiles, ms, net of the monitor's period. */
export interface LoopDelayFigures {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

const NO_DELAY: LoopDelayFigures = { p50: 0, p99: 0, max: 0 };

/** The lateness a histogram reading (ns) stands for, in ms: the reading minus the period, never below 0. */
export function loopDelayMs(nanoseconds: number): number {
  return Math.max(0, nanoseconds / 1e6 - LOOP_DELAY_RESOLUTION_MS);
}

/** An enabled event-loop delay monitor; each {@link LoopDelayMonitor.take} covers the time since the last. */
export class LoopDelayMonitor {
  readonly #histogram: IntervalHistogram;
  #last: LoopDelayFigures = NO_DELAY;
  #closed = false;

  constructor() {
    this.#histogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    this.#histogram.enable();
  }

  /**
   * p50, p99 and max since the previous call, then starts over. When the timer has not fired
   * since (two calls within one period), the previous figures rather than zeros:
   * no sample is no evidence of an idle loop. Zeros before the first sample.
   */
  take(): LoopDelayFigures {
    const h = this.#histogram;
    // With no sample, the histogram's min/max are sentinels.
    if (h.count === 0) return this.#last;
    this.#last = {
      p50: loopDelayMs(h.percentile(50)),
      p99: loopDelayMs(h.percentile(99)),
      max: loopDelayMs(h.max),
    };
    if (!this.#closed) h.reset();
    return this.#last;
  }

  /** Stops the timer. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#histogram.disable();
  }
}
