/**
 * The resilient outbound HTTP client (issue 19, item 1): undici connection pools, one per
 * origin, behind the package's guards.
 *
 * A call: bulkhead slot ⟶ loop of attempts (pick an origin ⟶ breaker permit ⟶ attempt
 * under min(timeout, what is left of the deadline), hedged when configured) ⟶ on a
 * retryable failure: budget ⟶ backoff with full jitter or `Retry-After` ⟶ next attempt on
 * another origin when one is available.
 *
 * Load balancing is least-pending with round-robin among ties: the origin with the fewest
 * attempts in flight wins, so a slow origin (whose attempts pile up) gets less traffic by
 * itself, and idle origins share evenly. See the README for why not undici's BalancedPool.
 */
import { performance } from 'node:perf_hooks';
import type { BreakerSnapshot, HealthCheck } from '@perfstack/core';
import { createRegistry, getRequestId, isValidRequestId, optionTypeError, type Registry } from '@perfstack/core';
import { type Dispatcher, Pool } from 'undici';
import { Bulkhead } from '../bulkhead.js';
import { BreakerTimeoutError, BulkheadFullError } from '../errors.js';
import { breakerMetrics } from '../metrics.js';
import { PKG } from '../policy.js';
import { fullJitterDelay } from '../retry.js';
import { BreakerStateMachine, REJECTED } from '../state-machine.js';
import { RetryBudget } from './budget.js';
import { ClientDeadlineError, NoOriginAvailableError } from './errors.js';
import { type Expiring, ExpiryList } from './expiry.js';
import { type ClientMetrics, clientMetrics, type LatencySeries } from './metrics.js';
import { type ClientConfig, type ClientOptions, type ClientRequest, resolveClientOptions } from './options.js';

/** What `request()` resolves to: undici's response data (`statusCode`, `headers`, `body`, …). */
export type ClientResponse = Dispatcher.ResponseData;

/** A snapshot of one origin. */
export interface OriginSnapshot {
  readonly origin: string;
  readonly healthy: boolean;
  readonly pending: number;
  readonly breaker: BreakerSnapshot;
}

/** A snapshot of a client. */
export interface ClientSnapshot {
  readonly name: string;
  readonly origins: readonly OriginSnapshot[];
  /** Calls running now (holding a bulkhead slot when there is one). */
  readonly active: number;
  /** Calls waiting for a bulkhead slot. */
  readonly queued: number;
  /** Retries ÷ calls over the last 10 s (the retry budget's window): the retry-rate KPI, alert over 0.1. */
  readonly retryRate: number;
}

/** A resilient outbound client. */
export interface Client {
  readonly name: string;
  /** Makes one call through every guard; resolves like undici's `request`. Read or dump the body. */
  request(request: ClientRequest): Promise<ClientResponse>;
  snapshot(): ClientSnapshot;
  /** For `/health`: `ok` when every origin takes calls, `degraded` when some are out, `down` when none is left. */
  health(): HealthCheck;
  /** Stops health checks, closes the pools (letting calls in flight end), removes the metrics. Safe twice. */
  close(): Promise<void>;
  /** The registry the metrics are on. */
  readonly registry: Registry;
}

/** RFC 9110 §9.2.2: methods whose repetition has the same effect as one request. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Errors meaning the origin could not be reached: the origin is taken out until a health check passes. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);
/**
 * W3C Trace Context §3.2: `version-traceid-parentid-flags`, 2-32-16-2 lowercase hex digits.
 * A loop over the 55 characters: the equivalent regular expression measured at ~1,500
 * instructions per call, about as much as the rest of the client's own code.
 */
function isTraceparent(value: string): boolean {
  if (value.length !== 55) return false;
  for (let i = 0; i < 55; i++) {
    const c = value.charCodeAt(i);
    if (i === 2 || i === 35 || i === 52) {
      if (c !== 0x2d) return false;
    } else if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
const METHOD = /^[A-Z]+$/;
/** The retry-rate alert: retries over 10 % of the calls in the window degrade `health()`. */
const RETRY_RATE_ALERT = 0.1;

class Origin {
  readonly url: URL;
  readonly label: string;
  readonly prefix: string;
  readonly pool: Pool;
  readonly machine: BreakerStateMachine;
  readonly client: string;
  healthy = true;
  pending = 0;
  /** Consecutive failed health probes. */
  failedProbes = 0;
  /** The origin's latency series, made on first use. */
  latency: LatencySeries | undefined;
  /** Attempts by status since the last scrape, folded into the requests counter by `flush`. */
  readonly byStatus = new Map<number | string, { pending: number; readonly child: { inc(value: number): void } }>();
  timer: unknown;

  constructor(client: string, url: URL, config: ClientConfig) {
    this.client = client;
    this.url = url;
    this.label = url.origin + (url.pathname === '/' ? '' : url.pathname.replace(/\/$/, ''));
    this.prefix = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
    this.pool = new Pool(url.origin, { connections: config.connections });
    this.machine = new BreakerStateMachine(`client:${client}@${this.label}`, config.policy, config.clock, () => {});
  }

  /** Takes calls: healthy and the breaker not open (an open breaker past its reset timeout turns half-open here). */
  get available(): boolean {
    return this.healthy && this.machine.state !== 'open';
  }
}

/** How an attempt ended: a response (any status) or an error. */
interface Outcome {
  readonly origin: Origin;
  readonly res: ClientResponse | undefined;
  readonly error: unknown;
  /** The attempt was cut by the call's deadline. */
  readonly deadline: boolean;
}

const noop = (): void => {};

/** One call: what every attempt shares, and the caller's promise. */
class Call {
  /** The origin of the first attempt (most calls make no other). */
  first: Origin | undefined = undefined;
  /** Every origin tried, made on a second attempt or a hedge (a few at most: an array beats a Set here). */
  tried: Origin[] | undefined = undefined;
  attempts = 0;
  /** The bulkhead slot the call holds, given back once when it settles. */
  slot: Bulkhead | undefined = undefined;
  resolve: (res: ClientResponse) => void = noop;
  reject: (error: unknown) => void = noop;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly headers: Record<string, string | string[]>,
    readonly body: ClientRequest['body'],
    readonly retryable: boolean,
    readonly deadlineAt: number,
    readonly signal: AbortSignal | undefined,
  ) {}

  hasTried(origin: Origin): boolean {
    return this.tried === undefined ? this.first === origin : this.tried.includes(origin);
  }
}

/**
 * One attempt in flight: its own abort handle, its entry in the client's expiry list, and
 * (once it ended) its outcome; one object per attempt instead of a controller, a timer,
 * closures and an outcome record.
 *
 * It is handed to undici as the request's `signal`: undici takes an `AbortSignal` or an
 * `EventEmitter` there (its docs: `signal?: AbortSignal | EventEmitter`) and only ever adds
 * and removes one `'abort'` listener, reading `aborted` and `reason`; this is that
 * EventEmitter shape with a single listener slot. Measured: an `AbortController` per attempt
 * was ~4 % of the client's CPU per call (its `AbortSignal` is an `EventTarget`).
 */
class Attempt implements Outcome, Expiring {
  aborted = false;
  /** The abort reason undici reads. */
  reason: unknown = undefined;
  #listener: (() => void) | undefined = undefined;
  /** Why the client aborted it: its time budget ran out, or it was cancelled (a hedge won, the caller gave up). */
  cut: 'timeout' | 'cancelled' | undefined = undefined;
  res: ClientResponse | undefined = undefined;
  error: unknown = undefined;
  deadline = false;
  prev: Expiring | undefined = undefined;
  next: Expiring | undefined = undefined;
  linked = false;
  /** For the latency histogram (sub-millisecond). */
  readonly t0 = performance.now();
  /** Stops following the caller's signal (set when the call has one). */
  unfollow: () => void = noop;

  constructor(
    readonly call: Call,
    readonly origin: Origin,
    readonly permit: number,
    /** Clock time the attempt started (breaker durations, deadline). */
    readonly startedAt: number,
    readonly expiresAt: number,
    /** The attempt's budget is what was left of the call's deadline (not the per-attempt timeout). */
    readonly byDeadline: boolean,
    readonly budgetMs: number,
    /** Told once, when the attempt ended and its outcome is set. */
    readonly onEnd: (attempt: Attempt) => void,
  ) {}

  on(event: string, listener: () => void): this {
    if (event === 'abort') this.#listener = listener;
    return this;
  }

  addListener(event: string, listener: () => void): this {
    return this.on(event, listener);
  }

  removeListener(event: string, listener: () => void): this {
    if (event === 'abort' && this.#listener === listener) this.#listener = undefined;
    return this;
  }

  /** The time budget ran out (the expiry list calls it). */
  expire(): void {
    this.cut ??= 'timeout';
    this.#abort(undefined);
  }

  /** Cancelled: a hedge won, or the caller's signal aborted (`reason`). */
  cancel(reason?: unknown): void {
    this.cut ??= 'cancelled';
    this.#abort(reason);
  }

  #abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }
}

class ResilientClient implements Client {
  readonly name: string;
  readonly registry: Registry;
  readonly #config: ClientConfig;
  readonly #origins: Origin[];
  readonly #budget: RetryBudget | undefined;
  readonly #rate: RetryBudget;
  readonly #bulkhead: Bulkhead | undefined;
  readonly #metrics: ClientMetrics;
  readonly #detachBreakers: () => void;
  /** The time budgets of the attempts in flight, on one clock timer. */
  readonly #expiry: ExpiryList;
  /** Calls since the last scrape, folded into the calls counter by `#flush`. */
  #callsPending = 0;
  /** Round-robin start of the next pick. */
  #turn = 0;
  /** What the health probes' attempts belong to (made at the first probe). */
  #probeCall: Call | undefined;
  /** The breaker permit of the origin `#pick` returned last (no record allocated per pick). */
  #permit = 0;
  #closed: Promise<void> | undefined;

  constructor(
    config: ClientConfig,
    registry: Registry,
    detach: (machines: () => Iterable<BreakerStateMachine>) => () => void,
  ) {
    this.#config = config;
    this.name = config.name;
    this.registry = registry;
    this.#origins = config.origins.map((url) => new Origin(config.name, url, config));
    this.#expiry = new ExpiryList(config.clock);
    const { budget } = config;
    this.#budget = budget && new RetryBudget(budget.ratio, budget.minPerSecond, budget.windowMs, config.clock);
    // Without a budget the same window still measures the retry rate (never enforced).
    this.#rate = this.#budget ?? new RetryBudget(1, 0, 10_000, config.clock);
    this.#bulkhead =
      config.maxConcurrent === undefined ? undefined : new Bulkhead(config.maxConcurrent, config.maxQueue);
    const origins = this.#origins;
    this.#metrics = clientMetrics(
      registry,
      () => origins,
      () => this.#flush(),
    );
    this.#detachBreakers = detach(() => origins.map((o) => o.machine));
    if (config.healthCheck) for (const origin of origins) this.#scheduleProbe(origin);
  }

  request(request: ClientRequest): Promise<ClientResponse> {
    if (this.#closed) return Promise.reject(new Error(`${PKG}: client "${this.name}" is closed`));
    let call: Call;
    try {
      call = this.#prepare(request);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#callsPending++;
    const bulkhead = this.#bulkhead;
    if (bulkhead === undefined) return this.#run(call);
    // A free slot: no waiter, no wrapping promise.
    if (bulkhead.tryEnter()) {
      call.slot = bulkhead;
      return this.#run(call);
    }
    return new Promise<ClientResponse>((resolve, reject) => {
      const run = () => {
        call.slot = bulkhead;
        this.#run(call).then(resolve, reject);
      };
      const signal = call.signal;
      const onAbort = () => {
        if (bulkhead.cancel(waiter)) reject(signal?.reason);
      };
      const waiter = () => {
        signal?.removeEventListener('abort', onAbort);
        run();
      };
      const entry = bulkhead.enter(waiter);
      if (entry === 'run') run();
      else if (entry === 'full') reject(new BulkheadFullError(`client:${this.name}`));
      // A caller that gives up while waiting for a slot leaves the queue.
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  snapshot(): ClientSnapshot {
    return {
      name: this.name,
      origins: this.#origins.map((o) => ({
        origin: o.label,
        healthy: o.available,
        pending: o.pending,
        breaker: o.machine.snapshot(),
      })),
      active: this.#bulkhead?.active ?? 0,
      queued: this.#bulkhead?.queued ?? 0,
      retryRate: this.#rate.rate(),
    };
  }

  health(): HealthCheck {
    const out = this.#origins.filter((o) => !o.available).map((o) => o.label);
    const total = this.#origins.length;
    const retryRate = this.#rate.rate();
    const retrying = retryRate > RETRY_RATE_ALERT;
    const status = out.length === total ? 'down' : out.length > 0 || retrying ? 'degraded' : 'ok';
    const detail = `${total - out.length}/${total} origins available${out.length > 0 ? ` (out: ${out.join(', ')})` : ''}${
      retrying ? `; retry rate ${(retryRate * 100).toFixed(1)}% over ${RETRY_RATE_ALERT * 100}%` : ''
    }`;
    return { status, detail, out, retryRate };
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      for (const origin of this.#origins) this.#config.clock.clearTimeout(origin.timer);
      this.#metrics.detach();
      this.#detachBreakers();
      await Promise.allSettled(this.#origins.map((o) => o.pool.close()));
      // After the pools: the calls still in flight while they close keep their time budgets.
      this.#expiry.close();
    })();
    return this.#closed;
  }

  /** Validates a call and builds its headers (with the propagated trace context). */
  #prepare(request: ClientRequest): Call {
    if (typeof request !== 'object' || request === null) {
      throw optionTypeError(PKG, 'request', request, 'an object like { method: "GET", path: "/users" }');
    }
    const method = request.method === undefined ? 'GET' : request.method.toUpperCase();
    if (method !== 'GET' && !METHOD.test(method)) {
      throw optionTypeError(PKG, 'request.method', request.method, 'an HTTP method');
    }
    if (typeof request.path !== 'string' || !request.path.startsWith('/')) {
      throw optionTypeError(PKG, 'request.path', request.path, 'a path starting with "/"');
    }
    const headers: Record<string, string | string[]> = {};
    const given = request.headers;
    if (given !== undefined) {
      for (const key in given) {
        const value = given[key];
        if (value !== undefined) headers[key.toLowerCase()] = typeof value === 'string' ? value : [...value];
      }
    }
    const inbound = request.inbound;
    const supplied =
      request.requestId === undefined && request.traceparent === undefined && inbound === undefined
        ? this.#config.context?.()
        : undefined;
    const requestId =
      request.requestId ??
      (inbound ? (getRequestId(inbound) ?? inbound.headers['x-request-id']) : undefined) ??
      supplied?.requestId;
    const traceparent =
      request.traceparent ?? (inbound ? inbound.headers.traceparent : undefined) ?? supplied?.traceparent;
    if (headers['x-request-id'] === undefined && isValidRequestId(requestId)) headers['x-request-id'] = requestId;
    if (headers.traceparent === undefined && typeof traceparent === 'string' && isTraceparent(traceparent)) {
      headers.traceparent = traceparent;
    }
    const body = request.body;
    const replayable = body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
    const idempotent = request.idempotent ?? (IDEMPOTENT.has(method) || this.#config.retryNonIdempotent);
    return new Call(
      method,
      request.path,
      headers,
      body,
      replayable && idempotent,
      this.#config.clock.now() + this.#config.deadlineMs,
      request.signal,
    );
  }

  /**
   * Runs a call: its first attempt starts now; each attempt's end (a callback, no promise in
   * between) answers the caller or schedules the next attempt. The async work (draining a
   * failed response, the backoff delay) happens only on a retry.
   */
  #run(call: Call): Promise<ClientResponse> {
    const promise = new Promise<ClientResponse>((resolve, reject) => {
      call.resolve = resolve;
      call.reject = reject;
    });
    this.#rate.onRequest();
    this.#next(call);
    return promise;
  }

  /** Starts the call's next attempt (hedged when configured), or settles the call when none may start. */
  #next(call: Call): void {
    const config = this.#config;
    try {
      call.signal?.throwIfAborted();
      if (config.clock.now() >= call.deadlineAt) {
        throw new ClientDeadlineError(this.name, config.deadlineMs, call.attempts);
      }
      if (config.hedgeDelayMs !== undefined && call.retryable) {
        this.#hedged(call, config.hedgeDelayMs).then((outcome) => this.#ended(call, outcome));
      } else if (this.#start(call, call.attempts > 0, this.#attemptEnded) === undefined) {
        this.#ended(call, undefined);
      }
    } catch (error) {
      this.#settle(call, undefined, error);
    }
  }

  readonly #attemptEnded = (attempt: Attempt): void => this.#ended(attempt.call, attempt);

  /** After an attempt (undefined: no origin could take it): answers the caller, or retries. */
  #ended(call: Call, outcome: Outcome | undefined): void {
    try {
      const config = this.#config;
      if (outcome === undefined) throw new NoOriginAvailableError(this.name, this.#retryAfterMs());
      const attempts = ++call.attempts;
      const { res, error } = outcome;
      if (outcome.deadline) throw new ClientDeadlineError(this.name, config.deadlineMs, attempts, { cause: error });
      if (res !== undefined && !config.statuses.has(res.statusCode)) {
        this.#settle(call, res, undefined);
        return;
      }
      const delay =
        call.signal?.aborted || !call.retryable || attempts >= config.maxAttempts
          ? undefined
          : this.#retryDelay(call, res);
      // No retry: the caller gets the last answer.
      if (delay === undefined) this.#settle(call, res, error);
      else void this.#retry(call, res, delay);
    } catch (error) {
      this.#settle(call, undefined, error);
    }
  }

  /**
   * The delay before the call's next attempt: full jitter, at least `Retry-After`; undefined
   * when no retry may be made (it would start past the deadline, every origin is out, the
   * budget is spent). Takes the retry from the budget.
   */
  #retryDelay(call: Call, res: ClientResponse | undefined): number | undefined {
    const clock = this.#config.clock;
    let delay = this.#backoff(call.attempts - 1);
    const retryAfter = res === undefined ? undefined : parseRetryAfter(res.headers['retry-after'], clock.now());
    if (retryAfter !== undefined) delay = Math.max(delay, retryAfter);
    // A retry that cannot start before the deadline is not made.
    if (clock.now() + delay >= call.deadlineAt) return undefined;
    // Every origin out (breakers open, health checks failing): no retry.
    if (!this.#origins.some((o) => o.available)) return undefined;
    if (this.#budget === undefined) this.#rate.onRetry();
    else if (!this.#budget.tryRetry()) {
      this.#metrics.budgetExhausted.inc({ client: this.name });
      return undefined;
    }
    this.#metrics.retries.inc({ client: this.name });
    return delay;
  }

  async #retry(call: Call, res: ClientResponse | undefined, delay: number): Promise<void> {
    try {
      if (res !== undefined) await res.body.dump().catch(() => {});
      await this.#sleep(delay, call.signal);
    } catch (error) {
      this.#settle(call, undefined, error);
      return;
    }
    this.#next(call);
  }

  /** Answers the caller (a response, else the error) and gives the bulkhead slot back, once. */
  #settle(call: Call, res: ClientResponse | undefined, error: unknown): void {
    const slot = call.slot;
    call.slot = undefined;
    slot?.leave();
    if (res !== undefined) call.resolve(res);
    else call.reject(error);
  }

  /** The delay before retry `n` (0-based): full jitter under min(maxDelay, initialDelay · multiplierⁿ). */
  #backoff(n: number): number {
    const { initialDelayMs, maxDelayMs, multiplier, random } = this.#config;
    return fullJitterDelay(n, initialDelayMs, maxDelayMs, random, multiplier);
  }

  #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    const clock = this.#config.clock;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clock.clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A hedged attempt: when the first has no answer after `hedgeDelay`, a second one goes to
   * another origin. Resolves with the first good outcome (the other is cancelled), else the
   * last; undefined when no origin could take the first.
   */
  #hedged(call: Call, hedgeDelay: number): Promise<Outcome | undefined> {
    const clock = this.#config.clock;
    const statuses = this.#config.statuses;
    return new Promise<Outcome | undefined>((resolve) => {
      const running = new Set<Attempt>();
      let done = false;
      let lastFailure: Outcome | undefined;
      let timer: unknown;
      const settleOne = (attempt: Attempt) => {
        running.delete(attempt);
        if (done) {
          void attempt.res?.body.dump().catch(() => {});
          return;
        }
        if (attempt.res !== undefined && !statuses.has(attempt.res.statusCode)) {
          done = true;
          clock.clearTimeout(timer);
          for (const other of running) other.cancel();
          void lastFailure?.res?.body.dump().catch(() => {});
          resolve(attempt);
          return;
        }
        void lastFailure?.res?.body.dump().catch(() => {});
        lastFailure = attempt;
        // Every attempt failed (the primary before the hedge was due, or both): the retry loop decides.
        if (running.size === 0) {
          done = true;
          clock.clearTimeout(timer);
          resolve(attempt);
        }
      };
      const primary = this.#start(call, call.attempts > 0, settleOne);
      if (primary === undefined) {
        resolve(undefined);
        return;
      }
      running.add(primary);
      timer = clock.setTimeout(() => {
        if (done) return;
        const hedge = this.#start(call, true, settleOne);
        if (hedge === undefined) return;
        this.#metrics.hedges.inc({ client: this.name });
        running.add(hedge);
      }, hedgeDelay);
    });
  }

  /** Picks an origin and starts an attempt on it; undefined when no origin may take it. */
  #start(call: Call, preferUntried: boolean, onEnd: (attempt: Attempt) => void): Attempt | undefined {
    const origin = this.#pick(call, preferUntried);
    if (origin === undefined) return undefined;
    if (call.first === undefined) call.first = origin;
    else if (call.tried === undefined) call.tried = [call.first, origin];
    else call.tried.push(origin);
    return this.#send(call, origin, this.#permit, onEnd);
  }

  /**
   * Least-pending with round-robin among ties, among available origins; untried ones first
   * on a retry or a hedge. Takes the breaker permit (left in `#permit`); an origin whose
   * half-open trials are taken is skipped.
   */
  #pick(call: Call, preferUntried: boolean): Origin | undefined {
    const origins = this.#origins;
    const n = origins.length;
    const start = this.#turn++ % n;
    // Made only when a breaker refuses its permit (half-open with every trial taken).
    let skipped: Set<Origin> | undefined;
    for (let round = 0; round < 2; round++) {
      const untriedOnly = preferUntried && round === 0;
      for (;;) {
        let best: Origin | undefined;
        for (let i = 0; i < n; i++) {
          const origin = origins[(start + i) % n] as Origin;
          if (!origin.available || skipped?.has(origin) || (untriedOnly && call.hasTried(origin))) continue;
          if (best === undefined || origin.pending < best.pending) best = origin;
        }
        if (best === undefined) break;
        const permit = best.machine.acquire();
        if (permit !== REJECTED) {
          this.#permit = permit;
          return best;
        }
        skipped ??= new Set();
        skipped.add(best);
      }
      if (!preferUntried) break;
    }
    return undefined;
  }

  /** Sends one attempt on `origin` under min(timeout, what is left of the deadline). */
  #send(call: Call, origin: Origin, permit: number, onEnd: (attempt: Attempt) => void): Attempt {
    const config = this.#config;
    const now = config.clock.now();
    const left = call.deadlineAt - now;
    const byDeadline = config.timeoutMs === undefined || left <= config.timeoutMs;
    const budgetMs = byDeadline ? left : (config.timeoutMs as number);
    const attempt = new Attempt(call, origin, permit, now, now + Math.max(0, budgetMs), byDeadline, budgetMs, onEnd);
    this.#expiry.add(attempt);
    const outer = call.signal;
    if (outer !== undefined) {
      const onOuterAbort = () => attempt.cancel(outer.reason);
      outer.addEventListener('abort', onOuterAbort, { once: true });
      attempt.unfollow = () => outer.removeEventListener('abort', onOuterAbort);
    }
    origin.pending++;
    origin.pool.request(
      {
        method: call.method as Dispatcher.HttpMethod,
        path: origin.prefix + call.path,
        headers: call.headers,
        body: call.body as Dispatcher.RequestOptions['body'],
        signal: attempt,
      },
      (error, res) => this.#attemptDone(attempt, error, res),
    );
    return attempt;
  }

  /** An attempt's response head (or error) arrived: its bookkeeping, its outcome, then its owner is told. */
  #attemptDone(attempt: Attempt, error: Error | null, res: ClientResponse): void {
    const origin = attempt.origin;
    const machine = origin.machine;
    this.#expiry.remove(attempt);
    attempt.unfollow();
    origin.pending--;
    this.#observe(origin, (performance.now() - attempt.t0) / 1000);
    const duration = this.#config.clock.now() - attempt.startedAt;
    if (error === null || error === undefined) {
      this.#count(origin, res.statusCode);
      if (res.statusCode >= 500) machine.onFailure(attempt.permit, duration);
      else machine.onSuccess(attempt.permit, duration);
      attempt.res = res;
    } else if (attempt.cut === 'cancelled') {
      machine.onCancel(attempt.permit);
      const outer = attempt.call.signal;
      attempt.error = outer?.aborted ? outer.reason : error;
    } else if (attempt.cut === 'timeout') {
      this.#count(origin, 'timeout');
      if (attempt.byDeadline) {
        machine.onCancel(attempt.permit);
        attempt.error = error;
        attempt.deadline = true;
      } else {
        machine.onFailure(attempt.permit, duration, true);
        attempt.error = new BreakerTimeoutError(machine.name, attempt.budgetMs);
      }
    } else {
      this.#count(origin, 'error');
      machine.onFailure(attempt.permit, duration);
      const code = (error as { code?: unknown } | null)?.code;
      if (this.#config.healthCheck && typeof code === 'string' && UNREACHABLE.has(code)) origin.healthy = false;
      attempt.error = error;
    }
    attempt.onEnd(attempt);
  }

  /** Latency of one attempt, in the origin's series (found once per origin). */
  #observe(origin: Origin, seconds: number): void {
    origin.latency ??= this.#metrics.latency(this.name, origin.label);
    origin.latency.observe(seconds);
  }

  /** One attempt by status (a code, `timeout` or `error`), with a labelled child per origin and status. */
  #count(origin: Origin, status: number | string): void {
    let tally = origin.byStatus.get(status);
    if (tally === undefined) {
      tally = {
        pending: 0,
        child: this.#metrics.requests.labels({ client: this.name, origin: origin.label, status: String(status) }),
      };
      origin.byStatus.set(status, tally);
    }
    tally.pending++;
  }

  /** Folds the plain-number tallies into the prom-client counters (before each scrape, and on close). */
  #flush(): void {
    if (this.#callsPending > 0) {
      this.#metrics.calls.inc({ client: this.name }, this.#callsPending);
      this.#callsPending = 0;
    }
    for (const origin of this.#origins) {
      for (const tally of origin.byStatus.values()) {
        if (tally.pending > 0) {
          tally.child.inc(tally.pending);
          tally.pending = 0;
        }
      }
    }
  }

  #retryAfterMs(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const origin of this.#origins) min = Math.min(min, origin.machine.retryAfterMs());
    return Number.isFinite(min) ? min : 0;
  }

  /** Active health check of one origin, every interval: 2xx/3xx brings it in (and closes its breaker), else takes it out. */
  #scheduleProbe(origin: Origin): void {
    const check = this.#config.healthCheck;
    if (check === undefined || this.#closed) return;
    origin.timer = this.#config.clock.setTimeout(() => this.#probe(origin, check), check.intervalMs);
  }

  /**
   * One health probe. Its abort handle is an `Attempt`, timed by the client's expiry list, as
   * every call's is, and its options have a call's keys: undici's request path then sees one
   * `signal` shape and one options shape. A real `AbortSignal` here (`AbortSignal.timeout`)
   * and fewer keys made V8 deoptimise undici's `RequestHandler` and `addAbortListener`
   * ("wrong map") at the first probe and run them polymorphic after it.
   */
  #probe(origin: Origin, check: NonNullable<ClientConfig['healthCheck']>): void {
    const now = this.#config.clock.now();
    this.#probeCall ??= new Call('GET', check.path, {}, undefined, false, Number.POSITIVE_INFINITY, undefined);
    const call = this.#probeCall;
    const attempt = new Attempt(call, origin, 0, now, now + check.timeoutMs, false, check.timeoutMs, noop);
    this.#expiry.add(attempt);
    const probed = (ok: boolean): void => {
      if (this.#closed) return;
      if (ok) {
        origin.failedProbes = 0;
        if (!origin.healthy) {
          origin.healthy = true;
          if (origin.machine.state !== 'closed') origin.machine.reset();
        }
      } else if (++origin.failedProbes >= check.unhealthyThreshold) origin.healthy = false;
      this.#scheduleProbe(origin);
    };
    // The same option keys, in the same order, as a call's (#send): one options shape too.
    const options = {
      method: 'GET' as const,
      path: origin.prefix + check.path,
      headers: call.headers,
      body: undefined,
      signal: attempt,
    };
    // The probe's deadline covers the body too: an origin that sends its headers and then
    // stalls is aborted at healthCheck.timeout (undici destroys the body on abort), not after
    // undici's 300 s body timeout.
    origin.pool.request(options, (error, res) => {
      if (error) {
        this.#expiry.remove(attempt);
        probed(false);
        return;
      }
      res.body.dump().then(
        () => {
          this.#expiry.remove(attempt);
          probed(!attempt.aborted && res.statusCode < 400);
        },
        () => {
          this.#expiry.remove(attempt);
          probed(false);
        },
      );
    });
  }
}

/** RFC 9110 §10.2.3: `Retry-After` as delay-seconds or an HTTP-date; milliseconds from `now`. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Creates a resilient outbound HTTP client.
 *
 * @param name the client's name, in metrics, breaker names and errors
 * @param options `origins` (required), `preset`, `retry`, `retryBudget`, `timeout`, bulkhead, `breaker`, `healthCheck`, `hedge`
 * @returns the client: `request({ method, path, headers, body })`, `snapshot()`, `close()`
 * @throws {TypeError|RangeError} on an invalid option, naming it
 * @example
 * const users = createClient('users', {
 *   origins: ['http://users-1:8080', 'http://users-2:8080'],
 *   retry: { maxAttempts: 3, initialDelay: 100, maxDelay: '2s', multiplier: 2, deadline: '5s' },
 *   healthCheck: { path: '/health', interval: '5s' },
 * });
 * const { statusCode, body } = await users.request({ path: '/users/42', inbound: req });
 * const user = await body.json();
 */
export function createClient(name: string, options: ClientOptions): Client {
  const config = resolveClientOptions(name, options);
  const registry = options.registry ?? createRegistry();
  return new ResilientClient(config, registry, (machines) => breakerStateSource(registry, machines));
}

function breakerStateSource(registry: Registry, machines: () => Iterable<BreakerStateMachine>): () => void {
  const metrics = breakerMetrics(registry, machines);
  return () => metrics.detach();
}
