/**
 * The breaker state machine (ARCHITECTURE.md rule 10): the state is a tagged union, and each
 * transition is one method — {@link BreakerStateMachine.toOpen}, `toHalfOpen`, `toClosed`
 * and the operator's `reset`. The inbound middleware and the outbound breaker both drive
 * this one machine, so they share semantics and tests.
 *
 * Calls take a *permit* ({@link BreakerStateMachine.acquire}) and give it back with an
 * outcome (`onSuccess`, `onFailure`, `onCancel`). A permit is the state's epoch: every
 * transition starts a new epoch, so an outcome that arrives after the state moved on
 * (a slow call that started while closed and ends while open) cannot steer the new state.
 *
 * Open → half-open happens lazily, on the first permit asked for after `resetTimeout`
 * (and on `snapshot()`), so an idle breaker costs no timer.
 */
import type { BreakerSnapshot } from '@perfstack/core';
import type { BreakerClock } from './clock.js';
import type { BreakerStateName, OpenReason, StateChangeEvent, TransitionReason } from './events.js';
import type { BreakerPolicy } from './policy.js';
import { RollingWindow } from './window.js';

/** Closed: calls flow; failures are counted. */
interface ClosedState {
  readonly name: 'closed';
  consecutiveFailures: number;
}

/** Open: calls are turned away until `halfOpenAt`. */
interface OpenState {
  readonly name: 'open';
  readonly openedAt: number;
  readonly halfOpenAt: number;
  readonly reason: OpenReason;
}

/** Half-open: up to `halfOpenMaxTrials` trial calls; `successThreshold` successes close, a failure reopens. */
interface HalfOpenState {
  readonly name: 'half-open';
  readonly since: number;
  /** Trials started and not given back. */
  trials: number;
  successes: number;
}

/** The breaker's state. */
export type BreakerState = ClosedState | OpenState | HalfOpenState;

/** Returned by {@link BreakerStateMachine.acquire} when the call must not run. */
export const REJECTED = -1;

export class BreakerStateMachine {
  readonly name: string;
  /** Replaced by runtime settings (`tune`); read per call. */
  policy: BreakerPolicy;
  readonly #clock: BreakerClock;
  readonly #onTransition: (event: StateChangeEvent) => void;
  readonly #window: RollingWindow | undefined;
  #state: BreakerState = { name: 'closed', consecutiveFailures: 0 };
  #epoch = 0;
  #lastOpenedAt: number | undefined;
  /** Totals since creation, for snapshots. */
  failures = 0;
  successes = 0;
  rejected = 0;
  timeouts = 0;

  constructor(
    name: string,
    policy: BreakerPolicy,
    clock: BreakerClock,
    onTransition: (event: StateChangeEvent) => void,
  ) {
    this.name = name;
    this.policy = policy;
    this.#clock = clock;
    this.#onTransition = onTransition;
    this.#window =
      policy.failureRateThreshold !== undefined || policy.slowCallMs !== undefined
        ? new RollingWindow(policy.rollingWindowMs)
        : undefined;
  }

  /** The current state (after a due open → half-open transition). */
  get state(): BreakerStateName {
    return this.#refresh().name;
  }

  /**
   * Asks to run one call. Returns a permit (give it back with an outcome) or
   * {@link REJECTED}.
   */
  acquire(): number {
    let state = this.#state;
    if (state.name === 'closed') return this.#epoch;
    if (state.name === 'open') {
      if (this.#clock.now() < state.halfOpenAt) {
        this.rejected++;
        return REJECTED;
      }
      state = this.toHalfOpen();
    }
    if (state.trials >= this.policy.halfOpenMaxTrials) {
      this.rejected++;
      return REJECTED;
    }
    state.trials++;
    return this.#epoch;
  }

  /** True when {@link acquire} would now reject because the breaker is open (asks without changing anything). */
  rejectsNow(): boolean {
    const state = this.#state;
    return state.name === 'open' && this.#clock.now() < state.halfOpenAt;
  }

  /** Milliseconds until a rejected caller may try again: until half-open when open, else 0. */
  retryAfterMs(): number {
    const state = this.#state;
    return state.name === 'open' ? Math.max(0, state.halfOpenAt - this.#clock.now()) : 0;
  }

  /** The call behind `permit` succeeded after `durationMs`. */
  onSuccess(permit: number, durationMs: number): void {
    this.successes++;
    if (permit !== this.#epoch) return;
    const state = this.#state;
    const slow = this.policy.slowCallMs !== undefined && durationMs >= this.policy.slowCallMs;
    if (state.name === 'closed') {
      state.consecutiveFailures = 0;
      if (this.#window !== undefined) {
        this.#window.add(this.#clock.now(), false, slow);
        if (slow) this.#checkRates();
      }
    } else if (state.name === 'half-open') {
      // A slow trial says the dependency has not recovered yet.
      if (slow) {
        this.toOpen('slow-call-rate');
        return;
      }
      state.successes++;
      if (state.successes >= this.policy.successThreshold) this.toClosed('half-open-successes');
    }
  }

  /** The call behind `permit` failed (a timeout when `timedOut`). */
  onFailure(permit: number, durationMs: number, timedOut = false): void {
    this.failures++;
    if (timedOut) this.timeouts++;
    if (permit !== this.#epoch) return;
    const state = this.#state;
    if (state.name === 'closed') {
      state.consecutiveFailures++;
      if (this.#window !== undefined) {
        const slow = this.policy.slowCallMs !== undefined && durationMs >= this.policy.slowCallMs;
        this.#window.add(this.#clock.now(), true, slow);
      }
      if (this.policy.failureThreshold > 0 && state.consecutiveFailures >= this.policy.failureThreshold) {
        this.toOpen('consecutive-failures');
        return;
      }
      this.#checkRates();
    } else if (state.name === 'half-open') {
      this.toOpen('half-open-failure');
    }
  }

  /** The call behind `permit` ended without an outcome (client went away, bulkhead full): no verdict. */
  onCancel(permit: number): void {
    if (permit !== this.#epoch) return;
    const state = this.#state;
    if (state.name === 'half-open' && state.trials > 0) state.trials--;
  }

  /** Transition: → open. */
  toOpen(reason: OpenReason): OpenState {
    const from = this.#state.name;
    const now = this.#clock.now();
    const state: OpenState = { name: 'open', openedAt: now, halfOpenAt: now + this.policy.resetTimeoutMs, reason };
    this.#enter(state, from, reason, now);
    this.#lastOpenedAt = now;
    this.#window?.clear();
    return state;
  }

  /** Transition: open → half-open (after `resetTimeout`). */
  toHalfOpen(): HalfOpenState {
    const from = this.#state.name;
    const now = this.#clock.now();
    const state: HalfOpenState = { name: 'half-open', since: now, trials: 0, successes: 0 };
    this.#enter(state, from, 'reset-timeout', now);
    return state;
  }

  /** Transition: → closed. */
  toClosed(reason: 'half-open-successes' | 'manual-reset'): ClosedState {
    const from = this.#state.name;
    const state: ClosedState = { name: 'closed', consecutiveFailures: 0 };
    this.#enter(state, from, reason, this.#clock.now());
    this.#window?.clear();
    return state;
  }

  /** Operator reset: closed, with no failures remembered. Emits only if the state changes. */
  reset(): void {
    this.toClosed('manual-reset');
  }

  /** What the dashboard shows. */
  snapshot(): BreakerSnapshot {
    const state = this.#refresh();
    return {
      name: this.name,
      state: state.name,
      failures: this.failures,
      successes: this.successes,
      rejected: this.rejected,
      timeouts: this.timeouts,
      ...(state.name !== 'closed' && this.#lastOpenedAt !== undefined ? { openedAt: this.#lastOpenedAt } : {}),
    };
  }

  #refresh(): BreakerState {
    const state = this.#state;
    if (state.name === 'open' && this.#clock.now() >= state.halfOpenAt) return this.toHalfOpen();
    return state;
  }

  #enter(state: BreakerState, from: BreakerStateName, reason: TransitionReason, at: number): void {
    this.#state = state;
    this.#epoch++;
    if (from !== state.name) this.#onTransition({ name: this.name, from, to: state.name, reason, at });
  }

  #checkRates(): void {
    const window = this.#window;
    if (window === undefined) return;
    const totals = window.totals(this.#clock.now());
    if (totals.calls < this.policy.minimumRequests) return;
    const rate = this.policy.failureRateThreshold;
    if (rate !== undefined && totals.failures >= rate * totals.calls) {
      this.toOpen('failure-rate');
    } else if (
      this.policy.slowCallMs !== undefined &&
      totals.slow >= this.policy.slowCallRateThreshold * totals.calls
    ) {
      this.toOpen('slow-call-rate');
    }
  }
}
