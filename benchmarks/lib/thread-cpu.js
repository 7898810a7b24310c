/**
 * CPU time of the calling thread in milliseconds (Linux: `/proc/thread-self/schedstat`, time on
 * the CPU in nanoseconds); falls back to the process's CPU time elsewhere.
 */
import { readFileSync } from 'node:fs';

let perThread = true;
export function threadCpuMs() {
  if (perThread) {
    try {
      return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
    } catch {
      perThread = false;
    }
  }
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
