/**
 * The time source of every breaker. Tests inject a controllable clock so that each state
 * transition (open → half-open after `resetTimeout`, rolling windows, time budgets) is
 * proven without waiting; production uses {@link systemClock}, whose timers are `unref()`ed
 * so that a breaker never keeps a process alive (ARCHITECTURE.md rule 9).
 */

/** A timer handle as returned by {@link BreakerClock.setTimeout}. */
export type TimerHandle = unknown;

/** Time and timers, injectable for tests. */
export interface BreakerClock {
  /** Milliseconds since the epoch (or any monotonic origin; only differences matter, except in snapshots). */
  now(): number;
  /** Runs `callback` once after `ms` milliseconds; the timer must not keep the process alive. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Cancels a timer made by {@link BreakerClock.setTimeout}. */
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: `Date.now()` and `unref()`ed timers. */
export const systemClock: BreakerClock = {
  now: Date.now,
  setTimeout(callback, ms) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return timer;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** True when `value` has the three clock methods. */
export function isClock(value: unknown): value is BreakerClock {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as BreakerClock).now === 'function' &&
    typeof (value as BreakerClock).setTimeout === 'function' &&
    typeof (value as BreakerClock).clearTimeout === 'function'
  );
}
