/**
 * The dashboard's own errors. Both are {@link HttpProblemError}s (problem+json, RFC 9457)
 * built on codes from core's table, with a `reason` extension that tells them apart from the
 * layers' 429s and 503s.
 */
import { HttpProblemError } from '@perfstack/core';

/** What a profiling operation records (`continuous-cpu`: a recording of continuous profiling). */
export type ProfileKind = 'cpu' | 'heap-snapshot' | 'heap-sampling' | 'continuous-cpu';

/**
 * **429 `RATE_LIMITED`**, `reason: 'profiler-busy'`: another profiling or heap operation is
 * running in this process (one at a time: two profilers would measure each other).
 * `Retry-After` says when the running one should be done.
 */
export class ProfilerBusyError extends HttpProblemError {
  readonly reason = 'profiler-busy';
  /** The operation that is running. */
  readonly running: ProfileKind;

  constructor(running: ProfileKind, retryAfterSeconds: number) {
    super({
      code: 'RATE_LIMITED',
      detail: `A ${running} operation is already running in this process; one profiling operation runs at a time.`,
      extensions: { reason: 'profiler-busy', running },
      headers: { 'Retry-After': Math.max(1, Math.ceil(retryAfterSeconds)) },
    });
    this.running = running;
  }
}

/** True for a {@link ProfilerBusyError}. */
export function isProfilerBusyError(error: unknown): error is ProfilerBusyError {
  return error instanceof ProfilerBusyError;
}

/** The figures a memory refusal was based on. */
export interface MemoryFigures {
  readonly heapUsedBytes: number;
  readonly heapLimitBytes: number;
  /** What the operation is estimated to need on top. */
  readonly estimatedBytes: number;
  /** Free system memory (or the container's limit minus RSS, when smaller). */
  readonly availableBytes: number;
  /** `profiling.maxHeapShare`. */
  readonly maxHeapShare: number;
}

/**
 * **503 `OVERLOADED`**, `reason: 'memory-tight'`: taking a heap snapshot or a sampling heap
 * profile now could push the process out of memory. `Retry-After: 30`.
 */
export class MemoryTightError extends HttpProblemError {
  readonly reason = 'memory-tight';
  readonly figures: MemoryFigures;

  constructor(kind: ProfileKind, detail: string, figures: MemoryFigures) {
    super({
      code: 'OVERLOADED',
      detail: `${kind} refused: ${detail}`,
      extensions: { reason: 'memory-tight', operation: kind, ...figures },
      headers: { 'Retry-After': 30 },
    });
    this.figures = figures;
  }
}

/** True for a {@link MemoryTightError}. */
export function isMemoryTightError(error: unknown): error is MemoryTightError {
  return error instanceof MemoryTightError;
}
