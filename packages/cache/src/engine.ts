/**
 * The cache engine behind `responseCache()` and `cache()`: the state one instance shares
 * across requests (L1, L2, counters, flights, hit-for-pass, known keys) and its entry
 * points. Each stage of a request lives in its own file:
 *
 * 1. `request.ts` — which requests are looked up, and the per-request state.
 * 2. `collapse.ts` — L1 miss: L2 lookup (only for keys known to have been stored, only
 *    while Redis is up) and request collapsing (one fetch per key; per fleet with Redis).
 * 3. `serve.ts` — fresh → HIT; within stale-while-revalidate → STALE and a background
 *    refresh; within stale-if-error → the fallback if the origin fails.
 * 4. `record.ts` — the origin's response recorded on the way out and stored when
 *    `storability.ts` (RFC 9111 §3) says so.
 * 5. `invalidate.ts` — unsafe methods (RFC 9111 §4.4), `invalidate()`, pub/sub.
 *
 * With Redis, `fleet.ts` adds per-variant flights and fill locks and the durable
 * invalidation feed (`store/invalidation-feed.ts`), and `store/hot-keys.ts` the read
 * counts per URL that a starting instance loads the hottest entries by (warm start).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheStats, Disposable, HealthCheck, NextFunction } from '@perfstack/core';
import { OnceLogger, UNMATCHED_ROUTE } from '@perfstack/core';
import { LRUCache } from 'lru-cache';
import { settle } from './collapse.js';
import type { Entry } from './entry.js';
import { createFleet, type Fleet } from './fleet.js';
import { bypass, type InvalidateSelector, invalidateLocal, invalidateSelector, subscribe } from './invalidate.js';
import { boundKey, defaultKey, isUnkeyable } from './key.js';
import type { CacheConfig, RouteConfig } from './options.js';
import { isUnsafe, read } from './request.js';
import { REFRESH_HEADER } from './revalidate.js';
import { serveEntry, serveHitRaw, tryServe } from './serve.js';
import { type Flight, INSTANCE, type RequestState, SKIPPED, type StateRequest } from './state.js';
import { CacheCounters } from './stats.js';
import type { TunedTtls } from './storability.js';
import { HotKeys, warmStart } from './store/hot-keys.js';
import { cacheHealth } from './store/invalidation-feed.js';
import { MemoryStore } from './store/memory.js';
import { RedisStore } from './store/redis.js';
import { restoreClientConditionals } from './validate.js';

export { INSTANCE, type RequestState, requestInstance, requestState, SKIPPED, STATE } from './state.js';

/** What {@link CacheEngine.freshEntry} found: the key and the fresh entry under it. */
export interface EarlyHit {
  readonly key: string;
  readonly entry: Entry;
}

/** True when the request carries credentials (RFC 9111 §3.5 and DESIGN.md: only shared entries answer it). */
function isCredentialed(headers: IncomingMessage['headers']): boolean {
  return headers.authorization !== undefined || headers.cookie !== undefined;
}

/** Most `cache()` routes remembered for the settings API. */
const MAX_NOTED_ROUTES = 500;

/** A `cache()` route as the settings API sees it. */
export interface CachedRoute {
  /** Its own `ttl` option (ms), if any. */
  readonly ttl: number | undefined;
  /** Whether it declares tags (it can be invalidated precisely). */
  readonly tags: boolean;
}

/** One cache instance. Fields are shared by the stage modules; none is part of the public API. */
export class CacheEngine {
  readonly config: CacheConfig;
  readonly l1: MemoryStore;
  readonly l2: RedisStore | undefined;
  readonly counters: CacheCounters;
  readonly log: OnceLogger;
  /** In-flight fetches by key (request collapsing). */
  readonly flights = new Map<string, Flight>();
  /** Keys whose last response was not storable: not collapsed for a while (Varnish's hit-for-pass). */
  /** Made at the first such key (lru-cache fills every slot up front: ~2 ms a stack otherwise). */
  pass: LRUCache<string, true> | undefined;
  /** Keys known to have produced a storable response: only these are looked up in L2. */
  readonly known: LRUCache<string, true> | undefined;
  /** Keys with a background refresh under way. */
  readonly refreshing = new Set<string>();
  /** This instance's id on the pub/sub channel and in fleet locks. */
  readonly id = randomUUID();
  /** Marks this instance's own refresh requests (a client cannot forge it). */
  readonly token = randomBytes(18).toString('base64url');
  readonly disposables: Disposable[] = [];
  subscribed = false;
  closed = false;
  /** Fleet: per-variant flights and locks, the invalidation feed (fleet.ts). */
  readonly fleet: Fleet;
  /** With Redis and `warmStart` > 0: read counts per URL, for the next instance's warm start. */
  readonly hot: HotKeys | undefined;
  /** Bumped by every local invalidation: a warm-start read that overlapped one is read again. */
  generation = 0;
  /** Resolves with how many entries the warm start loaded (0 at once without Redis). */
  readonly ready: Promise<number>;
  /** Runtime ttl settings ({@link CacheEngine.setTtl}); `undefined` until one is made, so misses read one field. */
  tuned: TunedTtls | undefined;
  /** The `cache()` routes seen so far (by route label): their own ttl and whether they have tags. */
  readonly cachedRoutes = new Map<string, CachedRoute>();

  /** Remembers a `cache()` route (first miss): the settings API lists its ttl. Bounded like the stats' routes. */
  noteRoute(route: string, config: RouteConfig): void {
    if (this.cachedRoutes.size >= MAX_NOTED_ROUTES) return;
    this.cachedRoutes.set(route, { ttl: config.ttl, tags: config.tags.length > 0 });
  }

  /**
   * Sets the freshness lifetime of one route's responses stored from now on (`route`, its
   * label such as `/products/:id`), or of the layer's default `ttl`; `undefined` goes back to
   * the configured value. Entries already stored keep theirs.
   */
  setTtl(ms: number | undefined, route?: string): void {
    const routes = new Map(this.tuned?.routes ?? []);
    let ttl = this.tuned?.ttl;
    if (route === undefined) ttl = ms;
    else if (ms === undefined) routes.delete(route);
    else routes.set(route, ms);
    this.tuned = routes.size === 0 && ttl === undefined ? undefined : { routes, ttl };
  }

  /** The ttl (ms) a route's responses get now (without `route`: the default's). */
  ttlOf(route?: string): number {
    const tuned = this.tuned;
    if (route === undefined) return tuned?.ttl ?? this.config.ttl;
    return tuned?.routes.get(route) ?? this.cachedRoutes.get(route)?.ttl ?? tuned?.ttl ?? this.config.ttl;
  }

  /** Remembers `key` as not storable for `hitForPass` (nothing when hit-for-pass is off). */
  markPass(key: string): void {
    const ttl = this.config.hitForPass;
    if (ttl <= 0) return;
    this.pass ??= new LRUCache({ max: 10_000, ttl });
    this.pass.set(key, true);
  }

  constructor(config: CacheConfig) {
    this.config = config;
    this.counters = new CacheCounters(config.registry, () => ({ entries: this.l1.entries, bytes: this.l1.bytes }));
    this.l1 = new MemoryStore({
      maxEntries: config.maxEntries,
      maxBytes: config.maxBytes,
      eviction: config.eviction,
      onEvict: (count) => this.counters.evicted(count),
    });
    this.log = new OnceLogger(config.logger);
    if (config.redis !== undefined) {
      this.l2 = new RedisStore(config.redis, config.redisTimeout);
      this.known = new LRUCache({ max: Math.min(config.maxEntries * 4, 1_000_000) });
      // Invalidations missed while away come from the feed when Redis answers again (fleet.ts).
      this.disposables.push(
        config.redis.onStatusChange((status) => {
          if (status === 'up') {
            this.log.reset('CACHE_STORE_UNAVAILABLE');
            subscribe(this);
          }
        }),
      );
      if (config.redis.isUp) subscribe(this);
    } else {
      this.l2 = undefined;
      this.known = undefined;
    }
    this.fleet = createFleet(this, (keys, tags, prefix) => invalidateLocal(this, keys, tags, prefix));
    this.hot =
      config.redis !== undefined && config.warmStart > 0
        ? new HotKeys({
            redis: config.redis,
            set: 'responses',
            timeout: config.redisTimeout,
            flushInterval: config.accessFlushInterval,
            onError: (error) => this.storeError(error),
          })
        : undefined;
    this.ready = this.#warmStart();
  }

  /**
   * Loads the most read URLs (all their fresh variants) from Redis into L1: one `HGETALL`
   * per URL, sent at once. A URL whose record is gone, or whose variants are all past
   * their freshness, is skipped; one this instance stored meanwhile is left alone.
   */
  #warmStart(): Promise<number> {
    const l2 = this.l2;
    const hot = this.hot;
    if (l2 === undefined || hot === undefined) return Promise.resolve(0);
    return warmStart(hot, {
      count: this.config.warmStart,
      read: (keys) =>
        Promise.all(
          keys.map((key) =>
            l2.readVariants(key).then(
              (variants): [string, Entry[]] => [key, variants],
              (error: unknown): [string, Entry[]] => {
                this.storeError(error);
                return [key, []];
              },
            ),
          ),
        ),
      load: (records) => {
        const now = this.config.now();
        let loaded = 0;
        // The least read first: when they are more than L1 holds, the most read stay.
        for (const [key, variants] of records.reverse()) {
          const fresh = variants.filter((v) => now < v.expiresAt);
          if (fresh.length === 0 || this.l1.peek(key) !== undefined) continue;
          this.fleet.learnVary(key, (fresh[0] as Entry).varyNames);
          this.l1.putAll(key, fresh);
          this.known?.set(key, true);
          // What L1 kept (it bounds the variants per URL).
          const kept = this.l1.peek(key);
          const count = kept === undefined ? 0 : Array.isArray(kept) ? kept.length : 1;
          this.counters.warmStarted(count);
          loaded += count;
        }
        return loaded;
      },
      generation: () => this.generation,
      closed: () => this.closed,
    });
  }

  /** The global layer. */
  handle(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    const r = req as StateRequest;
    r[INSTANCE] = this;
    if (this.config.skip?.(req)) {
      r[SKIPPED] = true;
      next();
      return;
    }
    const method = req.method;
    if (method === 'GET' || method === 'HEAD') {
      const key = defaultKey(req);
      if (key === undefined) bypass(this, req, res, next, false);
      else read(this, req, res, next, undefined, key);
    } else {
      bypass(this, req, res, next, isUnsafe(method));
    }
  }

  /**
   * @internal Whether this (global) layer might answer `req` without the layers behind it: a
   * stored entry, a fetch under way it could join, or a conditional/directive request. `false`
   * means the request goes on to the next layer whatever happens here, so perfstack's early
   * refusals may decide it first (the rate limiter sits behind the cache). Mirrors `handle`
   * and `read`, and errs towards `true`.
   */
  mayAnswer(req: IncomingMessage): boolean {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    if (this.config.skip !== undefined) return true;
    const headers = req.headers;
    if (headers[REFRESH_HEADER] !== undefined) return true;
    if (this.config.requestCacheControl && (headers['cache-control'] !== undefined || headers.pragma !== undefined)) {
      return true;
    }
    const key = defaultKey(req);
    if (key === undefined) return false;
    if (this.l1.select(key, headers) !== undefined) return true;
    if (this.flights.has(this.fleet.flightId(key, req))) return true;
    return this.l2 !== undefined && this.known?.has(key) === true;
  }

  /**
   * @internal The fresh L1 entry this (global) layer would answer `req` with as a plain HIT —
   * `handle` → `read` → `tryServe` with no skip hook, no refresh, no request directive, an
   * entry the request may use and a trusted memory — or `undefined` when anything else might
   * happen (stale, revalidation, `only-if-cached`, an L2-only entry, a hit whose route is
   * unknown): perfstack's early hits then leave the request to the chain. The look is not
   * counted as an access until {@link CacheEngine.serveEarly} serves it.
   *
   * @param beforeFramework true when the framework has not seen `req` yet: its proxy trust
   *   (which decides whether `X-Forwarded-Host`/`-Proto` are in the key) is not known then
   */
  freshEntry(req: IncomingMessage, beforeFramework: boolean): EarlyHit | undefined {
    const method = req.method;
    if ((method !== 'GET' && method !== 'HEAD') || this.config.skip !== undefined) return undefined;
    const headers = req.headers;
    if (headers[REFRESH_HEADER] !== undefined) return undefined;
    if (this.config.requestCacheControl && (headers['cache-control'] !== undefined || headers.pragma !== undefined)) {
      return undefined;
    }
    if (beforeFramework && (headers['x-forwarded-host'] !== undefined || headers['x-forwarded-proto'] !== undefined)) {
      return undefined;
    }
    const key = defaultKey(req);
    if (key === undefined) return undefined;
    const entry = this.l1.select(key, headers, false);
    if (entry === undefined || entry.route === UNMATCHED_ROUTE || !(entry.shared || !isCredentialed(headers))) {
      return undefined;
    }
    if (this.fleet.distrustStalled && this.fleet.memoryUntrusted) return undefined;
    return this.config.now() < entry.expiresAt ? { key, entry } : undefined;
  }

  /**
   * @internal Serves what {@link CacheEngine.freshEntry} found, as the chain's HIT would:
   * with `raw`, in one `writeHead` without the response hooks (the caller's headers around the
   * stored ones, see `serveHitRaw`), else through the hooks like the global layer.
   *
   * @param start when the lookup began (`performance.now()`), for the cache's Server-Timing entry
   * @returns the status and Content-Length written (-1: none)
   */
  serveEarly(
    req: IncomingMessage,
    res: ServerResponse,
    hit: EarlyHit,
    start: number,
    raw: { readonly lead: readonly unknown[]; readonly tail: (cacheMs: number) => readonly unknown[] } | undefined,
  ): { readonly status: number; readonly length: number } {
    // The access the look did not count (recency, W-TinyLFU frequency).
    this.l1.get(hit.key);
    if (raw !== undefined) return serveHitRaw(this, req, res, hit.entry, hit.key, start, raw.lead, raw.tail);
    serveEntry(this, req, res, hit.entry, 'HIT', start, hit.key);
    const length = res.getHeader('content-length');
    return { status: res.statusCode, length: typeof length === 'string' && length !== '' ? Number(length) : -1 };
  }

  /** A `cache()` route with no global layer (or another instance than the global one). */
  handleRoute(req: IncomingMessage, res: ServerResponse, next: NextFunction, route: RouteConfig): void {
    const method = req.method;
    if (method === 'GET' || method === 'HEAD') {
      const key = route.key === undefined ? defaultKey(req) : isUnkeyable(req) ? undefined : boundKey(route.key(req));
      if (key === undefined) bypass(this, req, res, next, false);
      else read(this, req, res, next, route, key);
    } else {
      bypass(this, req, res, next, isUnsafe(method));
    }
  }

  /** A `cache()` route under this instance's global layer, which already looked the URL up. */
  enterRoute(req: IncomingMessage, res: ServerResponse, next: NextFunction, state: RequestState, route: RouteConfig) {
    state.route = route;
    if (route.key !== undefined) {
      const key = boundKey(route.key(req));
      if (key !== state.key) {
        settle(this, state);
        state.key = key;
        state.stale = undefined;
        // The global layer was validating the entry of the other key: stop, untouched.
        if (state.validating !== undefined) {
          state.validating = undefined;
          restoreClientConditionals(req, state);
        }
        if (!state.refresh) {
          const entry = this.l1.select(key, req.headers);
          if (entry !== undefined && (!state.credentialed || entry.shared) && tryServe(this, req, res, state, entry)) {
            return;
          }
        }
      }
    }
    next();
  }

  /**
   * Removes entries by key, tags or key prefix, here, in Redis and (through pub/sub) on
   * every other instance. Resolves with the number of keys removed.
   */
  invalidate(selector: InvalidateSelector): Promise<number> {
    return invalidateSelector(this, selector);
  }

  /** Logs an L2 failure once (until Redis is back) and tells the shared connection. */
  storeError(error: unknown): void {
    this.config.redis?.recordError(error);
    this.log.warnOnce(
      'CACHE_STORE_UNAVAILABLE',
      `Redis (L2) call failed: ${error instanceof Error ? error.message : String(error)}; serving from memory and the origin`,
    );
  }

  /** Numbers for the dashboard. */
  stats(): CacheStats {
    return this.counters.snapshot(this.l1.entries, this.l1.bytes);
  }

  /** True once this instance knows `key` was stored by some instance (it then looks it up in L2). */
  knows(key: string): boolean {
    return this.known?.has(key) === true;
  }

  /**
   * `degraded` while a configured Redis is down, and also while it does not answer on an
   * open socket (paused, stalled network): the invalidation feed has not been read within
   * its bound, or invalidations made here wait for Redis.
   */
  health(): HealthCheck {
    return cacheHealth(this.l1.entries, this.config.redis, this.fleet.feed?.health(), 'the origin', true);
  }

  /** Stops listening, releases waiters, closes the Redis connection if this instance made it. */
  async close(): Promise<void> {
    if (this.closed) return;
    // The reads counted since the last flush still rank the next start.
    await this.hot?.close();
    this.closed = true;
    await this.fleet.feed?.close();
    for (const d of this.disposables.splice(0)) d.dispose();
    for (const flight of this.flights.values()) flight.resolve();
    this.flights.clear();
    if (this.config.ownsRedis) await this.config.redis?.close();
  }
}
