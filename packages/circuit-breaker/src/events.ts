/**
 * Typed, disposable event listeners (ARCHITECTURE.md rule 10, like cockatiel's `Event`).
 * A listener that throws never breaks a request: the error is reported once through
 * the logger and the other listeners still run.
 */
import type { Disposable, OnceLogger } from '@perfstack/core';

/** A breaker state. */
export type BreakerStateName = 'closed' | 'open' | 'half-open';

/** Why a breaker opened. */
export type OpenReason = 'consecutive-failures' | 'failure-rate' | 'slow-call-rate' | 'half-open-failure';

/** Why a transition happened. */
export type TransitionReason = OpenReason | 'reset-timeout' | 'half-open-successes' | 'manual-reset';

/** Emitted on every state transition. */
export interface StateChangeEvent {
  readonly name: string;
  readonly from: BreakerStateName;
  readonly to: BreakerStateName;
  readonly reason: TransitionReason;
  /** Clock time of the transition. */
  readonly at: number;
}

/** Emitted when a request or call exceeded its time budget. */
export interface TimeoutEvent {
  readonly name: string;
  readonly timeoutMs: number;
}

/** Emitted when a request or call was turned away without running. */
export interface RejectionEvent {
  readonly name: string;
  /**
   * `circuit-open`: open, or half-open with every trial taken; `bulkhead-full`: over
   * `maxConcurrent` + `maxQueue`; `concurrency-limit`: over the adaptive concurrency limit.
   */
  readonly reason: 'circuit-open' | 'bulkhead-full' | 'concurrency-limit';
}

/** Emitted when process overload shedding turned a request away. */
export interface ShedEvent {
  readonly reason: OverloadReason;
  readonly path: string;
}

/** Which process figure passed its threshold. */
export type OverloadReason = 'event-loop-delay' | 'heap-used' | 'rss';

/** Emitted when the overload monitor changes its verdict. */
export interface OverloadEvent {
  readonly overloaded: boolean;
  readonly reason: OverloadReason | undefined;
  readonly eventLoopDelayMs: number;
  readonly heapUsedBytes: number;
  readonly rssBytes: number;
}

/** Emitted by the outbound breaker before it waits to retry a failed attempt. */
export interface RetryEvent {
  readonly name: string;
  /** The attempt that is about to run (2 for the first retry). */
  readonly attempt: number;
  /** The backoff delay before it, in milliseconds. */
  readonly delayMs: number;
  readonly error: unknown;
}

/** Events of the inbound middleware. */
export interface CircuitBreakerEvents {
  'state-change': StateChangeEvent;
  timeout: TimeoutEvent;
  rejection: RejectionEvent;
  shed: ShedEvent;
  overload: OverloadEvent;
}

/** Events of an outbound breaker. */
export interface OutboundBreakerEvents {
  'state-change': StateChangeEvent;
  timeout: TimeoutEvent;
  rejection: RejectionEvent;
  retry: RetryEvent;
}

/** A small typed event emitter. */
export class TypedEvents<M extends object> {
  readonly #listeners = new Map<keyof M, Set<(event: never) => void>>();
  readonly #log: OnceLogger;

  constructor(log: OnceLogger) {
    this.#log = log;
  }

  /** Adds a listener; dispose the result to remove it. */
  on<K extends keyof M>(event: K, listener: (event: M[K]) => void): Disposable {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    const entry = listener as (event: never) => void;
    set.add(entry);
    return {
      dispose: () => {
        set.delete(entry);
      },
    };
  }

  /** True when `event` has listeners (so that callers can skip building the payload). */
  has(event: keyof M): boolean {
    const set = this.#listeners.get(event);
    return set !== undefined && set.size > 0;
  }

  emit<K extends keyof M>(event: K, payload: M[K]): void {
    const set = this.#listeners.get(event);
    if (set === undefined || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        (listener as (event: M[K]) => void)(payload);
      } catch (error) {
        this.#log.errorOnce('CB_LISTENER_THREW', `a "${String(event)}" listener threw`, { error: String(error) });
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}
