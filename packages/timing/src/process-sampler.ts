/**
 * Process figures for the snapshot and the CPU/memory alert rules, sampled on a timer and
 * never on the request path (like @fastify/under-pressure): event-loop delay from
 * `perf_hooks.monitorEventLoopDelay`, CPU from `process.cpuUsage()` deltas, memory from
 * `process.memoryUsage()` against V8's heap limit.
 */
import { type IntervalHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { ProcessStats } from '@perfstack/core';

/** Resolution of the event-loop delay monitor, ms. */
const EVENT_LOOP_RESOLUTION_MS = 10;

/** Samples this process; each `sample()` covers the time since the previous one. */
export class ProcessSampler {
  readonly #eventLoop: IntervalHistogram;
  readonly #heapLimit = getHeapStatistics().heap_size_limit;
  #lastCpu = process.cpuUsage();
  #lastAt = performance.now();
  #closed = false;

  constructor() {
    this.#eventLoop = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    this.#eventLoop.enable();
  }

  /** Figures since the previous sample (CPU, event-loop delay) and now (memory). */
  sample(): ProcessStats {
    const now = performance.now();
    const cpu = process.cpuUsage();
    const cpuMicros = cpu.user - this.#lastCpu.user + (cpu.system - this.#lastCpu.system);
    const elapsedMicros = (now - this.#lastAt) * 1000;
    this.#lastCpu = cpu;
    this.#lastAt = now;
    const memory = process.memoryUsage();
    const loop = this.#eventLoop;
    // The histogram holds nanoseconds; with no sample yet its min/max are sentinels.
    const hasLoopData = loop.count > 0;
    const stats: ProcessStats = {
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      heapLimitBytes: this.#heapLimit,
      eventLoopDelayMs: {
        p50: hasLoopData ? loop.percentile(50) / 1e6 : 0,
        p99: hasLoopData ? loop.percentile(99) / 1e6 : 0,
        max: hasLoopData ? loop.max / 1e6 : 0,
      },
      cpuPercent: elapsedMicros > 0 ? (cpuMicros / elapsedMicros) * 100 : 0,
      uptimeSeconds: process.uptime(),
    };
    if (!this.#closed) loop.reset();
    return stats;
  }

  /** Stops the event-loop monitor. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#eventLoop.disable();
  }
}
