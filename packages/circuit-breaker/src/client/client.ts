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
import { type ClientMetrics, clientMetrics } from './metrics.js';
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
/** W3C Trace Context §3.2: version-traceid-parentid-flags. */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
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
  /** Labelled metric children, made on first use. */
  latency: { observe(value: number): void } | undefined;
  /** Attempts by status since the last scrape, folded into the requests counter by `flush`. */
  readonly byStatus = new Map<string, { pending: number; readonly child: { inc(value: number): void } }>();
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

/** One attempt in flight. */
interface Attempt {
  readonly origin: Origin;
  readonly promise: Promise<Outcome>;
  cancel(): void;
}

/** How an attempt ended: a response (any status) or an error. */
interface Outcome {
  readonly origin: Origin;
  readonly res?: ClientResponse;
  readonly error?: unknown;
  /** The attempt was cut by the call's deadline. */
  readonly deadline?: boolean;
}

/** What every attempt of one call shares. */
interface Call {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: ClientRequest['body'];
  readonly retryable: boolean;
  readonly deadlineAt: number;
  readonly signal: AbortSignal | undefined;
  /** Origins this call tried (a few at most: an array beats a Set here). */
  readonly tried: Origin[];
}

const CANCELLED = Symbol('cancelled');

/**
 * The abort handle of one attempt, handed to undici as its `signal`. undici takes an
 * `AbortSignal` or an `EventEmitter` there (its docs: `signal?: AbortSignal | EventEmitter`)
 * and only ever adds and removes one `'abort'` listener, reading `aborted` and `reason`; this
 * is that EventEmitter shape with a single listener slot. Measured: an `AbortController` per
 * attempt was ~4 % of the client's CPU per call (its `AbortSignal` is an `EventTarget`).
 */
class AttemptSignal {
  aborted = false;
  reason: unknown = undefined;
  #listener: (() => void) | undefined;

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

  abort(reason?: unknown): void {
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
  /** Calls since the last scrape, folded into the calls counter by `#flush`. */
  #callsPending = 0;
  #next = 0;
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
    if (bulkhead === undefined) return this.#call(call);
    // A free slot: no waiter, no wrapping promise.
    if (bulkhead.tryEnter()) return this.#call(call, bulkhead);
    return new Promise<ClientResponse>((resolve, reject) => {
      const run = () => {
        this.#call(call)
          .then(resolve, reject)
          .finally(() => bulkhead.leave());
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
    })();
    return this.#closed;
  }

  /** Validates a call and builds its headers (with the propagated trace context). */
  #prepare(request: ClientRequest): Call {
    if (typeof request !== 'object' || request === null) {
      throw optionTypeError(PKG, 'request', request, 'an object like { method: "GET", path: "/users" }');
    }
    const method = (request.method ?? 'GET').toUpperCase();
    if (!METHOD.test(method)) throw optionTypeError(PKG, 'request.method', request.method, 'an HTTP method');
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
    if (headers.traceparent === undefined && typeof traceparent === 'string' && TRACEPARENT.test(traceparent)) {
      headers.traceparent = traceparent;
    }
    const body = request.body;
    const replayable = body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
    const idempotent = request.idempotent ?? (IDEMPOTENT.has(method) || this.#config.retryNonIdempotent);
    return {
      method,
      path: request.path,
      headers,
      body,
      retryable: replayable && idempotent,
      deadlineAt: this.#config.clock.now() + this.#config.deadlineMs,
      signal: request.signal,
      tried: [],
    };
  }

  /**
   * The attempt loop of one call; `slot`: the bulkhead slot it holds, given back at the end
   * (one async frame for both, not a wrapper per call).
   */
  async #call(call: Call, slot?: Bulkhead): Promise<ClientResponse> {
    try {
      const config = this.#config;
      const clock = config.clock;
      this.#rate.onRequest();
      let attempts = 0;
      for (;;) {
        call.signal?.throwIfAborted();
        if (clock.now() >= call.deadlineAt) throw new ClientDeadlineError(this.name, config.deadlineMs, attempts);
        const outcome = await this.#attempt(call, attempts === 0);
        attempts++;
        if (outcome === undefined) throw new NoOriginAvailableError(this.name, this.#retryAfterMs());
        const { res, error } = outcome;
        if (outcome.deadline) throw new ClientDeadlineError(this.name, config.deadlineMs, attempts, { cause: error });
        if (res !== undefined && !config.statuses.has(res.statusCode)) return res;
        if (call.signal?.aborted || !call.retryable || attempts >= config.maxAttempts) return settle(outcome);
        let delay = this.#backoff(attempts - 1);
        const retryAfter = res === undefined ? undefined : parseRetryAfter(res.headers['retry-after'], clock.now());
        if (retryAfter !== undefined) delay = Math.max(delay, retryAfter);
        // A retry that cannot start before the deadline is not made: the caller gets the last answer now.
        if (clock.now() + delay >= call.deadlineAt) return settle(outcome);
        // Every origin out (breakers open, health checks failing): no retry, the caller gets the last answer.
        if (!this.#origins.some((o) => o.available)) return settle(outcome);
        if (this.#budget === undefined) this.#rate.onRetry();
        else if (!this.#budget.tryRetry()) {
          this.#metrics.budgetExhausted.inc({ client: this.name });
          return settle(outcome);
        }
        this.#metrics.retries.inc({ client: this.name });
        if (res !== undefined) await res.body.dump().catch(() => {});
        await this.#sleep(delay, call.signal);
      }
    } finally {
      slot?.leave();
    }
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

  /** One attempt, hedged when configured: resolves with the first good outcome, else the last. */
  #attempt(call: Call, first: boolean): Promise<Outcome | undefined> {
    const primary = this.#start(call, !first);
    if (primary === undefined) return Promise.resolve(undefined);
    const hedgeDelay = this.#config.hedgeDelayMs;
    if (hedgeDelay === undefined || !call.retryable) return primary.promise;
    const clock = this.#config.clock;
    return new Promise<Outcome>((resolve) => {
      const running = new Set<Attempt>([primary]);
      let done = false;
      let lastFailure: Outcome | undefined;
      const settleOne = (attempt: Attempt, outcome: Outcome) => {
        running.delete(attempt);
        if (done) {
          void outcome.res?.body.dump().catch(() => {});
          return;
        }
        if (outcome.res !== undefined && !this.#config.statuses.has(outcome.res.statusCode)) {
          done = true;
          clock.clearTimeout(timer);
          for (const other of running) other.cancel();
          void lastFailure?.res?.body.dump().catch(() => {});
          resolve(outcome);
          return;
        }
        void lastFailure?.res?.body.dump().catch(() => {});
        lastFailure = outcome;
        if (running.size === 0 && (hedged || outcome.deadline)) {
          done = true;
          clock.clearTimeout(timer);
          resolve(outcome);
        } else if (running.size === 0) {
          // The primary failed before the hedge was due: let the retry loop decide.
          done = true;
          clock.clearTimeout(timer);
          resolve(outcome);
        }
      };
      let hedged = false;
      const timer = clock.setTimeout(() => {
        if (done) return;
        const hedge = this.#start(call, true);
        if (hedge === undefined) return;
        hedged = true;
        this.#metrics.hedges.inc({ client: this.name });
        running.add(hedge);
        hedge.promise.then((outcome) => settleOne(hedge, outcome));
      }, hedgeDelay);
      primary.promise.then((outcome) => settleOne(primary, outcome));
    });
  }

  /** Picks an origin and starts an attempt on it; undefined when no origin may take it. */
  #start(call: Call, preferUntried: boolean): Attempt | undefined {
    const picked = this.#pick(call.tried, preferUntried);
    if (picked === undefined) return undefined;
    call.tried.push(picked.origin);
    return this.#send(call, picked.origin, picked.permit);
  }

  /**
   * Least-pending with round-robin among ties, among available origins; untried ones first
   * on a retry or a hedge. Takes the breaker permit; an origin whose half-open trials are
   * taken is skipped.
   */
  #pick(tried: readonly Origin[], preferUntried: boolean): { origin: Origin; permit: number } | undefined {
    const origins = this.#origins;
    const n = origins.length;
    const start = this.#next++ % n;
    // Made only when a breaker refuses its permit (half-open with every trial taken).
    let skipped: Set<Origin> | undefined;
    for (let round = 0; round < 2; round++) {
      const untriedOnly = preferUntried && round === 0;
      for (;;) {
        let best: Origin | undefined;
        for (let i = 0; i < n; i++) {
          const origin = origins[(start + i) % n] as Origin;
          if (!origin.available || skipped?.has(origin) || (untriedOnly && tried.includes(origin))) continue;
          if (best === undefined || origin.pending < best.pending) best = origin;
        }
        if (best === undefined) break;
        const permit = best.machine.acquire();
        if (permit !== REJECTED) return { origin: best, permit };
        skipped ??= new Set();
        skipped.add(best);
      }
      if (!preferUntried) break;
    }
    return undefined;
  }

  /** Sends one attempt on `origin` under min(timeout, what is left of the deadline). */
  #send(call: Call, origin: Origin, permit: number): Attempt {
    const config = this.#config;
    const clock = config.clock;
    const controller = new AttemptSignal();
    const left = call.deadlineAt - clock.now();
    const byDeadline = config.timeoutMs === undefined || left <= config.timeoutMs;
    const budgetMs = byDeadline ? left : (config.timeoutMs as number);
    let reason: 'timeout' | typeof CANCELLED | undefined;
    const timer = clock.setTimeout(
      () => {
        reason = 'timeout';
        controller.abort();
      },
      Math.max(0, budgetMs),
    );
    const onOuterAbort = () => {
      reason = CANCELLED;
      controller.abort(call.signal?.reason);
    };
    call.signal?.addEventListener('abort', onOuterAbort, { once: true });
    origin.pending++;
    const startedAt = clock.now();
    const t0 = performance.now();
    const finish = () => {
      clock.clearTimeout(timer);
      call.signal?.removeEventListener('abort', onOuterAbort);
      origin.pending--;
      this.#observe(origin, (performance.now() - t0) / 1000);
    };
    const promise = origin.pool
      .request({
        method: call.method as Dispatcher.HttpMethod,
        path: origin.prefix + call.path,
        headers: call.headers,
        body: call.body as Dispatcher.RequestOptions['body'],
        signal: controller,
      })
      .then(
        (res): Outcome => {
          finish();
          const duration = clock.now() - startedAt;
          this.#count(origin, String(res.statusCode));
          if (res.statusCode >= 500) origin.machine.onFailure(permit, duration);
          else origin.machine.onSuccess(permit, duration);
          return { origin, res };
        },
        (error: unknown): Outcome => {
          finish();
          const duration = clock.now() - startedAt;
          if (reason === CANCELLED) {
            origin.machine.onCancel(permit);
            return { origin, error: call.signal?.aborted ? call.signal.reason : error };
          }
          if (reason === 'timeout') {
            this.#count(origin, 'timeout');
            if (byDeadline) {
              origin.machine.onCancel(permit);
              return { origin, error, deadline: true };
            }
            origin.machine.onFailure(permit, duration, true);
            return { origin, error: new BreakerTimeoutError(origin.machine.name, budgetMs) };
          }
          this.#count(origin, 'error');
          origin.machine.onFailure(permit, duration);
          const code = (error as { code?: unknown } | null)?.code;
          if (config.healthCheck && typeof code === 'string' && UNREACHABLE.has(code)) origin.healthy = false;
          return { origin, error };
        },
      );
    return {
      origin,
      promise,
      cancel: () => {
        reason = CANCELLED;
        controller.abort();
      },
    };
  }

  /** Latency of one attempt; the labelled child is made once per origin (prom-client's label lookup is per call otherwise). */
  #observe(origin: Origin, seconds: number): void {
    origin.latency ??= this.#metrics.latency.labels({ client: this.name, origin: origin.label });
    origin.latency.observe(seconds);
  }

  /** One attempt by status, with a labelled child per origin and status. */
  #count(origin: Origin, status: string): void {
    let tally = origin.byStatus.get(status);
    if (tally === undefined) {
      tally = { pending: 0, child: this.#metrics.requests.labels({ client: this.name, origin: origin.label, status }) };
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
    const clock = this.#config.clock;
    origin.timer = clock.setTimeout(() => {
      origin.pool
        .request({ method: 'GET', path: origin.prefix + check.path, signal: AbortSignal.timeout(check.timeoutMs) })
        .then(
          async (res) => {
            await res.body.dump().catch(() => {});
            return res.statusCode < 400;
          },
          () => false,
        )
        .then((ok) => {
          if (this.#closed) return;
          if (ok) {
            origin.failedProbes = 0;
            if (!origin.healthy) {
              origin.healthy = true;
              if (origin.machine.state !== 'closed') origin.machine.reset();
            }
          } else if (++origin.failedProbes >= check.unhealthyThreshold) origin.healthy = false;
          this.#scheduleProbe(origin);
        });
    }, check.intervalMs);
  }
}

/** A failed outcome handed to the caller: the response as is, or the error thrown. */
function settle(outcome: Outcome): ClientResponse {
  if (outcome.res !== undefined) return outcome.res;
  throw outcome.error;
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
