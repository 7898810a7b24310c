/**
 * `rateLimit(options)`: the middleware, its data methods (`stats`, `getKey`, `resetKey`,
 * `health`), per-route limiters (`route`) and `close`.
 *
 * The request path: skip? → key → cost → one store decision (all limits at once) →
 * headers → `next()` or the 429. With the memory store, sync option functions and no
 * `handler`, it runs without a single promise or closure; the Redis path costs one
 * promise and one `EVALSHA`. Failure policy (Redis unreachable, erroring or slower than
 * `commandTimeout` of loop time — core's lateness-aware deadline, so our own busy event loop
 * is not blamed on Redis):
 *
 * - `failOpen: true` decides with a local in-memory limiter until Redis answers again. With
 *   `fallbackLimit: 'share'` (default) it admits `ceil(limit / liveInstances)` per instance
 *   (the fleet's live size from core's heartbeats), so the fleet keeps its promise: per
 *   window, at most `limit` (Redis) + `liveInstances × ceil(limit / liveInstances)` (local).
 *   Refusals Redis made are copied into the local limiter (only on a refusal), so a client
 *   Redis refused stays refused through an outage. After an outage, a key the local limiter
 *   decided keeps being decided locally until its window ends — no fresh quota on recovery.
 * - `failOpen: false` holds requests while Redis stalls, up to `storeWait`, then answers 503
 *   `STORE_UNAVAILABLE`; a decision already sent may take `commandTimeout + storeWait`.
 *
 * While Redis fails, one request at a time probes it and the rest do not wait on it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type ClosableMiddleware,
  clusterChannel,
  createRegistry,
  type HealthCheck,
  type HealthSource,
  type NextFunction,
  OnceLogger,
  optionTypeError,
  problemJson,
  type RateLimitSource,
  type RateLimitStats,
  readInteger,
  type SharedRedis,
  sendProblem,
  spanEvent,
  warmShapes,
} from '@perfstack/core';
import type { LimitSpec } from './algorithms.js';
import { ClientAddress } from './client-ip.js';
import { type HeaderPlan, headerPlan, pushRateLimitHeaders, setRateLimitHeaders, tightest } from './headers.js';
import { LimiterCounters, registerCounters } from './metrics.js';
import {
  type Algorithm,
  KNOWN_OPTIONS,
  PKG,
  type RateLimitConfig,
  type RateLimitInfo,
  type RateLimitOptions,
  resolveOptions,
} from './options.js';
import { ClusterStore } from './store/cluster.js';
import { MemoryStore } from './store/memory.js';
import { type RedisKeyPlan, RedisStore } from './store/redis.js';
import type { Decision } from './store/types.js';

/** One limit as `stats()` shows it. */
export interface LimitStats {
  readonly name: string;
  readonly algorithm: Algorithm;
  readonly scope: 'client' | 'global';
  readonly limit: number;
  readonly windowMs: number;
  readonly allowed: number;
  readonly blocked: number;
}

/** What `stats()` returns (core's {@link RateLimitStats} plus detail). */
export interface RateLimiterStats extends RateLimitStats {
  /** Requests `skip` let through unlimited. */
  readonly skipped: number;
  /** Requests decided by the local limiter while Redis was failing. */
  readonly fallback: number;
  /** Requests answered 503 because Redis failed and `failOpen` is false. */
  readonly unavailable: number;
  readonly store: 'memory' | 'redis' | 'cluster';
  /** Client keys held in memory (memory store, or the local fallback). */
  readonly keys: number;
  /** Of those, keys kept because they are over their limit (never evicted by other keys). */
  readonly heldKeys: number;
  /** Cluster store: blocks of leased quota this worker holds now (option `lease`); else 0. */
  readonly leases: number;
  readonly limits: readonly LimitStats[];
}

/** One limit's state for a key, as `getKey()` returns it. */
export interface KeyLimitState {
  readonly name: string;
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  readonly resetTime: Date;
}

/** `getKey()`'s answer. */
export interface RateLimitKeyInfo {
  readonly key: string;
  readonly limits: readonly KeyLimitState[];
}

/** The limiter: a Connect middleware with data methods. */
export interface RateLimiter extends ClosableMiddleware, RateLimitSource, HealthSource {
  /** Counts, overall and per limit (route limiters made with {@link RateLimiter.route} included). */
  stats(): RateLimiterStats;
  /** Forgets a client key's per-client counters (in Redis and in the local limiter). */
  resetKey(key: string): Promise<void>;
  /** A client key's state per limit, or `undefined` when it has used nothing. */
  getKey(key: string): Promise<RateLimitKeyInfo | undefined>;
  /** `degraded` while the Redis store is unreachable or failing. */
  health(): HealthCheck;
  /**
   * A limiter for one route that shares this one's connection, registry, logger, key
   * settings and failure policy: `app.post('/login', limiter.route({ limit: 5, window: '1m' }))`.
   * It counts in addition to this limiter, under its own keys and policy names.
   */
  route(options?: RateLimitOptions): RateLimiter;
  /**
   * Changes a limit's `limit` at runtime (the dashboard's settings): the headers, the local
   * limiter, the Redis script's arguments and the cluster hub all take it from the next
   * decision; counts already made are kept. Validated like the option.
   *
   * @param limit the new `limit`, a whole number of at least 1
   * @param name the limit's name (default: the first limit)
   * @throws {TypeError|RangeError} on a bad value or an unknown name
   */
  setLimit(limit: number, name?: string): void;
  /** This limiter's own limits (not its route limiters') with the values in force. */
  tunables(): ReadonlyArray<{ readonly name: string; readonly limit: number; readonly windowMs: number }>;
}

const STORE_DOWN = 'RATE_LIMIT_STORE_UNAVAILABLE';
/**
 * ms of loop time a cluster decision may take before this worker decides locally. A live hub
 * answers in well under 1 ms, but on an overloaded machine the hub is starved too, and only it
 * is exact; a hub that is gone is noticed at once (its pipe or socket closes).
 */
const CLUSTER_TIMEOUT_MS = 5000;
/** Most requests held at once while a fail-closed limiter waits for Redis (`storeWait`). */
export const MAX_WAITING = 10_000;

/** A request held while Redis stalls (`failOpen: false`). */
interface Waiter {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly next: NextFunction;
  readonly key: string;
  readonly cost: number;
  readonly until: number;
}
/** Options a route limiter takes from its parent unless it sets them. */
const INHERITED: readonly (keyof RateLimitOptions)[] = [
  'keyGenerator',
  'ipv6Subnet',
  'trustProxy',
  'store',
  'failOpen',
  'maxKeys',
  'maxHeldKeys',
  'fallbackLimit',
  'storeWait',
  'lease',
  'headers',
  'standardHeaders',
  'legacyHeaders',
  'handler',
  'message',
  'requestPropertyName',
  'validate',
  'clock',
  'registry',
  'logger',
];
const namespaces = new WeakMap<SharedRedis, Set<string>>();

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';

/** The `req.rateLimit` object; `resetTime` is made only when read. */
class Info implements RateLimitInfo {
  constructor(
    readonly name: string,
    readonly limit: number,
    readonly remaining: number,
    readonly used: number,
    readonly key: string,
    readonly retryAfter: number,
    private readonly resetAt: number,
  ) {}
  get resetTime(): Date {
    return new Date(this.resetAt);
  }
}

/** A decision the stack's early check made and left for the middleware to finish. */
const EARLY_DECISION = Symbol.for('perfstack.rateLimit.earlyDecision');

interface EarlyDecided {
  readonly key: string;
  readonly decision: Decision;
  readonly now: number;
}

type EarlyRequest = IncomingMessage & { [EARLY_DECISION]?: EarlyDecided };

/** What {@link EarlyLimiter.decide} answers: the request's headers, and its 429 when refused. */
export interface EarlyVerdict {
  /** The rate-limit headers, as flat `[name, value, ...]` pairs. */
  readonly headers: string[];
  /** `Retry-After` (s) when refused, else 0. */
  readonly retryAfter: number;
  /** The problem+json body of the 429, when refused. */
  readonly refusal: string | undefined;
}

/**
 * @internal The limiter as the stack's refusal gate (perfstack's `refusal-gate.ts`) asks it,
 * before the framework dispatches the request: only for the memory store with the default
 * key and no `skip`, `cost` function or `handler` (anything else is decided in the chain).
 */
export interface EarlyLimiter {
  /** The client key when a dry run says this request would be refused, else `undefined`. */
  wouldRefuse(req: IncomingMessage, app: unknown): string | undefined;
  /** The client key when the request can be decided early at all, else `undefined`. */
  keyOf(req: IncomingMessage, app: unknown): string | undefined;
  /**
   * Decides `req` for real (counting it). When the gate answers (`answer`), counts the outcome
   * and returns the headers; otherwise (or on a decision the gate cannot answer) leaves the
   * decision on the request for the middleware, which finishes it as if it had decided, and
   * returns `undefined`.
   */
  decide(req: IncomingMessage, key: string, answer: 'refused' | 'allowed' | false): EarlyVerdict | undefined;
}

/** @internal Where a rate limiter keeps its {@link EarlyLimiter}. */
export const EARLY_LIMITER = Symbol.for('perfstack.rateLimit.earlyLimiter');

/** Most early 429 bodies a limiter keeps (one per limit and distinct `retryAfter`). */
const MAX_REFUSAL_BODIES = 256;

/** The limiter's machinery; {@link rateLimit} wraps it in a middleware function. */
class Limiter {
  readonly config: RateLimitConfig;
  readonly counters: LimiterCounters;
  readonly children = new Set<Limiter>();
  readonly #raw: RateLimitOptions;
  #plan: HeaderPlan;
  readonly #address: ClientAddress;
  readonly #log: OnceLogger;
  readonly #memory: MemoryStore | undefined;
  readonly #redisStore: RedisStore | undefined;
  readonly #clusterStore: ClusterStore | undefined;
  readonly #names: readonly string[];
  #limits: readonly number[];
  readonly #unregister: () => void;
  readonly #namespace: string | undefined;
  #failing = false;
  /** A call is out to Redis while it is failing: the others do without it until it answers. */
  #probing = false;
  #closed = false;
  /** The limits at full size; the local fallback may run with a share of them. */
  #specs: readonly LimitSpec[];
  /** The fleet size the local fallback's limits are divided by. */
  #shareOf = 1;
  /** Until then (clock ms), keys the local limiter decided during an outage stay local. */
  #reconcileUntil = 0;
  readonly #maxWindowMs: number;
  readonly #waiting: Waiter[] = [];
  #waitTimer: NodeJS.Timeout | undefined;
  #statusListener: { dispose(): void } | undefined;
  /**
   * The early 429's problem+json bodies by limit and `retryAfter` (the only members that
   * vary): a window has few distinct values, so under a flood each body is serialised once.
   */
  readonly #refusalBodies = new Map<number, string>();

  constructor(raw: RateLimitOptions | undefined, config: RateLimitConfig) {
    this.#raw = raw ?? {};
    this.config = config;
    this.#log = new OnceLogger(config.logger);
    this.#names = config.limits.map((l) => l.name);
    this.#limits = config.limits.map((l) => l.spec.limit);
    this.#plan = headerPlan(
      config.limits.map((l) => ({ name: l.name, limit: l.spec.limit, windowMs: l.spec.windowMs })),
      config.draft,
      config.legacyHeaders,
    );
    this.#address = new ClientAddress(config.trust, config.ipv6Subnet, this.#log, config.checks);
    this.counters = new LimiterCounters(this.#names);
    this.#unregister = registerCounters(config.registry ?? createRegistry(), this.counters);
    this.#warnAtConstruction();
    const specs = config.limits.map((l) => l.spec);
    const global = config.limits.map((l) => l.global);
    const clock = config.clock ?? Date.now;
    const sweepIntervalMs = Math.max(1000, Math.min(60_000, ...specs.map((s) => s.windowMs)));
    this.#specs = specs;
    this.#maxWindowMs = Math.max(...specs.map((s) => Math.max(s.windowMs, s.blockMs)));
    if (config.storeKind !== 'redis' || config.failOpen) {
      this.#memory = new MemoryStore({
        specs,
        global,
        maxKeys: config.maxKeys,
        maxHeldKeys: config.maxHeldKeys,
        sweepIntervalMs,
        clock,
      });
    }
    const channel = config.storeKind === 'cluster' ? clusterChannel() : undefined;
    this.#clusterStore =
      channel === undefined
        ? undefined
        : new ClusterStore(
            channel,
            {
              ns: `${config.prefix}${this.#names.join('+')}`,
              specs,
              global,
              maxKeys: config.maxKeys,
              maxHeldKeys: config.maxHeldKeys,
              lease: config.lease,
            },
            CLUSTER_TIMEOUT_MS,
            (key) => this.#memory?.reset(key),
            () => {
              if (this.#failing) this.#recovered();
            },
          );
    const redis = config.redis;
    if (config.storeKind === 'redis' && redis !== undefined) {
      const plan = keyPlan(config, redis.keyPrefix);
      this.#namespace = `${redis.keyPrefix}${config.prefix}${this.#names.join('+')}`;
      let used = namespaces.get(redis);
      if (used === undefined) {
        used = new Set();
        namespaces.set(redis, used);
      }
      if (used.has(this.#namespace) && config.checks.unsharedStore) {
        this.#log.warnOnce(
          'ERR_ERL_STORE_REUSE',
          `Two rate limiters use the same Redis keys (${this.#namespace}): they count each other's requests. Give one a distinct "prefix" or limit "name".`,
        );
      }
      used.add(this.#namespace);
      // Fail closed: a decision already sent may wait out a stall (storeWait) before the 503.
      const timeout = config.failOpen ? redis.commandTimeout : redis.commandTimeout + config.storeWait;
      this.#redisStore = new RedisStore(redis, specs, plan, timeout);
      if (config.failOpen && config.fallbackLimit === 'share') void redis.joinFleet();
      // The connection's own probe shows Redis answers again: stop failing (health says ok
      // even before the next request), and decide the requests held meanwhile.
      this.#statusListener = redis.onStatusChange((status) => {
        if (status === 'up' && this.#failing) this.#recovered();
        else if (status === 'up') this.#flushWaiting();
      });
    }
  }

  /** The middleware body. */
  handle(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    const early = (req as EarlyRequest)[EARLY_DECISION];
    if (early !== undefined) {
      // Decided (and counted in the store) by the stack's early check: finish it here.
      (req as EarlyRequest)[EARLY_DECISION] = undefined;
      this.#finish(req, res, next, early.key, early.decision, early.now);
      return;
    }
    const config = this.config;
    if (config.skip !== undefined) {
      const skip = config.skip(req, res);
      if (isThenable(skip)) {
        this.#slow(req, res, next, skip).catch(next);
        return;
      }
      if (skip) {
        this.counters.skipped++;
        next();
        return;
      }
    }
    const key = config.keyGenerator === undefined ? this.#address.key(req) : config.keyGenerator(req, res);
    if (typeof key !== 'string') {
      this.#slow(req, res, next, false, key).catch(next);
      return;
    }
    let cost = config.cost;
    if (config.costFn !== undefined) {
      const c = config.costFn(req, res);
      if (typeof c !== 'number') {
        this.#slow(req, res, next, false, key, c).catch(next);
        return;
      }
      cost = this.#checkCost(c);
    }
    this.#decide(req, res, next, key, cost);
  }

  /** The generic path for async `skip`, `keyGenerator` or `cost`. */
  async #slow(
    req: IncomingMessage,
    res: ServerResponse,
    next: NextFunction,
    skip: boolean | PromiseLike<unknown>,
    key?: unknown,
    cost?: unknown,
  ): Promise<void> {
    if (await skip) {
      this.counters.skipped++;
      next();
      return;
    }
    const config = this.config;
    let k = key;
    if (k === undefined) k = config.keyGenerator === undefined ? this.#address.key(req) : config.keyGenerator(req, res);
    k = await k;
    if (typeof k !== 'string') {
      this.#log.errorOnce('RATE_LIMIT_BAD_KEY', `keyGenerator returned ${typeof k}, not a string; using String(value)`);
      k = String(k);
    }
    let c: unknown = cost;
    if (c === undefined) c = config.costFn === undefined ? config.cost : config.costFn(req, res);
    this.#decide(req, res, next, k as string, this.#checkCost(await c));
  }

  #checkCost(cost: unknown): number {
    if (typeof cost === 'number' && Number.isInteger(cost) && cost >= 0) return cost;
    this.#log.errorOnce('RATE_LIMIT_BAD_COST', `cost() returned ${String(cost)}, not an integer ≥ 0; using 1`);
    return 1;
  }

  /** `until`: a held request's `storeWait` deadline (0: not held yet). */
  #decide(req: IncomingMessage, res: ServerResponse, next: NextFunction, key: string, cost: number, until = 0): void {
    const clock = this.config.clock;
    const cluster = this.#clusterStore;
    if (cluster !== undefined) {
      this.#decideInHub(cluster, req, res, next, key, cost);
      return;
    }
    const store = this.#redisStore;
    if (store === undefined) {
      const now = clock === undefined ? Date.now() : clock();
      this.#finish(req, res, next, key, (this.#memory as MemoryStore).decide(key, cost, now, false), now);
      return;
    }
    // While Redis is down, or failing with one probe call already out, do without it.
    if (!(this.config.redis as SharedRedis).isUp || (this.#failing && this.#probing)) {
      this.#storeDown(req, res, next, key, cost, until);
      return;
    }
    // After an outage, a key the local limiter decided stays local until its window ends
    // (once a probe has shown that Redis answers again).
    if (this.#reconcileUntil !== 0 && !this.#failing && this.#stillLocal(key)) {
      this.#local(req, res, next, key, cost);
      return;
    }
    const probe = this.#failing;
    if (probe) this.#probing = true;
    store.decide(key, cost, clock === undefined ? -1 : clock(), false).then(
      (decision) => {
        if (probe) this.#probing = false;
        if (this.#failing) this.#recovered();
        const now = clock === undefined ? Date.now() : clock();
        const mask = decision[0] as number;
        // Only on a refusal: the local fallback learns it, so the client stays refused if Redis stalls.
        if (mask !== 0 && this.#memory !== undefined) this.#memory.hold(key, mask, now + (decision[1] as number), now);
        this.#finish(req, res, next, key, decision, now);
      },
      (error: unknown) => {
        if (probe) this.#probing = false;
        this.#storeError(error);
        this.#storeDown(req, res, next, key, cost, until);
      },
    );
  }

  /**
   * One memory store in the cluster hub decides for every worker (batched IPC). When the hub
   * is unreachable or does not answer in time, this worker decides locally at its share
   * (`ceil(limit / liveWorkers)`, as with Redis), one probe at a time goes to the hub, and keys
   * decided locally stay local until their window ends (no fresh quota when the hub is back).
   */
  #decideInHub(
    cluster: ClusterStore,
    req: IncomingMessage,
    res: ServerResponse,
    next: NextFunction,
    key: string,
    cost: number,
  ): void {
    if (!cluster.connected || (this.#failing && this.#probing)) {
      this.#local(req, res, next, key, cost);
      return;
    }
    if (this.#reconcileUntil !== 0 && !this.#failing && this.#stillLocal(key)) {
      this.#local(req, res, next, key, cost);
      return;
    }
    const clock = this.config.clock;
    const probe = this.#failing;
    if (probe) this.#probing = true;
    // A callback, not a promise: this runs on every request (issue 16's per-decision cost).
    cluster.ask(key, cost, clock === undefined ? -1 : clock(), false, (error, decision) => {
      if (probe) this.#probing = false;
      if (error === undefined) {
        if (this.#failing) this.#recovered();
        this.#finish(req, res, next, key, decision, clock === undefined ? Date.now() : clock());
        return;
      }
      this.counters.storeErrors++;
      this.#failing = true;
      this.#log.warnOnce(
        STORE_DOWN,
        `The cluster hub did not decide (${error.message}); limiting locally in this worker to ceil(limit / ${cluster.liveWorkers}).`,
      );
      this.#local(req, res, next, key, cost);
    });
  }

  /** True while `key` has local state from an outage (ends the reconcile period once past). */
  #stillLocal(key: string): boolean {
    const now = this.config.clock === undefined ? Date.now() : this.config.clock();
    if (now >= this.#reconcileUntil) {
      this.#reconcileUntil = 0;
      return false;
    }
    return (this.#memory as MemoryStore).hasUsage(key, now);
  }

  /** Decides with the local limiter, at the fleet share of each limit. */
  #local(req: IncomingMessage, res: ServerResponse, next: NextFunction, key: string, cost: number): void {
    const memory = this.#memory as MemoryStore;
    if (this.config.fallbackLimit === 'share') {
      const n = this.#clusterStore?.liveWorkers ?? (this.config.redis as SharedRedis).liveInstances;
      if (n !== this.#shareOf) {
        this.#shareOf = n;
        memory.setSpecs(this.#specs.map((s) => ({ ...s, limit: Math.ceil(s.limit / n) })));
      }
    }
    this.counters.fallback++;
    const now = this.config.clock === undefined ? Date.now() : this.config.clock();
    const end = now + this.#maxWindowMs;
    if (end > this.#reconcileUntil) this.#reconcileUntil = end;
    this.#finish(req, res, next, key, memory.decide(key, cost, now, false), now);
  }

  /** Redis is down or failed this call: decide locally, or hold the request up to `storeWait`, then 503. */
  #storeDown(
    req: IncomingMessage,
    res: ServerResponse,
    next: NextFunction,
    key: string,
    cost: number,
    until: number,
  ): void {
    if (this.#memory !== undefined) {
      this.#local(req, res, next, key, cost);
      return;
    }
    const now = Date.now();
    const deadline = until === 0 ? now + this.config.storeWait : until;
    if (deadline > now && this.#waiting.length < MAX_WAITING && !this.#closed) {
      this.#waiting.push({ req, res, next, key, cost, until: deadline });
      this.#waitTimer ??= setInterval(() => this.#expireWaiting(), 25).unref();
      return;
    }
    this.#unavailable(req, res);
  }

  /** Redis answers again: every held request is decided now (in arrival order). */
  #flushWaiting(): void {
    const waiting = this.#waiting.splice(0);
    for (const w of waiting) this.#decide(w.req, w.res, w.next, w.key, w.cost, w.until);
    this.#stopWaitTimer();
  }

  /** Held requests past `storeWait` get their 503. */
  #expireWaiting(): void {
    const now = Date.now();
    let kept = 0;
    for (const w of this.#waiting) {
      if (w.until <= now) this.#unavailable(w.req, w.res);
      else this.#waiting[kept++] = w;
    }
    this.#waiting.length = kept;
    this.#stopWaitTimer();
  }

  #stopWaitTimer(): void {
    if (this.#waiting.length > 0 || this.#waitTimer === undefined) return;
    clearInterval(this.#waitTimer);
    this.#waitTimer = undefined;
  }

  #unavailable(req: IncomingMessage, res: ServerResponse): void {
    this.counters.unavailable++;
    this.#log.warnOnce(STORE_DOWN, 'The Redis rate-limit store is unavailable and failOpen is false: answering 503.');
    sendProblem(
      res,
      {
        code: 'STORE_UNAVAILABLE',
        detail: 'The rate-limit store is unavailable; try again shortly.',
        headers: { 'Retry-After': '1' },
      },
      req.method,
    );
  }

  #storeError(error: unknown): void {
    this.counters.storeErrors++;
    this.#failing = true;
    this.config.redis?.recordError(error);
    this.#log.warnOnce(
      STORE_DOWN,
      `The Redis rate-limit store failed (${error instanceof Error ? error.message : String(error)}); ${
        this.config.failOpen ? 'limiting locally per instance until it answers again' : 'answering 503'
      }.`,
    );
  }

  #recovered(): void {
    this.#failing = false;
    this.#log.reset(STORE_DOWN);
    if (this.#waiting.length > 0) this.#flushWaiting();
  }

  #finish(
    req: IncomingMessage,
    res: ServerResponse,
    next: NextFunction,
    key: string,
    decision: Decision,
    now: number,
  ): void {
    const mask = decision[0] as number;
    const n = this.#limits.length;
    setRateLimitHeaders(res, this.#plan, decision, now);
    let t = 0;
    if (mask !== 0) while ((mask & (1 << t)) === 0) t++;
    else if (n > 1) t = tightest(decision, n);
    const remaining = decision[2 + 2 * t] as number;
    const limit = this.#limits[t] as number;
    const retryAfter = mask === 0 ? 0 : Math.max(1, Math.ceil((decision[1] as number) / 1000));
    const info = new Info(
      this.#names[t] as string,
      limit,
      remaining,
      limit - remaining,
      key,
      retryAfter,
      now + (decision[3 + 2 * t] as number),
    );
    (req as unknown as Record<string, unknown>)[this.config.requestPropertyName] = info;
    spanEvent(req, 'rate_limit', {
      'perfstack.rate_limit.outcome': mask === 0 ? 'allowed' : 'blocked',
      'perfstack.rate_limit.name': this.#names[t] as string,
      'perfstack.rate_limit.limit': limit,
      'perfstack.rate_limit.remaining': remaining,
    });
    if (mask === 0) {
      this.counters.allow();
      next();
      return;
    }
    this.counters.block(mask);
    if (this.config.handler !== undefined) {
      this.config.handler(req, res, next, info);
      return;
    }
    sendProblem(
      res,
      {
        code: 'RATE_LIMITED',
        detail: this.config.message,
        extensions: { limit: info.name, retryAfter },
        headers: { 'Retry-After': String(retryAfter) },
      },
      req.method,
    );
  }

  /** True when requests can be decided before the chain: memory store, default key, nothing async or custom. */
  get decidesEarly(): boolean {
    const c = this.config;
    return (
      !this.#closed &&
      this.#memory !== undefined &&
      this.#redisStore === undefined &&
      this.#clusterStore === undefined &&
      c.skip === undefined &&
      c.keyGenerator === undefined &&
      c.costFn === undefined &&
      c.handler === undefined
    );
  }

  earlyKey(req: IncomingMessage, app: unknown): string | undefined {
    if (!this.decidesEarly) return undefined;
    return this.#address.key(req, (app ?? undefined) as Parameters<ClientAddress['key']>[1]);
  }

  earlyWouldRefuse(req: IncomingMessage, app: unknown): string | undefined {
    const key = this.earlyKey(req, app);
    if (key === undefined) return undefined;
    const clock = this.config.clock;
    const now = clock === undefined ? Date.now() : clock();
    return (this.#memory as MemoryStore).decide(key, this.config.cost, now, true)[0] === 0 ? undefined : key;
  }

  earlyDecide(req: IncomingMessage, key: string, answer: 'refused' | 'allowed' | false): EarlyVerdict | undefined {
    const clock = this.config.clock;
    const now = clock === undefined ? Date.now() : clock();
    const decision = (this.#memory as MemoryStore).decide(key, this.config.cost, now, false);
    const mask = decision[0] as number;
    if (answer === false || (mask === 0) !== (answer === 'allowed')) {
      // The middleware finishes it (the decision array is reused by the store: copied).
      (req as EarlyRequest)[EARLY_DECISION] = { key, decision: [...decision], now };
      return undefined;
    }
    const headers: string[] = [];
    pushRateLimitHeaders(headers, this.#plan, decision, now);
    if (mask === 0) {
      this.counters.allow();
      return { headers, retryAfter: 0, refusal: undefined };
    }
    this.counters.block(mask);
    let t = 0;
    while ((mask & (1 << t)) === 0) t++;
    const retryAfter = Math.max(1, Math.ceil((decision[1] as number) / 1000));
    const bodyKey = retryAfter * this.#names.length + t;
    let refusal = this.#refusalBodies.get(bodyKey);
    if (refusal === undefined) {
      refusal = problemJson({
        code: 'RATE_LIMITED',
        detail: this.config.message,
        extensions: { limit: this.#names[t] as string, retryAfter },
      });
      if (this.#refusalBodies.size >= MAX_REFUSAL_BODIES) this.#refusalBodies.clear();
      this.#refusalBodies.set(bodyKey, refusal);
    }
    return { headers, retryAfter, refusal };
  }

  stats(): RateLimiterStats {
    const c = this.counters;
    let allowed = c.allowedTotal;
    let blocked = c.blockedTotal;
    let storeErrors = c.storeErrors;
    let skipped = c.skipped;
    let fallback = c.fallback;
    let unavailable = c.unavailable;
    let leases = this.#clusterStore?.blocks ?? 0;
    const limits: LimitStats[] = this.config.limits.map((l, i) => ({
      name: l.name,
      algorithm: l.algorithm,
      scope: l.global ? 'global' : 'client',
      limit: this.#limits[i] as number,
      windowMs: l.spec.windowMs,
      allowed: c.allowed[i] as number,
      blocked: c.blocked[i] as number,
    }));
    for (const child of this.children) {
      const s = child.stats();
      allowed += s.allowed;
      blocked += s.blocked;
      storeErrors += s.storeErrors;
      skipped += s.skipped;
      fallback += s.fallback;
      unavailable += s.unavailable;
      leases += s.leases;
      limits.push(...s.limits);
    }
    return {
      allowed,
      blocked,
      storeErrors,
      skipped,
      fallback,
      unavailable,
      store: this.config.storeKind,
      keys: this.#memory?.size ?? 0,
      heldKeys: this.#memory?.heldSize ?? 0,
      leases,
      limits,
    };
  }

  async getKey(key: string): Promise<RateLimitKeyInfo | undefined> {
    const clock = this.config.clock;
    let decision: Decision;
    let now = clock === undefined ? Date.now() : clock();
    const store = this.#redisStore;
    if (this.#clusterStore !== undefined) {
      decision = await this.#clusterStore.decide(key, 0, clock === undefined ? -1 : now, true);
    } else if (store !== undefined && (this.config.redis as SharedRedis).isUp) {
      decision = await store.decide(key, 0, clock === undefined ? -1 : now, true);
      now = clock === undefined ? Date.now() : clock();
    } else if (this.#memory !== undefined) {
      decision = [...this.#memory.decide(key, 0, now, true)];
    } else {
      throw new Error(`${PKG}: the Redis store is unavailable`);
    }
    const limits = this.config.limits.map((l, i) => {
      const remaining = decision[2 + 2 * i] as number;
      return {
        name: l.name,
        limit: l.spec.limit,
        used: l.spec.limit - remaining,
        remaining,
        resetTime: new Date(now + (decision[3 + 2 * i] as number)),
      };
    });
    return limits.every((l) => l.used === 0) ? undefined : { key, limits };
  }

  /** See {@link RateLimiter.tunables}. */
  tunables(): ReadonlyArray<{ readonly name: string; readonly limit: number; readonly windowMs: number }> {
    return this.#specs.map((s, i) => ({ name: this.#names[i] as string, limit: s.limit, windowMs: s.windowMs }));
  }

  /** See {@link RateLimiter.setLimit}. */
  setLimit(limit: number, name?: string): void {
    const index = name === undefined ? 0 : this.#names.indexOf(name);
    if (index < 0) throw new RangeError(`${PKG}: no limit is named ${JSON.stringify(name)}`);
    if (limit === undefined) throw optionTypeError(PKG, 'limit', limit, 'an integer from 1');
    const value = readInteger(PKG, 'limit', limit, 1, 1);
    const config = this.config;
    this.#limits = this.#limits.map((l, i) => (i === index ? value : l));
    this.#specs = this.#specs.map((s, i) => (i === index ? { ...s, limit: value } : s));
    this.#plan = headerPlan(
      config.limits.map((l, i) => ({ name: l.name, limit: this.#limits[i] as number, windowMs: l.spec.windowMs })),
      config.draft,
      config.legacyHeaders,
    );
    const n = this.#shareOf;
    const local =
      this.#redisStore !== undefined || this.#clusterStore !== undefined
        ? this.#specs.map((s) => ({ ...s, limit: Math.ceil(s.limit / n) }))
        : this.#specs;
    this.#memory?.setSpecs(local);
    this.#redisStore?.setSpecs(this.#specs);
    this.#clusterStore?.setSpecs(this.#specs);
  }

  async resetKey(key: string): Promise<void> {
    this.#memory?.reset(key);
    // In a cluster the hub forgets it and tells every other worker to (their local fallback
    // and their leased block); with leases, once every block of the key is back.
    await this.#clusterStore?.reset(key);
    await this.#redisStore?.reset(key);
  }

  health(): HealthCheck {
    const c = this.counters;
    if (this.config.storeKind === 'memory') return { status: 'ok', store: 'memory' };
    const cluster = this.#clusterStore;
    if (cluster !== undefined) {
      if (cluster.connected && !this.#failing) return { status: 'ok', store: 'cluster', storeErrors: c.storeErrors };
      const share = this.config.fallbackLimit === 'share';
      return {
        status: 'degraded',
        store: 'cluster',
        storeErrors: c.storeErrors,
        ...(share ? { liveWorkers: cluster.liveWorkers } : {}),
        detail: `The cluster hub is unreachable: limiting locally in this worker${share ? ` to ceil(limit / ${cluster.liveWorkers})` : ''}`,
      };
    }
    const redis = this.config.redis as SharedRedis;
    if (redis.isUp && !this.#failing) return { status: 'ok', store: 'redis', storeErrors: c.storeErrors };
    return {
      status: 'degraded',
      store: 'redis',
      storeErrors: c.storeErrors,
      ...(this.config.failOpen && this.config.fallbackLimit === 'share' ? { liveInstances: redis.liveInstances } : {}),
      detail: this.config.failOpen
        ? this.config.fallbackLimit === 'share'
          ? `Redis store unreachable: limiting locally to ceil(limit / ${redis.liveInstances}) per instance`
          : 'Redis store unreachable: limiting locally per instance'
        : `Redis store unreachable: holding requests up to ${this.config.storeWait}ms, then 503 STORE_UNAVAILABLE`,
    };
  }

  /** Options for a route limiter: the parent's inherited ones, then the route's own. */
  routeOptions(options: RateLimitOptions | undefined): RateLimitOptions {
    const inherited: Record<string, unknown> = {};
    for (const key of INHERITED) if (this.#raw[key] !== undefined) inherited[key] = this.#raw[key];
    inherited.logger = this.config.logger;
    if (this.config.registry !== undefined) inherited.registry = this.config.registry;
    if (this.config.redis !== undefined) inherited.redis = this.config.redis;
    inherited.prefix = `${this.config.prefix}route:`;
    return { ...inherited, ...(options ?? {}) } as RateLimitOptions;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unregister();
    this.#statusListener?.dispose();
    const waiting = this.#waiting.splice(0);
    for (const w of waiting) this.#unavailable(w.req, w.res);
    this.#stopWaitTimer();
    this.#memory?.close();
    this.#redisStore?.close();
    this.#clusterStore?.close();
    const redis = this.config.redis;
    if (redis !== undefined && this.#namespace !== undefined) namespaces.get(redis)?.delete(this.#namespace);
    await Promise.all([...this.children].map((child) => child.close()));
    if (this.config.ownsRedis) await redis?.close();
  }

  #warnAtConstruction(): void {
    const { checks, keyGenerator, trustAll } = this.config;
    if (trustAll && checks.trustProxy) {
      this.#log.warnOnce(
        'ERR_ERL_PERMISSIVE_TRUST_PROXY',
        'trustProxy is true: any client can choose its own address with X-Forwarded-For and bypass IP limits. Trust only your proxies (a hop count or their addresses).',
      );
    }
    if (keyGenerator !== undefined && checks.keyGeneratorIpFallback) {
      const src = keyGenerator.toString();
      if ((src.includes('req.ip') || src.includes('request.ip')) && !src.includes('ipKeyGenerator')) {
        this.#log.warnOnce(
          'ERR_ERL_KEY_GEN_IPV6',
          'The keyGenerator appears to use req.ip without ipKeyGenerator: IPv6 clients could bypass limits by rotating addresses.',
        );
      }
    }
    if (keyGenerator !== undefined && this.#raw.ipv6Subnet !== undefined && checks.ipv6SubnetOrKeyGenerator) {
      this.#log.warnOnce(
        'ERR_ERL_IPV6SUBNET_OR_KEYGENERATOR',
        'The ipv6Subnet option is ignored when a keyGenerator is set (use ipKeyGenerator(ip, subnet) in it).',
      );
    }
  }
}

/** Redis keys: one hash tag per call, so one script touches one cluster slot. */
function keyPlan(config: RateLimitConfig, keyPrefix: string): RedisKeyPlan {
  const letter = { 'fixed-window': 'f', 'sliding-window': 's', 'token-bucket': 't' } as const;
  const limits = config.limits;
  const allClient = limits.every((l) => !l.global);
  const tag = `{${config.prefix}${limits.map((l) => l.name).join('+')}}`;
  return {
    head: limits.map((l) =>
      allClient
        ? `${keyPrefix}${config.prefix}${l.name}:${letter[l.algorithm]}:{`
        : `${keyPrefix}${tag}:${l.name}:${letter[l.algorithm]}${l.global ? '' : ':'}`,
    ),
    tail: limits.map(() => (allClient ? '}' : '')),
    global: limits.map((l) => l.global),
  };
}

function makeRateLimiter(options: RateLimitOptions | undefined, parent?: Limiter): RateLimiter {
  const config = resolveOptions(options);
  const limiter = new Limiter(options, config);
  parent?.children.add(limiter);
  const middleware = function rateLimitMiddleware(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    warmShapes(req, res);
    limiter.handle(req, res, next);
  } as RateLimiter;
  middleware.stats = () => limiter.stats();
  middleware.getKey = (key) => limiter.getKey(key);
  middleware.resetKey = (key) => limiter.resetKey(key);
  middleware.health = () => limiter.health();
  middleware.close = async () => {
    parent?.children.delete(limiter);
    await limiter.close();
  };
  middleware.route = (routeOptions) => makeRateLimiter(limiter.routeOptions(routeOptions), limiter);
  middleware.setLimit = (limit, name) => limiter.setLimit(limit, name);
  middleware.tunables = () => limiter.tunables();
  const early: EarlyLimiter = {
    wouldRefuse: (req, app) => limiter.earlyWouldRefuse(req, app),
    keyOf: (req, app) => limiter.earlyKey(req, app),
    decide: (req, key, answer) => limiter.earlyDecide(req, key, answer),
  };
  Object.defineProperty(middleware, EARLY_LIMITER, { value: early });
  return middleware;
}

/**
 * Creates a rate limiter.
 *
 * @param options see {@link RateLimitOptions}; every one is optional
 * @returns a Connect middleware (Express as is, Koa with `toKoa`, `node:http` with
 *   `withMiddleware`) that also has `stats()`, `getKey()`, `resetKey()`, `health()`,
 *   `route()` and `close()`
 * @throws {TypeError} on an unknown option or a wrong type (named in the message)
 * @throws {RangeError} on a value out of range
 * @example
 * const limiter = rateLimit({ limit: 100, window: '1m', redis: process.env.REDIS_URL });
 * app.use(limiter);
 * app.post('/login', limiter.route({ limit: 5, window: '15m', blockDuration: '15m' }), login);
 */
export function rateLimit(options?: RateLimitOptions): RateLimiter {
  return makeRateLimiter(options);
}

/**
 * A standalone per-route limiter: `app.post('/login', rateLimit.route({ limit: 5 }))`. Same
 * as `rateLimit()` with keys under `<prefix>route:`; prefer `limiter.route()` to share a
 * limiter's connection and settings.
 */
rateLimit.route = function route(options?: RateLimitOptions): RateLimiter {
  return makeRateLimiter({ prefix: 'rl:route:', ...(options ?? {}) });
};

/** The option names `rateLimit()` accepts. */
export const RATE_LIMIT_OPTIONS: readonly string[] = KNOWN_OPTIONS;
