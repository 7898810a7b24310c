/**
 * Process figures for the dashboard when no timing source provides them: memory, CPU
 * share and event-loop delay, measured on an `unref()`ed timer (ARCHITECTURE.md rule 6:
 * costly measurements are sampled off the request path).
 */

import { getHeapStatistics } from 'node:v8';
import { LoopDelayMonitor, type ProcessStats } from '@perfstack/core';

/** Samples the process every `interval` ms while it is running. */
export class ProcessSampler {
  readonly #interval: number;
  #loop: LoopDelayMonitor | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastCpu = process.cpuUsage();
  #lastAt = process.hrtime.bigint();
  #cpuPercent = 0;
  #delay = { p50: 0, p99: 0, max: 0 };

  constructor(interval = 1000) {
    this.#interval = interval;
  }

  /** Starts sampling (idempotent). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#loop = new LoopDelayMonitor();
    this.#timer = setInterval(() => this.#sample(), this.#interval);
    this.#timer.unref();
  }

  #sample(): void {
    const now = process.hrtime.bigint();
    const cpu = process.cpuUsage(this.#lastCpu);
    const elapsedUs = Number(now - this.#lastAt) / 1000;
    this.#cpuPercent = elapsedUs > 0 ? Math.round(((cpu.user + cpu.system) / elapsedUs) * 1000) / 10 : 0;
    this.#lastCpu = process.cpuUsage();
    this.#lastAt = now;
    const delay = this.#loop?.take();
    // Event-loop delay net of the monitor's 1 ms period (core's LoopDelayMonitor).
    if (delay !== undefined) this.#delay = { p50: round(delay.p50), p99: round(delay.p99), max: round(delay.max) };
  }

  /** The latest figures (memory is read now; CPU and delay come from the last sample). */
  stats(): ProcessStats {
    const memory = process.memoryUsage();
    return {
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      heapLimitBytes: getHeapStatistics().heap_size_limit,
      eventLoopDelayMs: this.#delay,
      cpuPercent: this.#cpuPercent,
      uptimeSeconds: Math.round(process.uptime()),
    };
  }

  /** Stops sampling. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#loop?.close();
    this.#loop = undefined;
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
