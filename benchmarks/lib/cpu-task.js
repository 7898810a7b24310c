/**
 * The CPU-bound task of offload-latency.js: busy for `ms` milliseconds of its thread's CPU
 * time (not wall time: a task that is descheduled still does its full share of work), then
 * returns `{ ms }`. Run in a piscina worker (offloaded) or on the event loop (inline).
 */
import { threadCpuMs } from './thread-cpu.js';

export default function cpuTask({ ms }) {
  const end = threadCpuMs() + ms;
  let x = 0;
  // Checking the clock every 10,000 iterations keeps the clock's own cost out of the work.
  for (;;) {
    for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + i);
    if (threadCpuMs() >= end) break;
  }
  return { ms, x: x > 0 };
}
