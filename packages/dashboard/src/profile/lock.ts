/**
 * One profiling or heap operation at a time, across the whole process (every dashboard
 * instance in it shares this lock): two CPU profiles would sample each other, and two heap
 * snapshots would double the memory a snapshot costs.
 */
import { type ProfileKind, ProfilerBusyError } from '../errors.js';

interface Running {
  readonly kind: ProfileKind;
  /** When the operation should be done (ms since epoch), for `Retry-After`. */
  readonly until: number;
}

let running: Running | undefined;

/**
 * Takes the lock for `kind`, expected to last `expectedMs`.
 *
 * @returns the function that releases it (idempotent)
 * @throws {ProfilerBusyError} when another operation holds it
 */
export function acquireProfileLock(kind: ProfileKind, expectedMs: number): () => void {
  const now = Date.now();
  if (running !== undefined) throw new ProfilerBusyError(running.kind, (running.until - now) / 1000);
  const mine: Running = { kind, until: now + expectedMs };
  running = mine;
  return () => {
    if (running === mine) running = undefined;
  };
}

/** The operation holding the lock, if any. */
export function runningProfile(): ProfileKind | undefined {
  return running?.kind;
}
