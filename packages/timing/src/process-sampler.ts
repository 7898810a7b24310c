/**
 * Process figures for the snapshot and the CPU/memory alert rules, sampled on a timer and
 * never on the request path (like @fastify/under-pressure): event-loop delay from
 * `perf_hooks.monitorEventLoopDelay` at 1 ms, net of that period (core's `LoopDelayMonitor`),
 * CPU from `process.cpuUsage()` deltas, memory from `process.memoryUsage()` against V8's heap
 * limit.
 */
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { LoopDelayMonitor, type ProcessStats } from '@perfstack/core';

/** Samples this process; each `sample()` covers the time since the previous one. */
export class ProcessSampler {
  readonly #eventLoop = new LoopDelayMonitor();
  readonly #heapLimit = getHeapStatistics().heap_size_limit;
  #lastCpu = process.cpuUsage();
  #lastAt = performance.now();

  /** Figures since the previous sample (CPU, event-loop delay) and now (memory). */
  sample(): ProcessStats {
    const now = performance.now();
    const cpu = process.cpuUsage();
    const cpuMicros = cpu.user - this.#lastCpu.user + (cpu.system - this.#lastCpu.system);
    const elapsedMicros = (now - this.#lastAt) * 1000;
    this.#lastCpu = cpu;
    this.#lastAt = now;
    const memory = process.memoryUsage();
    const stats: ProcessStats = {
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      heapLimitBytes: this.#heapLimit,
      eventLoopDelayMs: this.#eventLoop.take(),
      cpuPercent: elapsedMicros > 0 ? (cpuMicros / elapsedMicros) * 100 : 0,
      uptimeSeconds: process.uptime(),
    };
    return stats;
  }

  /** Stops the event-loop monitor. */
  close(): void {
    this.#eventLoop.close();
  }
}
