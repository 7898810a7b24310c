/**
 * Leak watch — the Node analogue of goroutine-leak detection. On an `unref()`ed timer it
 * samples the heap used after GC, the count of active handles and requests, and event-loop
 * utilisation; over a window of samples it fits a least-squares line to each, and a
 * sustained climb (enough growth, absolute and relative, with a good fit) raises an
 * alert in core's `Alert` shape with the numbers.
 */
import { constants, type EventLoopUtilization, PerformanceObserver, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { Alert, OnceLogger } from '@perfstack/core';

/** One sample. `sample()` options return this (tests inject their own). */
export interface LeakSample {
  /** When it was taken, ms since epoch. @default Date.now() at the tick */
  readonly at?: number;
  /** Heap used after GC, bytes (the process sampler reads it after the latest major GC). */
  readonly heapUsedBytes: number;
  /** Active handles plus requests (`process.getActiveResourcesInfo().length`). */
  readonly activeResources: number;
  /** Event-loop utilisation over the interval, 0..1. */
  readonly eventLoopUtilization: number;
  /** Active resources by type (`TCPSocketWrap`, `Timeout`...), to say what leaks. */
  readonly resourceTypes?: Readonly<Record<string, number>>;
}

/** The watched metrics. */
export type LeakMetric = 'heapUsedBytes' | 'activeResources' | 'eventLoopUtilization';

/** The resolved settings. */
export interface LeakWatchConfig {
  readonly interval: number;
  readonly window: number;
  readonly minSamples: number;
  readonly minR2: number;
  readonly minGrowth: number;
  readonly minHeapGrowth: number;
  readonly minResourceGrowth: number;
  readonly minEluGrowth: number;
  readonly sample: (() => LeakSample) | undefined;
}

/** The trend of one metric over the window. */
export interface LeakTrend {
  readonly metric: LeakMetric;
  readonly samples: number;
  readonly first: number;
  readonly latest: number;
  /** Least-squares slope, per minute. */
  readonly slopePerMinute: number;
  /** Growth of the fitted line over the window (its end minus its start). */
  readonly growth: number;
  /** `growth` over the fitted start; 0 when the start is 0. */
  readonly relativeGrowth: number;
  /** Coefficient of determination of the fit, 0..1. */
  readonly r2: number;
  /** True when every rule holds (see the README). */
  readonly rising: boolean;
}

/** `GET /api/leaks`. */
export interface LeakReport {
  readonly enabled: true;
  readonly intervalMs: number;
  readonly window: number;
  readonly thresholds: {
    readonly minSamples: number;
    readonly minR2: number;
    readonly minGrowth: number;
    readonly minHeapGrowth: number;
    readonly minResourceGrowth: number;
    readonly minEluGrowth: number;
  };
  readonly samples: ReadonlyArray<Required<Omit<LeakSample, 'resourceTypes'>>>;
  readonly resourceTypes: Readonly<Record<string, number>>;
  readonly trends: readonly LeakTrend[];
  readonly alerts: readonly Alert[];
}

/** Least-squares line through (x, y): slope, intercept and R². */
export function fitLine(
  xs: readonly number[],
  ys: readonly number[],
): { slope: number; intercept: number; r2: number } {
  const n = xs.length;
  if (n < 2) return { slope: 0, intercept: ys[0] ?? 0, r2: 0 };
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < n; i++) {
    sx += xs[i]!;
    sy += ys[i]!;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx;
    const dy = ys[i]! - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (sxx === 0) return { slope: 0, intercept: my, r2: 0 };
  const slope = sxy / sxx;
  // A flat series has nothing to explain: no trend.
  const r2 = syy === 0 ? 0 : (sxy * sxy) / (sxx * syy);
  return { slope, intercept: my - slope * mx, r2 };
}

/**
 * The default sampler: reads the real process, cheaply (no `process.memoryUsage()`, which
 * reads /proc).
 *
 * "Heap used after GC" is the heap read right after the latest **major** collection
 * (mark-compact), seen through a `PerformanceObserver` on `gc` entries: only a major GC
 * frees the old generation, so between two of them the heap in use also counts garbage that
 * minor GCs promoted, and would climb on a perfectly steady app. Until the first major GC the
 * sampler falls back to the smallest reading since the previous sample.
 */
export class ProcessLeakSampler {
  #minHeap = Number.POSITIVE_INFINITY;
  #afterMajorGc: number | undefined;
  #elu: EventLoopUtilization = performance.eventLoopUtilization();
  #observer: PerformanceObserver | undefined;

  /** Watches GC entries. */
  start(): void {
    if (this.#observer !== undefined) return;
    this.#observer = new PerformanceObserver((list) => {
      const used = getHeapStatistics().used_heap_size;
      if (used < this.#minHeap) this.#minHeap = used;
      for (const entry of list.getEntries()) {
        const kind = (entry as { detail?: { kind?: number } | null }).detail?.kind;
        if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
          this.#afterMajorGc = used;
          break;
        }
      }
    });
    this.#observer.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    this.#observer?.disconnect();
    this.#observer = undefined;
  }

  /** Takes one sample. */
  sample(): LeakSample {
    const used = getHeapStatistics().used_heap_size;
    const heap = this.#afterMajorGc ?? Math.min(used, this.#minHeap);
    this.#minHeap = Number.POSITIVE_INFINITY;
    const info = process.getActiveResourcesInfo();
    const types: Record<string, number> = {};
    for (const type of info) types[type] = (types[type] ?? 0) + 1;
    const now = performance.eventLoopUtilization();
    const elu = performance.eventLoopUtilization(now, this.#elu).utilization;
    this.#elu = now;
    return {
      heapUsedBytes: heap,
      activeResources: info.length,
      eventLoopUtilization: Number.isFinite(elu) ? elu : 0,
      resourceTypes: types,
    };
  }
}

const METRICS: readonly LeakMetric[] = ['heapUsedBytes', 'activeResources', 'eventLoopUtilization'];

const round = (value: number, digits = 4) => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Samples on a timer, keeps the window, computes trends and alerts. */
export class LeakWatch {
  readonly #config: LeakWatchConfig;
  readonly #log: OnceLogger;
  readonly #sampler: ProcessLeakSampler | undefined;
  readonly #samples: Array<Required<Omit<LeakSample, 'resourceTypes'>>> = [];
  #resourceTypes: Readonly<Record<string, number>> = {};
  #trends: LeakTrend[] = [];
  readonly #since = new Map<LeakMetric, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(config: LeakWatchConfig, log: OnceLogger) {
    this.#config = config;
    this.#log = log;
    this.#sampler = config.sample === undefined ? new ProcessLeakSampler() : undefined;
  }

  /** Starts the timer (idempotent). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#sampler?.start();
    this.#timer = setInterval(() => this.tick(), this.#config.interval);
    this.#timer.unref();
  }

  /** Stops the timer and the GC observer. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sampler?.stop();
  }

  /** Takes one sample now and re-evaluates the trends (the timer calls this; tests may too). */
  tick(): void {
    let raw: LeakSample;
    try {
      raw = this.#config.sample === undefined ? this.#sampler!.sample() : this.#config.sample();
    } catch (error) {
      this.#log.errorOnce('DASHBOARD_LEAK_SAMPLE_FAILED', 'the leak-watch sample() threw; sample skipped', {
        error: error instanceof Error ? error.message : String(error),
      });
      return;
    }
    const at = raw?.at ?? Date.now();
    if (
      typeof raw !== 'object' ||
      raw === null ||
      ![at, raw.heapUsedBytes, raw.activeResources, raw.eventLoopUtilization].every((v) => Number.isFinite(v))
    ) {
      this.#log.warnOnce(
        'DASHBOARD_LEAK_SAMPLE_INVALID',
        'the leak-watch sample() returned a non-numeric sample; skipped',
      );
      return;
    }
    this.#samples.push({
      at,
      heapUsedBytes: raw.heapUsedBytes,
      activeResources: raw.activeResources,
      eventLoopUtilization: round(raw.eventLoopUtilization),
    });
    if (this.#samples.length > this.#config.window) this.#samples.shift();
    if (raw.resourceTypes !== undefined) this.#resourceTypes = raw.resourceTypes;
    this.#trends = METRICS.map((metric) => this.#trend(metric));
    for (const trend of this.#trends) {
      if (!trend.rising) this.#since.delete(trend.metric);
      else if (!this.#since.has(trend.metric)) this.#since.set(trend.metric, at);
    }
  }

  #trend(metric: LeakMetric): LeakTrend {
    const c = this.#config;
    const samples = this.#samples;
    const t0 = samples[0]?.at ?? 0;
    const xs = samples.map((s) => (s.at - t0) / 1000);
    const ys = samples.map((s) => s[metric]);
    const { slope, intercept, r2 } = fitLine(xs, ys);
    const span = xs.length > 0 ? xs[xs.length - 1]! : 0;
    const start = intercept;
    const growth = slope * span;
    const relative = start > 0 ? growth / start : 0;
    const minAbsolute =
      metric === 'heapUsedBytes'
        ? c.minHeapGrowth
        : metric === 'activeResources'
          ? c.minResourceGrowth
          : c.minEluGrowth;
    // Utilisation is already a share: its growth is judged in absolute points only.
    const relativeOk = metric === 'eventLoopUtilization' || relative >= c.minGrowth;
    const rising = samples.length >= c.minSamples && r2 >= c.minR2 && growth >= minAbsolute && relativeOk;
    return {
      metric,
      samples: samples.length,
      first: ys[0] ?? 0,
      latest: ys[ys.length - 1] ?? 0,
      slopePerMinute: round(slope * 60, metric === 'eventLoopUtilization' ? 4 : 2),
      growth: round(growth, metric === 'eventLoopUtilization' ? 4 : 1),
      relativeGrowth: round(relative),
      r2: round(r2),
      rising,
    };
  }

  /** The alerts that hold now. */
  alerts(): Alert[] {
    const out: Alert[] = [];
    const samples = this.#samples;
    const spanMs = samples.length > 1 ? samples[samples.length - 1]!.at - samples[0]!.at : 0;
    const over = `over ${Math.round(spanMs / 1000)} s (${samples.length} samples`;
    for (const t of this.#trends) {
      if (!t.rising) continue;
      const since = this.#since.get(t.metric) ?? Date.now();
      const fit = `R² ${t.r2.toFixed(2)})`;
      if (t.metric === 'heapUsedBytes') {
        out.push({
          id: 'leak:heap',
          rule: 'leak-heap',
          severity: t.relativeGrowth >= 1 ? 'critical' : 'warning',
          since,
          value: t.relativeGrowth,
          threshold: this.#config.minGrowth,
          message:
            `Heap used after GC keeps rising: ${mb(t.first)} → ${mb(t.latest)} ${over}, ` +
            `+${mb(t.slopePerMinute)}/min, +${Math.round(t.relativeGrowth * 100)}%, ${fit}.`,
          recommendation:
            'Something keeps objects alive request after request. Take two heap snapshots a few minutes apart ' +
            '(Profiling → Heap snapshot) and compare them in Chrome DevTools (Memory → Comparison), or run a heap ' +
            'sampling profile to see the allocation sites; look for module-level arrays and maps, caches without ' +
            'a bound, and listeners or closures added per request.',
          layer: 'process',
        });
      } else if (t.metric === 'activeResources') {
        const top = Object.entries(this.#resourceTypes)
          .sort((a, b) => b[1] - a[1])
          .slice(0, 3)
          .map(([type, n]) => `${type} ×${n}`)
          .join(', ');
        out.push({
          id: 'leak:handles',
          rule: 'leak-handles',
          severity: t.relativeGrowth >= 1 ? 'critical' : 'warning',
          since,
          value: t.relativeGrowth,
          threshold: this.#config.minGrowth,
          message:
            `Active handles and requests keep rising: ${t.first} → ${t.latest} ${over}, ` +
            `+${t.slopePerMinute}/min, ${fit}${top ? `; most common: ${top}` : ''}.`,
          recommendation:
            'Sockets, timers or file handles are opened and never closed: check that every setInterval is ' +
            'cleared, every outbound connection and stream is ended or destroyed on error, and that keep-alive ' +
            'agents are shared rather than created per request.',
          layer: 'process',
        });
      } else {
        out.push({
          id: 'leak:event-loop',
          rule: 'leak-event-loop',
          severity: t.latest >= 0.9 ? 'critical' : 'warning',
          since,
          value: t.growth,
          threshold: this.#config.minEluGrowth,
          message:
            `Event-loop utilisation keeps rising: ${Math.round(t.first * 100)}% → ${Math.round(t.latest * 100)}% ` +
            `${over}, ${fit}.`,
          recommendation:
            'Work per tick grows over time — often a list that grows and is scanned on every request or timer. ' +
            'Record a CPU profile (Profiling → CPU) and look at the top self-time functions.',
          layer: 'process',
        });
      }
    }
    return out;
  }

  /** Samples, trends and alerts for `GET /api/leaks`. */
  report(): LeakReport {
    const c = this.#config;
    return {
      enabled: true,
      intervalMs: c.interval,
      window: c.window,
      thresholds: {
        minSamples: c.minSamples,
        minR2: c.minR2,
        minGrowth: c.minGrowth,
        minHeapGrowth: c.minHeapGrowth,
        minResourceGrowth: c.minResourceGrowth,
        minEluGrowth: c.minEluGrowth,
      },
      samples: [...this.#samples],
      resourceTypes: this.#resourceTypes,
      trends: this.#trends,
      alerts: this.alerts(),
    };
  }
}
