/**
 * The outbound breaker: guards a service's calls to a dependency (a database, another API)
 * with the same state machine as the inbound middleware, a time budget, a bulkhead and
 * retries with exponential backoff and full jitter. Per-dependency presets are plain
 * option objects.
 *
 * Order of the guards around one call: retry ⟶ breaker ⟶ bulkhead ⟶ timeout ⟶ fn.
 * Each attempt asks the breaker, so an open breaker stops the retries; a bulkhead slot is
 * held until the call settles or its budget runs out.
 */
import {
  type BreakerSnapshot,
  checkOptionsObject,
  consoleLogger,
  createRegistry,
  type Disposable,
  OnceLogger,
  optionTypeError,
  parseDuration,
  type Registry,
  readFunction,
  readInteger,
  readString,
  type SharedContext,
} from '@perfstack/core';
import type { RetryPolicy } from 'cockatiel';
import { Bulkhead } from './bulkhead.js';
import { type BreakerClock, isClock, systemClock } from './clock.js';
import { BreakerTimeoutError, BulkheadFullError, CircuitOpenError } from './errors.js';
import { type BreakerStateName, type OutboundBreakerEvents, TypedEvents } from './events.js';
import { type BreakerMetrics, breakerMetrics } from './metrics.js';
import { type BreakerPolicyOptions, PKG, POLICY_KEYS, resolvePolicy } from './policy.js';
import { type RetryConfig, type RetryOptions, resolveRetry, retryPolicy } from './retry.js';
import { BreakerStateMachine, REJECTED } from './state-machine.js';

/** Options of {@link createBreaker}. */
export interface OutboundBreakerOptions extends BreakerPolicyOptions, SharedContext {
  /** Name in snapshots, events and metric labels. @default the function's name, else 'breaker' */
  readonly name?: string;
  /** Time budget of one attempt; over it the attempt fails with `BreakerTimeoutError`. Off unless set. @default false */
  readonly timeout?: number | string | false;
  /** Attempts running at once; more wait in a queue. Off unless set. @default false */
  readonly maxConcurrent?: number | false;
  /** Attempts that may wait for a slot; beyond it `BulkheadFullError`. Needs `maxConcurrent`. @default 0 */
  readonly maxQueue?: number;
  /** Retries with exponential backoff and full jitter; `false` for none. @default false */
  readonly retry?: RetryOptions | false;
  /** Whether an error counts against the breaker (e.g. not a 404). @default () => true */
  readonly isFailure?: (error: unknown) => boolean;
  /** Time source, for tests. @default the system clock with unref()ed timers */
  readonly clock?: BreakerClock;
  /** Randomness for the backoff jitter, for tests. @default Math.random */
  readonly random?: () => number;
}

/** A snapshot of an outbound breaker. */
export interface OutboundBreakerSnapshot extends BreakerSnapshot {
  /** Attempts running now. */
  readonly active: number;
  /** Attempts waiting for a bulkhead slot. */
  readonly queued: number;
}

/** An outbound breaker; `fire` calls the function it was created with. */
export interface OutboundBreaker<A extends unknown[] = unknown[], R = unknown> {
  readonly name: string;
  /** The current state. */
  readonly state: BreakerStateName;
  /** Calls the breaker's function with `args` through every guard. */
  fire(...args: A): Promise<R>;
  /** Calls `fn(...args)` through every guard. */
  execute<FA extends unknown[], FR>(fn: (...args: FA) => FR | PromiseLike<FR>, ...args: FA): Promise<FR>;
  /** Adds a typed listener; dispose the result to remove it. */
  on<K extends keyof OutboundBreakerEvents>(event: K, listener: (event: OutboundBreakerEvents[K]) => void): Disposable;
  snapshot(): OutboundBreakerSnapshot;
  /** Operator reset: closed, failures forgotten. */
  reset(): void;
  /** Removes listeners and metrics sources; calls still work. */
  close(): Promise<void>;
  /** The registry the metrics are on. */
  readonly registry: Registry;
}

const OUTBOUND_KEYS = [
  ...POLICY_KEYS,
  'name',
  'timeout',
  'maxConcurrent',
  'maxQueue',
  'retry',
  'isFailure',
  'clock',
  'random',
  'registry',
  'redis',
  'logger',
] as const;

class Outbound<A extends unknown[], R> implements OutboundBreaker<A, R> {
  readonly name: string;
  readonly registry: Registry;
  readonly #fn: ((...args: A) => R | PromiseLike<R>) | undefined;
  readonly #machine: BreakerStateMachine;
  readonly #clock: BreakerClock;
  readonly #timeoutMs: number | undefined;
  readonly #bulkhead: Bulkhead | undefined;
  readonly #isFailure: (error: unknown) => boolean;
  readonly #retry: RetryPolicy | undefined;
  readonly #events: TypedEvents<OutboundBreakerEvents>;
  readonly #metrics: BreakerMetrics;

  constructor(fn: ((...args: A) => R | PromiseLike<R>) | undefined, input: OutboundBreakerOptions | undefined) {
    const options = checkOptionsObject(PKG, 'createBreaker', input, OUTBOUND_KEYS) as OutboundBreakerOptions;
    this.#fn = fn;
    this.name = readString(PKG, 'name', options.name, fn?.name ? fn.name : 'breaker');
    if (this.name === '') throw optionTypeError(PKG, 'name', options.name, 'a non-empty string');
    if (options.clock !== undefined && !isClock(options.clock)) {
      throw optionTypeError(PKG, 'clock', options.clock, 'an object with now(), setTimeout() and clearTimeout()');
    }
    this.#clock = options.clock ?? systemClock;
    const policy = resolvePolicy(options);
    this.#timeoutMs =
      options.timeout === undefined || options.timeout === false
        ? undefined
        : parseDuration(options.timeout, 'timeout', { pkg: PKG, min: 1 });
    const maxConcurrent =
      options.maxConcurrent === undefined || options.maxConcurrent === false
        ? undefined
        : readInteger(PKG, 'maxConcurrent', options.maxConcurrent, 1, 1);
    const maxQueue = readInteger(PKG, 'maxQueue', options.maxQueue, 0, 0);
    if (maxQueue > 0 && maxConcurrent === undefined) {
      throw new RangeError(`${PKG}: option "maxQueue" needs "maxConcurrent", got maxQueue ${maxQueue}`);
    }
    this.#bulkhead = maxConcurrent === undefined ? undefined : new Bulkhead(maxConcurrent, maxQueue);
    this.#isFailure = readFunction(PKG, 'isFailure', options.isFailure, () => true);
    const random = readFunction(PKG, 'random', options.random, Math.random);
    if (
      options.retry !== undefined &&
      options.retry !== false &&
      (typeof options.retry !== 'object' || options.retry === null)
    ) {
      throw optionTypeError(PKG, 'retry', options.retry, 'an object like { maxAttempts: 3 } or false');
    }
    const retry: RetryConfig | undefined = resolveRetry(options.retry);
    const log = new OnceLogger(options.logger ?? consoleLogger);
    this.#events = new TypedEvents(log);
    this.#machine = new BreakerStateMachine(this.name, policy, this.#clock, (event) =>
      this.#events.emit('state-change', event),
    );
    this.registry = options.registry ?? createRegistry();
    const machine = this.#machine;
    this.#metrics = breakerMetrics(this.registry, () => [machine]);
    if (retry !== undefined && retry.maxAttempts > 1) {
      const policyWithRetry = retryPolicy(retry, random);
      policyWithRetry.onRetry((event) => {
        this.#events.emit('retry', {
          name: this.name,
          attempt: event.attempt + 1,
          delayMs: event.delay,
          error: 'error' in event ? event.error : undefined,
        });
      });
      this.#retry = policyWithRetry;
    }
  }

  get state(): BreakerStateName {
    return this.#machine.state;
  }

  fire(...args: A): Promise<R> {
    const fn = this.#fn;
    if (fn === undefined) {
      return Promise.reject(
        new TypeError(`${PKG}: breaker "${this.name}" was created without a function; use execute(fn, ...args)`),
      );
    }
    return this.execute(fn, ...args);
  }

  execute<FA extends unknown[], FR>(fn: (...args: FA) => FR | PromiseLike<FR>, ...args: FA): Promise<FR> {
    if (typeof fn !== 'function') {
      return Promise.reject(new TypeError(`${PKG}: execute(fn, ...args) needs a function, got ${typeof fn}`));
    }
    const retry = this.#retry;
    if (retry === undefined) return this.#attempt(fn, args);
    return retry.execute(() => this.#attempt(fn, args));
  }

  on<K extends keyof OutboundBreakerEvents>(event: K, listener: (event: OutboundBreakerEvents[K]) => void): Disposable {
    return this.#events.on(event, listener);
  }

  snapshot(): OutboundBreakerSnapshot {
    return {
      ...this.#machine.snapshot(),
      active: this.#bulkhead?.active ?? 0,
      queued: this.#bulkhead?.queued ?? 0,
    };
  }

  reset(): void {
    this.#machine.reset();
  }

  async close(): Promise<void> {
    this.#events.clear();
    this.#metrics.detach();
  }

  /** One attempt: breaker permit, then bulkhead slot, then the call under its budget. */
  #attempt<FA extends unknown[], FR>(fn: (...args: FA) => FR | PromiseLike<FR>, args: FA): Promise<FR> {
    const machine = this.#machine;
    const permit = machine.acquire();
    if (permit === REJECTED) {
      this.#metrics.shortCircuits.inc({ breaker: this.name });
      this.#events.emit('rejection', { name: this.name, reason: 'circuit-open' });
      return Promise.reject(new CircuitOpenError(this.name, machine.retryAfterMs()));
    }
    const bulkhead = this.#bulkhead;
    if (bulkhead === undefined) return this.#run(fn, args, permit);
    return new Promise<FR>((resolve, reject) => {
      const waiter = () => {
        this.#run(fn, args, permit, bulkhead).then(resolve, reject);
      };
      const entry = bulkhead.enter(waiter);
      if (entry === 'run') waiter();
      else if (entry === 'full') {
        machine.onCancel(permit);
        this.#metrics.rejections.inc({ breaker: this.name });
        this.#events.emit('rejection', { name: this.name, reason: 'bulkhead-full' });
        reject(new BulkheadFullError(this.name));
      }
    });
  }

  #run<FA extends unknown[], FR>(
    fn: (...args: FA) => FR | PromiseLike<FR>,
    args: FA,
    permit: number,
    bulkhead?: Bulkhead,
  ): Promise<FR> {
    const machine = this.#machine;
    const clock = this.#clock;
    const startedAt = clock.now();
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        bulkhead?.leave();
      }
    };
    const succeeded = (value: FR): FR => {
      release();
      machine.onSuccess(permit, clock.now() - startedAt);
      return value;
    };
    const failed = (error: unknown): never => {
      release();
      if (this.#counts(error)) machine.onFailure(permit, clock.now() - startedAt);
      else machine.onSuccess(permit, clock.now() - startedAt);
      throw error;
    };
    let pending: Promise<FR>;
    try {
      pending = Promise.resolve(fn(...args));
    } catch (error) {
      return Promise.reject(error).catch(failed);
    }
    const timeoutMs = this.#timeoutMs;
    if (timeoutMs === undefined) return pending.then(succeeded, failed);
    return new Promise<FR>((resolve, reject) => {
      let settled = false;
      const timer = clock.setTimeout(() => {
        if (settled) return;
        settled = true;
        release();
        machine.onFailure(permit, clock.now() - startedAt, true);
        this.#metrics.timeouts.inc({ breaker: this.name });
        this.#events.emit('timeout', { name: this.name, timeoutMs });
        reject(new BreakerTimeoutError(this.name, timeoutMs));
      }, timeoutMs);
      pending.then(
        (value) => {
          if (settled) return;
          settled = true;
          clock.clearTimeout(timer);
          resolve(succeeded(value));
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          clock.clearTimeout(timer);
          try {
            failed(error);
          } catch (thrown) {
            reject(thrown);
          }
        },
      );
    });
  }

  #counts(error: unknown): boolean {
    try {
      return this.#isFailure(error);
    } catch {
      return true;
    }
  }
}

/**
 * Creates a breaker for outbound calls.
 *
 * @param fn the call `fire(...args)` makes (optional: `execute(fn, ...args)` takes any function)
 * @param options breaker policy, `timeout`, bulkhead (`maxConcurrent`, `maxQueue`), `retry`
 * @returns the breaker
 * @throws {TypeError|RangeError} on an invalid option, naming it
 * @example
 * const users = createBreaker((id: string) => fetchUser(id), {
 *   name: 'users-api', failureThreshold: 5, resetTimeout: '30s', timeout: '2s', maxConcurrent: 20,
 *   retry: { maxAttempts: 3, initialDelay: 100, maxDelay: '2s', retryable: (e) => isTransient(e) },
 * });
 * const user = await users.fire('42');
 */
export function createBreaker<A extends unknown[], R>(
  fn: (...args: A) => R | PromiseLike<R>,
  options?: OutboundBreakerOptions,
): OutboundBreaker<A, Awaited<R>>;
export function createBreaker(options?: OutboundBreakerOptions): OutboundBreaker<never[], never>;
export function createBreaker(
  fnOrOptions?: ((...args: unknown[]) => unknown) | OutboundBreakerOptions,
  options?: OutboundBreakerOptions,
): OutboundBreaker<unknown[], unknown> {
  if (typeof fnOrOptions === 'function') return new Outbound(fnOrOptions, options);
  if (options !== undefined) {
    throw optionTypeError(PKG, 'fn', fnOrOptions, 'a function when options are passed as the second argument');
  }
  return new Outbound(undefined, fnOrOptions);
}
