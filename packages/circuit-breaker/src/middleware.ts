/**
 * The inbound middleware: per-route breakers, time budgets, bulkheads and process overload
 * shedding in front of the app's routes (eighth layer of the documented order).
 *
 * Per request (closed breaker, no budget, no bulkhead) it does: an exempt check, one
 * boolean read for shedding, one key lookup (an LRU hit once the route is learned), one
 * permit from the state machine and one `'close'` listener that reports the outcome.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  type BreakerSnapshot,
  type CircuitBreakerSource,
  type ClosableMiddleware,
  captureRoute,
  clientErrorStatus,
  type Disposable,
  getRoute,
  type HealthCheck,
  type HealthSource,
  type NextFunction,
  onBeforeHead,
  originStatus,
  type Problem,
  pathOf,
  problemJson,
  problemSent,
  type Registry,
  requestErrorOf,
  sendProblem,
  setRoute,
  spanEvent,
  tryFallback,
  warmShapes,
} from '@perfstack/core';
import { ConcurrencyLimiter } from './adaptive.js';
import { Bulkhead } from './bulkhead.js';
import { systemClock } from './clock.js';
import type { CircuitBreakerEvents } from './events.js';
import { TypedEvents } from './events.js';
import { neutralise } from './late-response.js';
import { type BreakerMetrics, breakerMetrics, type ConcurrencyMetrics, concurrencyMetrics } from './metrics.js';
import {
  type CircuitBreakerOptions,
  type FallbackReason,
  type GuardConfig,
  type MiddlewareConfig,
  resolveMiddlewareOptions,
} from './options.js';
import { OverloadMonitor } from './overload.js';
import { PKG } from './policy.js';
import { RouteMatcher } from './route-keys.js';
import { BreakerStateMachine, REJECTED } from './state-machine.js';
import { type BreakerTunables, type BreakerTuning, resolveTuning } from './tuning.js';

/** A breaker key: `METHOD /full/pattern`, or what the `key` option returned. */
interface RequestKey {
  readonly key: string;
  /** The route pattern, when the key comes from one (for `routes` overrides given by pattern). */
  readonly pattern: string | undefined;
}

/** The middleware with its data and operator methods. */
export interface CircuitBreakerMiddleware extends ClosableMiddleware, CircuitBreakerSource, HealthSource {
  /** Every breaker, the overload verdict and the number of shed requests (for the dashboard). */
  snapshot(): { readonly breakers: readonly BreakerSnapshot[]; readonly overloaded: boolean; readonly shed: number };
  /** Closes one breaker (by name, e.g. `GET /users/:id`) or all of them. */
  reset(name?: string): void;
  /** `degraded` while a breaker is open or half-open or the process is shedding, else `ok`. */
  health(): HealthCheck;
  /** Adds a typed listener; dispose the result to remove it. */
  on<K extends keyof CircuitBreakerEvents>(event: K, listener: (event: CircuitBreakerEvents[K]) => void): Disposable;
  /** The registry the metrics are on (the one passed, or the middleware's own). */
  readonly registry: Registry;
  /** Stops the overload sampler and answers queued requests with 503; later requests pass through. */
  close(): Promise<void>;
  /**
   * Changes, at runtime (the dashboard's settings), the default time budget and breaker policy
   * (for every route without its own `routes` override, breakers already made included) and
   * the event-loop shedding threshold. All or nothing: validated like the options first.
   *
   * With `route` (a pattern, `/api/items`, or a breaker key, `GET /api/items`): that route's
   * time budget and breaker policy only (`maxEventLoopDelay` is not per route), its breakers
   * already made included; the route keeps them when the defaults change later.
   *
   * @throws {TypeError|RangeError} naming the option
   */
  tune(tuning: BreakerTuning, route?: string): void;
  /** The tunable values in force (of `route` when given); `routes`: the routes known so far. */
  tunables(route?: string): BreakerTunables;
}

/** One guarded key: its state machine, bulkhead and settings. */
interface GuardedRoute {
  readonly name: string;
  readonly machine: BreakerStateMachine;
  readonly bulkhead: Bulkhead | undefined;
  /** The adaptive concurrency limit (the route's own, or the global one). */
  readonly limiter: ConcurrencyLimiter | undefined;
  /** Replaced by runtime settings (`tune`) when the route runs on the defaults. */
  config: GuardConfig;
}

type ExpressRequest = IncomingMessage & { originalUrl?: string };

/**
 * @internal The breaker as perfstack's early refusals ask it, before the framework runs:
 * `openRoute` finds the breaker that would answer `CIRCUIT_OPEN` (without changing anything);
 * `reject` then counts that refusal as the middleware would and returns its `Retry-After` (s)
 * and problem+json body.
 * Only for breakers without a `fallback` option and the default key.
 */
export interface EarlyBreaker {
  /** True while some breaker is open (else no request needs asking). */
  anyOpen(): boolean;
  openRoute(req: IncomingMessage, pattern: string | undefined): unknown;
  reject(route: unknown): { readonly retryAfter: number; readonly body: string };
}

/** @internal Where the middleware keeps its {@link EarlyBreaker}. */
export const EARLY_BREAKER = Symbol.for('perfstack.circuitBreaker.early');

/** Learning hooks in a row that found no route before learning is sampled. */
const FUTILE_LEARNING_LIMIT = 100;

const CIRCUIT_OPEN_DETAIL = 'The route is failing; its circuit breaker is open. Retry later.';
/** The body of every `CIRCUIT_OPEN` refusal (it carries no per-request member). */
const CIRCUIT_OPEN_BODY = problemJson({ code: 'CIRCUIT_OPEN', detail: CIRCUIT_OPEN_DETAIL });
const TIMEOUT_DETAIL = 'The route did not answer within its time budget.';
const BULKHEAD_DETAIL = 'Too many requests for this route are in progress. Retry later.';
const SHED_DETAIL = 'The server is overloaded. Retry later.';
const LIMITED_DETAIL = 'The route is at its concurrency limit. Retry later.';

/** The shared engine behind one middleware instance. */
class Engine {
  readonly config: MiddlewareConfig;
  readonly events: TypedEvents<CircuitBreakerEvents>;
  readonly metrics: BreakerMetrics;
  readonly matcher: RouteMatcher;
  readonly monitor: OverloadMonitor | undefined;
  readonly routes = new Map<string, GuardedRoute>();
  /** The settings of routes without their own override: `config.defaults` until `tune()`. */
  defaults: GuardConfig;
  /** Per-route settings changed at runtime (`tune(…, route)`), by pattern or key. */
  readonly tuned = new Map<string, GuardConfig>();
  readonly concurrency: ConcurrencyMetrics;
  /** The limit shared by every route under `adaptiveConcurrency: { scope: 'global' }`. */
  readonly globalLimiter: ConcurrencyLimiter | undefined;
  /** The adaptive limiters' time source: sub-millisecond on the system clock. */
  readonly now: () => number;
  readonly marker = Symbol('perfstack.circuitBreaker.guarded');
  shed = 0;
  closed = false;
  /** Breakers in the open state (the early check asks nothing of a request while there is none). */
  openBreakers = 0;
  /** Learning hooks in a row that found no route (an app without a router, a 404 flood). */
  #futileLearning = 0;
  #unmatchedSeen = 0;

  constructor(config: MiddlewareConfig) {
    this.config = config;
    this.defaults = config.defaults;
    this.events = new TypedEvents(config.log);
    this.matcher = new RouteMatcher(config.maxRoutes + config.routes.size, config.log);
    for (const name of config.routes.keys()) {
      // '/reports/:id' or 'GET /reports/:id': the pattern part is known from the first request.
      const pattern = name.slice(name.indexOf('/'));
      if (pattern.startsWith('/') && (name.startsWith('/') || /^[A-Z]+ \//.test(name))) this.matcher.learn(pattern);
    }
    this.metrics = breakerMetrics(config.registry, () => [...this.routes.values()].map((r) => r.machine));
    const adaptive = config.defaults.adaptive;
    this.globalLimiter = adaptive?.scope === 'global' ? new ConcurrencyLimiter('global', adaptive) : undefined;
    this.now = config.clock === systemClock ? () => performance.now() : config.clock.now;
    this.concurrency = concurrencyMetrics(config.registry, () => this.limiters());
    this.monitor =
      config.overload === undefined
        ? undefined
        : new OverloadMonitor(config.overload, config.clock, (event) => this.events.emit('overload', event));
  }

  /**
   * The breaker key of a request: the custom key, else `METHOD /pattern` with the pattern the
   * framework will run (resolved before the router: core's `getRoute`), a pattern set with
   * `setRoute`, or one learned from earlier responses. `undefined`: the request names no
   * route (a catch-all, a proxy, a 404) and is not guarded — never one shared breaker.
   */
  keyOf(req: IncomingMessage, path: string): RequestKey | undefined {
    if (this.config.key !== undefined) {
      try {
        const custom = this.config.key(req);
        if (custom !== undefined) return { key: custom, pattern: undefined };
      } catch (error) {
        this.config.log.errorOnce('CB_KEY_THREW', 'the "key" function threw; using the route pattern', {
          error: String(error),
        });
      }
    }
    let pattern = getRoute(req);
    if (pattern === undefined) {
      pattern = this.matcher.match(path);
      // Learned from an earlier response: pin it, so timing and the logs name this request the
      // same way even when the breaker answers it before the app could name it.
      if (pattern !== undefined) setRoute(req, pattern);
    }
    if (pattern === undefined || isCatchAll(pattern)) return undefined;
    return { key: breakerKey(req.method, pattern), pattern };
  }

  /**
   * Whether a finished response is a fault of the app. Never: a refusal a perfstack layer
   * answered (a nested limiter's 413/429, another breaker's 503/504), an error that carries
   * a 4xx status (a body parser's 400/413/415, `ctx.throw(404)`), whatever status an error
   * handler then wrote for it. Else the `isFailure` predicate (default: a 5xx), which also
   * sees the error the request failed with when an adapter saw one.
   */
  isFault(req: IncomingMessage, res: ServerResponse, config: GuardConfig): boolean {
    const sent = problemSent(res);
    if (sent !== undefined && sent !== 'INTERNAL_ERROR') return false;
    const error = requestErrorOf(req);
    if (clientErrorStatus(error) !== undefined) return false;
    const status = originStatus(res);
    try {
      // originStatus: the origin's own status even when the cache answered stale over it.
      return config.isFailure(status, error);
    } catch (thrown) {
      this.config.log.errorOnce('CB_IS_FAILURE_THREW', 'the "isFailure" predicate threw; using status >= 500', {
        error: String(thrown),
      });
      return status >= 500;
    }
  }

  /**
   * Whether to hook this unmatched response to learn its route. After many hooks in a row
   * found none (plain node:http apps have no router), only every 16th is hooked, so such
   * apps do not pay for a hook on every request while new routes are still learned.
   */
  shouldLearn(): boolean {
    if (this.#futileLearning < FUTILE_LEARNING_LIMIT) return true;
    return (++this.#unmatchedSeen & 15) === 0;
  }

  /** Reports what a learning hook found. */
  learned(pattern: string | undefined): void {
    if (pattern === undefined) {
      if (this.#futileLearning < FUTILE_LEARNING_LIMIT) this.#futileLearning++;
      return;
    }
    this.#futileLearning = 0;
    this.matcher.learn(pattern);
  }

  /** The breaker of a key, made on first use; `undefined` past `maxRoutes` breakers (then unguarded). */
  route(requestKey: RequestKey): GuardedRoute | undefined {
    const key = requestKey.key;
    const existing = this.routes.get(key);
    if (existing !== undefined) return existing;
    if (this.routes.size >= this.config.maxRoutes + this.config.routes.size) {
      this.config.log.warnOnce(
        'CB_TOO_MANY_BREAKERS',
        'more breaker keys than maxRoutes; requests of further keys are not guarded',
        { key },
      );
      return undefined;
    }
    const pattern = requestKey.pattern;
    const config =
      this.tuned.get(key) ??
      (pattern === undefined ? undefined : this.tuned.get(pattern)) ??
      this.config.routes.get(key) ??
      (pattern === undefined ? undefined : this.config.routes.get(pattern)) ??
      this.defaults;
    const machine = new BreakerStateMachine(key, config.policy, this.config.clock, (event) => {
      if (event.to === 'open') this.openBreakers++;
      else if (event.from === 'open') this.openBreakers--;
      this.events.emit('state-change', event);
    });
    const bulkhead =
      config.maxConcurrent === undefined ? undefined : new Bulkhead(config.maxConcurrent, config.maxQueue);
    const limiter =
      config.adaptive === undefined
        ? undefined
        : config.adaptive.scope === 'global'
          ? this.globalLimiter
          : new ConcurrencyLimiter(key, config.adaptive);
    const route: GuardedRoute = { name: key, machine, bulkhead, limiter, config };
    this.routes.set(key, route);
    return route;
  }

  /** The settings a route runs on: its runtime ones, its `routes` override, or the defaults. */
  configOf(name: string): GuardConfig {
    return this.tuned.get(name) ?? this.config.routes.get(name) ?? this.defaults;
  }

  /** See {@link CircuitBreakerMiddleware.tune} with a route. */
  tuneRoute(tuning: BreakerTuning, name: string): void {
    if (typeof name !== 'string' || !/^(?:[A-Z]+ )?\//.test(name)) {
      throw new TypeError(`${PKG}: a route is a pattern ('/api/items') or a key ('GET /api/items')`);
    }
    if (typeof tuning === 'object' && tuning !== null && tuning.maxEventLoopDelay !== undefined) {
      throw new TypeError(`${PKG}: "maxEventLoopDelay" is not per route`);
    }
    const next = resolveTuning(tuning, this.configOf(name), undefined).defaults;
    this.tuned.set(name, next);
    const byKey = name.includes(' ');
    for (const route of this.routes.values()) {
      const pattern = route.name.slice(route.name.indexOf(' ') + 1);
      // A key's own runtime settings win over its pattern's.
      if (byKey ? route.name !== name : pattern !== name || this.tuned.has(route.name)) continue;
      route.config = next;
      route.machine.policy = next.policy;
    }
  }

  /** See {@link CircuitBreakerMiddleware.tune}. */
  tune(tuning: BreakerTuning): void {
    const next = resolveTuning(tuning, this.defaults, this.monitor?.config);
    const before = this.defaults;
    this.defaults = next.defaults;
    for (const route of this.routes.values()) {
      if (route.config !== before || this.tuned.has(route.name)) continue;
      route.config = next.defaults;
      route.machine.policy = next.defaults.policy;
    }
    if (this.monitor !== undefined && next.overload !== undefined) this.monitor.config = next.overload;
  }

  /**
   * Answers a request the app will not (or no longer) answer: a registered stale fallback
   * first (the cache's stale-if-error), then the `fallback` option, then the problem.
   */
  answer(
    req: IncomingMessage,
    res: ServerResponse,
    reason: FallbackReason,
    config: GuardConfig,
    problem: Problem,
  ): void {
    if (tryFallback(req, res, reason)) return;
    if (config.fallback !== undefined) {
      try {
        config.fallback(req, res, reason);
        return;
      } catch (error) {
        this.config.log.errorOnce('CB_FALLBACK_THREW', 'the "fallback" handler threw; sending the problem instead', {
          error: String(error),
        });
        if (res.headersSent) {
          if (!res.writableEnded) res.end();
          return;
        }
      }
    }
    sendProblem(res, problem, req.method);
  }

  /** Counts a request refused because `route`'s breaker is open; returns its `Retry-After` (s). */
  countOpen(route: GuardedRoute): number {
    const retryAfter = Math.max(1, Math.ceil(route.machine.retryAfterMs() / 1000));
    this.metrics.shortCircuits.inc({ breaker: route.name });
    this.events.emit('rejection', { name: route.name, reason: 'circuit-open' });
    return retryAfter;
  }

  /** The breaker that would refuse this request as open, for the early check; else `undefined`. */
  openRoute(req: IncomingMessage, pattern: string | undefined): GuardedRoute | undefined {
    if (this.openBreakers <= 0 || this.closed || this.config.key !== undefined || this.monitor?.overloaded === true) {
      return undefined;
    }
    const path = pathOf(req.url);
    if (this.config.isExempt(path)) return undefined;
    const named = pattern ?? this.matcher.match(path);
    if (named === undefined || isCatchAll(named)) return undefined;
    const route = this.routes.get(breakerKey(req.method, named));
    if (route === undefined || route.config.fallback !== undefined || !route.machine.rejectsNow()) return undefined;
    return route;
  }

  rejectOpen(req: IncomingMessage, res: ServerResponse, route: GuardedRoute): void {
    const retryAfter = this.countOpen(route);
    spanEvent(req, 'circuit_breaker', { 'perfstack.breaker.name': route.name, 'perfstack.breaker.state': 'open' });
    this.answer(req, res, 'circuit-open', route.config, {
      code: 'CIRCUIT_OPEN',
      detail: CIRCUIT_OPEN_DETAIL,
      headers: { 'Retry-After': retryAfter },
    });
  }

  rejectFull(req: IncomingMessage, res: ServerResponse, route: GuardedRoute): void {
    this.metrics.rejections.inc({ breaker: route.name });
    this.events.emit('rejection', { name: route.name, reason: 'bulkhead-full' });
    this.answer(req, res, 'overloaded', route.config, {
      code: 'OVERLOADED',
      detail: BULKHEAD_DETAIL,
      headers: { 'Retry-After': 1 },
    });
  }

  rejectLimited(req: IncomingMessage, res: ServerResponse, route: GuardedRoute): void {
    this.concurrency.shed.inc({ limiter: (route.limiter as ConcurrencyLimiter).name });
    this.events.emit('rejection', { name: route.name, reason: 'concurrency-limit' });
    this.answer(req, res, 'overloaded', route.config, {
      code: 'OVERLOADED',
      detail: LIMITED_DETAIL,
      headers: { 'Retry-After': 1 },
    });
  }

  /** Every adaptive limiter once (the global one is shared by routes). */
  *limiters(): Iterable<ConcurrencyLimiter> {
    if (this.globalLimiter !== undefined) yield this.globalLimiter;
    for (const route of this.routes.values()) {
      if (route.limiter !== undefined && route.limiter !== this.globalLimiter) yield route.limiter;
    }
  }

  shedRequest(req: IncomingMessage, res: ServerResponse, path: string): void {
    const monitor = this.monitor as OverloadMonitor;
    const reason = monitor.reason ?? 'event-loop-delay';
    this.shed++;
    this.metrics.shed.inc({ reason });
    this.events.emit('shed', { reason, path });
    const retryAfter = Math.max(1, Math.ceil(monitor.config.sampleIntervalMs / 1000));
    if (tryFallback(req, res, 'overloaded')) return;
    sendProblem(res, { code: 'OVERLOADED', detail: SHED_DETAIL, headers: { 'Retry-After': retryAfter } }, req.method);
  }

  timeoutProblem(): Problem {
    return { code: 'TIMEOUT', detail: TIMEOUT_DETAIL };
  }
}

/**
 * The life of one guarded request: waits for a bulkhead slot if needed, runs the app under
 * a time budget, and reports the outcome to the breaker when the response closes.
 */
class RequestGuard {
  readonly #engine: Engine;
  readonly #route: GuardedRoute;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #permit: number;
  #next: NextFunction | undefined;
  #startedAt = 0;
  #timer: unknown;
  #waiter: (() => void) | undefined;
  #queued = false;
  #holdsSlot = false;
  #timedOut = false;
  #done = false;
  /** When the adaptive limiter admitted it, and how many were in flight then. */
  #limitedAt = 0;
  #inflightAtStart = 0;

  constructor(engine: Engine, route: GuardedRoute, req: IncomingMessage, res: ServerResponse, permit: number) {
    this.#engine = engine;
    this.#route = route;
    this.#req = req;
    this.#res = res;
    this.#permit = permit;
  }

  start(next: NextFunction): void {
    const route = this.#route;
    const clock = this.#engine.config.clock;
    this.#next = next;
    this.#startedAt = clock.now();
    if (route.limiter !== undefined) {
      this.#limitedAt = this.#engine.now();
      this.#inflightAtStart = route.limiter.inflight;
    }
    this.#res.on('close', () => this.#onClose());
    if (route.config.timeoutMs !== undefined) {
      this.#timer = clock.setTimeout(() => this.#onTimeout(), route.config.timeoutMs);
    }
    if (route.bulkhead !== undefined) {
      this.#waiter = () => this.#onGranted();
      const entry = route.bulkhead.enter(this.#waiter);
      if (entry === 'queued') {
        this.#queued = true;
        return;
      }
      if (entry === 'full') {
        this.#done = true;
        this.#clearTimer();
        route.limiter?.release();
        route.machine.onCancel(this.#permit);
        this.#engine.rejectFull(this.#req, this.#res, route);
        return;
      }
      this.#holdsSlot = true;
    }
    this.#run();
  }

  #run(): void {
    (this.#next as NextFunction)();
  }

  #onGranted(): void {
    this.#queued = false;
    if (this.#engine.closed) {
      // Drained by close(): it never got a slot.
      this.#done = true;
      this.#clearTimer();
      this.#route.limiter?.release();
      this.#route.machine.onCancel(this.#permit);
      this.#engine.rejectFull(this.#req, this.#res, this.#route);
      return;
    }
    this.#holdsSlot = true;
    if (this.#route.machine.policy.slowCallMs !== undefined) this.#startedAt = this.#engine.config.clock.now();
    this.#run();
  }

  #onTimeout(): void {
    this.#timer = undefined;
    if (this.#done) return;
    this.#timedOut = true;
    const route = this.#route;
    const engine = this.#engine;
    const res = this.#res;
    const timeoutMs = route.config.timeoutMs as number;
    engine.metrics.timeouts.inc({ breaker: route.name });
    engine.events.emit('timeout', { name: route.name, timeoutMs });
    if (this.#queued) {
      // The app never saw it: no verdict on the route, just the answer.
      this.#queued = false;
      route.bulkhead?.cancel(this.#waiter as () => void);
      route.machine.onCancel(this.#permit);
      engine.answer(this.#req, res, 'timeout', route.config, engine.timeoutProblem());
      return;
    }
    route.machine.onFailure(this.#permit, engine.config.clock.now() - this.#startedAt, true);
    if (res.headersSent) {
      // A response already under way cannot become a 504; cut it so the client sees it incomplete.
      res.destroy();
      return;
    }
    const guard = neutralise(res);
    guard.answer(() => engine.answer(this.#req, res, 'timeout', route.config, engine.timeoutProblem()));
    if (!res.writableEnded) {
      engine.config.log.warnOnce(
        'CB_ASYNC_FALLBACK',
        'a fallback did not end the response synchronously after a timeout; sent 504 instead',
      );
      guard.answer(() => {
        if (res.headersSent) res.end();
        else sendProblem(res, engine.timeoutProblem(), this.#req.method);
      });
    }
  }

  #onClose(): void {
    this.#clearTimer();
    if (this.#done) return;
    this.#done = true;
    const route = this.#route;
    if (this.#queued) {
      this.#queued = false;
      route.bulkhead?.cancel(this.#waiter as () => void);
      route.limiter?.release();
      route.machine.onCancel(this.#permit);
      return;
    }
    this.#release();
    const limiter = route.limiter;
    if (this.#timedOut) {
      // A drop: the limit shrinks whatever the latency.
      limiter?.complete(this.#limitedAt, this.#inflightAtStart, this.#engine.now(), true);
      return;
    }
    const res = this.#res;
    if (!res.writableFinished) {
      // The client went away: no verdict on the route, no latency sample.
      limiter?.release();
      route.machine.onCancel(this.#permit);
      return;
    }
    const duration =
      route.machine.policy.slowCallMs === undefined ? 0 : this.#engine.config.clock.now() - this.#startedAt;
    if (this.#engine.isFault(this.#req, res, route.config)) {
      // A fast failure says nothing about queueing: no latency sample.
      limiter?.release();
      route.machine.onFailure(this.#permit, duration);
    } else {
      limiter?.complete(this.#limitedAt, this.#inflightAtStart, this.#engine.now(), false);
      route.machine.onSuccess(this.#permit, duration);
    }
  }

  #release(): void {
    if (this.#holdsSlot) {
      this.#holdsSlot = false;
      this.#route.bulkhead?.leave();
    }
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      this.#engine.config.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}

/**
 * A wildcard-only route (`app.get('*')`, Express 5's `/*splat`, `/{*splat}`, `(.*)`) answers
 * every URL, like a catch-all `app.use(handler)`: one breaker for it would let one failing URL
 * refuse all the others, so its requests are not guarded either.
 */
function isCatchAll(pattern: string): boolean {
  return /^\/?(?:\*\w*|\{\/?\*\w*\}|\(\.\*\))$/.test(pattern);
}

/** The breaker key of a pattern: HEAD shares GET's breaker (the same handler answers both). */
function breakerKey(method: string | undefined, pattern: string): string {
  const verb = method === undefined || method === 'HEAD' ? 'GET' : method;
  return `${verb} ${pattern}`;
}

/**
 * Watches a request that named no route: when the app names its pattern while answering
 * (`setRoute` inside a node:http handler, a route the resolver cannot see into), the pattern
 * is learned, so later requests are guarded from their start, and this response is judged
 * on that route's breaker (a permit taken after the fact; none while the breaker is open).
 */
function watchUnnamed(engine: Engine, req: IncomingMessage, res: ServerResponse): void {
  let pattern: string | undefined;
  onBeforeHead(res, function learnRoute() {
    pattern = captureRoute(req);
    engine.learned(pattern !== undefined && isCatchAll(pattern) ? undefined : pattern);
  });
  res.once('close', function judgeUnnamed() {
    if (pattern === undefined || isCatchAll(pattern) || engine.closed || !res.writableFinished) return;
    const route = engine.route({ key: breakerKey(req.method, pattern), pattern });
    if (route === undefined) return;
    const permit = route.machine.acquire();
    if (permit === REJECTED) return;
    if (engine.isFault(req, res, route.config)) route.machine.onFailure(permit, 0);
    else route.machine.onSuccess(permit, 0);
  });
}

/**
 * Guards the app's routes with per-route circuit breakers, time budgets and bulkheads,
 * and sheds load when the process is overloaded.
 *
 * Mounted globally (before the router) it keys each request by its method and the full route
 * pattern the framework will run (`GET /users/:uid/posts/:pid`), resolved before the router
 * runs (core's `getRoute`); mounted on a route (`app.get('/x', breaker, handler)`) by that
 * route's pattern. A request that names no route (a catch-all, a proxy, a 404) is not guarded. Turned-away requests get RFC 9457 problems: 503
 * `CIRCUIT_OPEN` and 503 `OVERLOADED` with `Retry-After`, 504 `TIMEOUT` — unless a stale
 * fallback registered with core's `setFallback` (the cache) or the `fallback` option answers.
 *
 * @param options breaker policy, budgets, bulkheads, overload thresholds, per-route overrides
 * @returns the middleware, with `snapshot()`, `reset()`, `health()`, `on()` and `close()`
 * @throws {TypeError|RangeError} on an invalid option, naming it
 * @example
 * const breaker = circuitBreaker({ failureThreshold: 5, resetTimeout: '30s', timeout: '10s', exempt: ['/health'] });
 * app.use(breaker);
 */
export function circuitBreaker(options?: CircuitBreakerOptions): CircuitBreakerMiddleware {
  const engine = new Engine(resolveMiddlewareOptions(options));
  const { isExempt } = engine.config;
  const monitor = engine.monitor;
  const marker = engine.marker;

  const middleware = function circuitBreakerMiddleware(req: IncomingMessage, res: ServerResponse, next: NextFunction) {
    warmShapes(req, res);
    const marked = req as IncomingMessage & Record<symbol, true>;
    if (engine.closed || marked[marker] === true) {
      next();
      return;
    }
    marked[marker] = true;
    const path = pathOf((req as ExpressRequest).originalUrl ?? req.url);
    if (isExempt(path)) {
      next();
      return;
    }
    if (monitor?.overloaded === true) {
      engine.shedRequest(req, res, path);
      return;
    }
    const key = engine.keyOf(req, path);
    const route = key === undefined ? undefined : engine.route(key);
    if (route === undefined) {
      // No route pattern yet: not guarded. If the app names one while it answers
      // (`setRoute` in a node:http handler), the breaker learns it and judges this response.
      if (key === undefined && engine.shouldLearn()) watchUnnamed(engine, req, res);
      next();
      return;
    }
    const permit = route.machine.acquire();
    if (permit === REJECTED) {
      engine.rejectOpen(req, res, route);
      return;
    }
    if (route.limiter !== undefined && !route.limiter.tryAcquire()) {
      route.machine.onCancel(permit);
      engine.rejectLimited(req, res, route);
      return;
    }
    spanEvent(req, 'circuit_breaker', {
      'perfstack.breaker.name': route.name,
      'perfstack.breaker.state': route.machine.state,
    });
    new RequestGuard(engine, route, req, res, permit).start(next);
  } as CircuitBreakerMiddleware;

  const extras: Omit<CircuitBreakerMiddleware, keyof ClosableMiddleware | 'close'> &
    Pick<CircuitBreakerMiddleware, 'close'> = {
    registry: engine.config.registry,
    snapshot() {
      const breakers: BreakerSnapshot[] = [];
      for (const route of engine.routes.values()) {
        const breaker = route.machine.snapshot();
        breakers.push(route.limiter === undefined ? breaker : { ...breaker, concurrency: route.limiter.snapshot() });
      }
      return { breakers, overloaded: monitor?.overloaded ?? false, shed: engine.shed };
    },
    reset(name?: string) {
      if (name === undefined) for (const route of engine.routes.values()) route.machine.reset();
      else engine.routes.get(name)?.machine.reset();
    },
    health(): HealthCheck {
      const notClosed: string[] = [];
      for (const route of engine.routes.values()) if (route.machine.state !== 'closed') notClosed.push(route.name);
      const overloaded = monitor?.overloaded ?? false;
      if (notClosed.length === 0 && !overloaded) return { status: 'ok', open: [], overloaded: false };
      const parts: string[] = [];
      if (notClosed.length > 0) parts.push(`breakers not closed: ${notClosed.join(', ')}`);
      if (overloaded) parts.push(`shedding load (${monitor?.reason})`);
      return { status: 'degraded', detail: parts.join('; '), open: notClosed, overloaded };
    },
    on(event, listener) {
      return engine.events.on(event, listener);
    },
    tune(tuning, route) {
      if (route === undefined) engine.tune(tuning);
      else engine.tuneRoute(tuning, route);
    },
    tunables(route) {
      const d = route === undefined ? engine.defaults : engine.configOf(route);
      const routes = new Set([...engine.config.routes.keys(), ...engine.tuned.keys()]);
      for (const key of engine.routes.keys()) routes.add(key.slice(key.indexOf(' ') + 1));
      return {
        routes: [...routes].sort(),
        timeoutMs: d.timeoutMs,
        failureThreshold: d.policy.failureThreshold,
        resetTimeoutMs: d.policy.resetTimeoutMs,
        maxEventLoopDelayMs: monitor?.config.maxEventLoopDelayMs,
      };
    },
    async close() {
      if (engine.closed) return;
      engine.closed = true;
      monitor?.close();
      for (const route of engine.routes.values()) for (const waiter of route.bulkhead?.drain() ?? []) waiter();
      engine.metrics.detach();
      engine.concurrency.detach();
    },
  };
  const early: EarlyBreaker = {
    anyOpen: () => engine.openBreakers > 0,
    openRoute: (req, pattern) => engine.openRoute(req, pattern),
    reject: (route) => {
      const guarded = route as GuardedRoute;
      guarded.machine.acquire();
      return { retryAfter: engine.countOpen(guarded), body: CIRCUIT_OPEN_BODY };
    },
  };
  Object.defineProperty(middleware, EARLY_BREAKER, { value: early });
  return Object.assign(middleware, extras);
}

/**
 * A breaker to put on one route (`app.get('/x', circuitBreaker.route(), handler)`): keyed
 * by that route's exact pattern from its first request, with process overload shedding off
 * (that belongs to the global middleware).
 *
 * @param options as for {@link circuitBreaker}
 * @returns the middleware
 * @throws {TypeError|RangeError} on an invalid option, naming it
 * @example app.get('/reports/:id', circuitBreaker.route({ timeout: '5s', maxConcurrent: 4 }), report);
 */
circuitBreaker.route = function route(options?: CircuitBreakerOptions): CircuitBreakerMiddleware {
  return circuitBreaker({ overload: false, ...options });
};
