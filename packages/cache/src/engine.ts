/**
 * The cache engine behind `responseCache()` and `cache()`: lookup, serving, recording a
 * miss, request collapsing, stale handling, invalidation and the L2/pub-sub plumbing.
 *
 * Request path, in the order a GET meets it:
 * 1. L1 lookup (one LRU read). Fresh → HIT; within stale-while-revalidate → STALE and a
 *    background refresh; within stale-if-error → kept as the fallback for step 4.
 * 2. L2 lookup, only for keys known to have produced a cacheable response (so a route
 *    that never did costs no Redis round trip), only while Redis is up, with a time limit.
 * 3. Request collapsing: one request per key fetches; the others wait for it (or get
 *    stale). With Redis, a short `SET NX` lock makes that one request per fleet.
 * 4. The origin. Its response is recorded on the way out (core's `onBeforeHead` and
 *    `captureBody`), stored when RFC 9111 and the route allow, and replaced by the
 *    stale entry when it is a 5xx, or when an inner layer (breaker, timeout) asks.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  addServerTiming,
  type CacheStats,
  captureBody,
  type Disposable,
  type HealthCheck,
  markOriginStatus,
  type NextFunction,
  OnceLogger,
  onBeforeHead,
  routeLabel,
  setFallback,
  setRoute,
  UNMATCHED_ROUTE,
} from '@perfstack/core';
import { LRUCache } from 'lru-cache';
import { compress, decompress } from './compression.js';
import { buildEntry, copyBody, deadAt, type Entry } from './entry.js';
import {
  acceptsEncoding,
  headerString,
  ifNoneMatchMatches,
  isCompressibleType,
  mergeVary,
  notModifiedSince,
  parseCacheControl,
} from './http-semantics.js';
import { boundKey, defaultKey, sameOriginKey } from './key.js';
import { type CacheConfig, PKG, type RouteConfig } from './options.js';
import { REFRESH_HEADER, sendRefresh } from './revalidate.js';
import { gateServerErrors } from './stale-if-error.js';
import { CacheCounters, type Outcome } from './stats.js';
import { type Plan, planStorage } from './storability.js';
import { InvalidationFeed, type InvalidationOp } from './store/invalidation-feed.js';
import { MemoryStore } from './store/memory.js';
import { type CacheEvent, RedisStore } from './store/redis.js';
import { requestVariantId } from './store/store.js';

/** Set on the request by the global layer: the instance, for `cache()` routes. */
export const INSTANCE = Symbol.for('perfstack.cache.instance');
/** Set on the request while the cache handles it. */
export const STATE = Symbol.for('perfstack.cache.state');
/** Set when the global layer skipped the request: `cache()` routes leave it alone too. */
export const SKIPPED = Symbol.for('perfstack.cache.skipped');

/** A fetch other requests for the same key and variant can wait for. */
interface Flight {
  /** The key, plus the variant when the key's responses are known to vary (fleet: store/store.ts). */
  readonly id: string;
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

/** What the cache knows about one request. */
export interface RequestState {
  readonly engine: CacheEngine;
  key: string;
  readonly start: number;
  route: RouteConfig | undefined;
  /** A stale entry usable if the origin fails (stale-if-error). */
  stale: Entry | undefined;
  /** Answered from the cache (hit, stale, fallback). */
  served: boolean;
  /** A forced miss (background refresh, or request no-cache when honoured). */
  readonly refresh: boolean;
  readonly credentialed: boolean;
  /** The flight this request leads, if any. */
  leader: Flight | undefined;
  lockHeld: boolean;
  /** The fleet lock this request holds or waits on: its flight id (per variant). */
  lockName: string;
  /** The origin's 5xx was swallowed and replaced by the stale entry. */
  replaced: boolean;
  /** The key was marked hit-for-pass when the request came. */
  passed: boolean;
}

type StateRequest = IncomingMessage & { [STATE]?: RequestState; [INSTANCE]?: CacheEngine; [SKIPPED]?: true };

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Headers kept when a stale entry replaces a response under way (set by outer layers for this request). */
const KEPT_ON_REPLACE =
  /^(x-request-id|access-control-|ratelimit|x-ratelimit-|content-security-policy|cross-origin-|origin-agent-cluster|referrer-policy|strict-transport-security|x-content-type-options|x-dns-prefetch-control|x-download-options|x-frame-options|x-permitted-cross-domain-policies|x-xss-protection|server-timing|connection)/;
const NO_SINK = { write() {}, end() {} };

/** One cache instance. */
export class CacheEngine {
  readonly config: CacheConfig;
  readonly l1: MemoryStore;
  readonly l2: RedisStore | undefined;
  readonly counters: CacheCounters;
  readonly #log: OnceLogger;
  readonly #flights = new Map<string, Flight>();
  /** Keys whose last response was not storable: not collapsed for a while (Varnish's hit-for-pass). */
  readonly #pass: LRUCache<string, true> | undefined;
  /** Keys known to have produced a storable response: only these are looked up in L2. */
  readonly #known: LRUCache<string, true> | undefined;
  readonly #refreshing = new Set<string>();
  /** Fleet: the request headers each key's responses vary on, so misses collapse per variant. */
  readonly #varyNames = new LRUCache<string, readonly string[]>({ max: 100_000 });
  /** Fleet: requests polling L2 for a key another instance fills; woken by its "stored" announcement. */
  readonly #pollers = new Map<string, Set<() => void>>();
  /** Fleet: the durable invalidation stream (with Redis). */
  readonly #feed: InvalidationFeed | undefined;
  /** Fleet: `serveMemoryWhenStalled: false` with Redis. */
  readonly #distrustStalled: boolean;
  readonly #id = randomUUID();
  readonly #token = randomBytes(18).toString('base64url');
  readonly #disposables: Disposable[] = [];
  #subscribed = false;
  #closed = false;

  constructor(config: CacheConfig) {
    this.config = config;
    this.counters = new CacheCounters(config.registry, () => ({ entries: this.l1.entries, bytes: this.l1.bytes }));
    this.l1 = new MemoryStore({
      maxEntries: config.maxEntries,
      maxBytes: config.maxBytes,
      onEvict: (count) => this.counters.evicted(count),
    });
    this.#log = new OnceLogger(config.logger);
    this.#pass = config.hitForPass > 0 ? new LRUCache({ max: 10_000, ttl: config.hitForPass }) : undefined;
    if (config.redis !== undefined) {
      this.l2 = new RedisStore(config.redis, config.redisTimeout);
      this.#known = new LRUCache({ max: Math.min(config.maxEntries * 4, 1_000_000) });
      // Invalidations missed while away come from the stream when Redis answers again (no L1 flush).
      this.#feed = new InvalidationFeed({
        redis: config.redis,
        store: this.l2,
        timeout: config.redisTimeout,
        onInvalidate: (op) => this.#invalidateLocal(op.keys, op.tags, op.prefix),
        onReset: () => this.l1.clear(),
        onError: (error) => this.#storeError(error),
      });
      this.#feed.start();
      this.#distrustStalled = !config.serveMemoryWhenStalled;
      this.#disposables.push(
        config.redis.onStatusChange((status) => {
          if (status === 'up') {
            this.#log.reset('CACHE_STORE_UNAVAILABLE');
            this.#subscribe();
          }
        }),
      );
      if (config.redis.isUp) this.#subscribe();
    } else {
      this.l2 = undefined;
      this.#known = undefined;
      this.#feed = undefined;
      this.#distrustStalled = false;
    }
  }

  // ---------------------------------------------------------------- entry points

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
    if (method === 'GET' || method === 'HEAD') this.read(req, res, next, undefined, defaultKey(req));
    else this.bypass(req, res, next, method !== undefined && UNSAFE.has(method));
  }

  /** A `cache()` route with no global layer (or another instance than the global one). */
  handleRoute(req: IncomingMessage, res: ServerResponse, next: NextFunction, route: RouteConfig): void {
    const method = req.method;
    if (method === 'GET' || method === 'HEAD') {
      this.read(req, res, next, route, route.key === undefined ? defaultKey(req) : boundKey(route.key(req)));
    } else {
      this.bypass(req, res, next, method !== undefined && UNSAFE.has(method));
    }
  }

  /** A `cache()` route under this instance's global layer, which already looked the URL up. */
  enterRoute(req: IncomingMessage, res: ServerResponse, next: NextFunction, state: RequestState, route: RouteConfig) {
    state.route = route;
    if (route.key !== undefined) {
      const key = boundKey(route.key(req));
      if (key !== state.key) {
        this.#settle(state);
        state.key = key;
        state.stale = undefined;
        if (!state.refresh) {
          const entry = this.l1.select(key, req.headers);
          if (entry !== undefined && (!state.credentialed || entry.shared) && this.#tryServe(req, res, state, entry)) {
            return;
          }
        }
      }
    }
    next();
  }

  // ---------------------------------------------------------------- reads

  read(
    req: IncomingMessage,
    res: ServerResponse,
    next: NextFunction,
    route: RouteConfig | undefined,
    key: string,
  ): void {
    const start = performance.now();
    const headers = req.headers;
    const credentialed = headers.authorization !== undefined || headers.cookie !== undefined;
    let refresh = false;
    const marker = headers[REFRESH_HEADER];
    if (marker !== undefined) {
      refresh = marker === this.#token;
      delete headers[REFRESH_HEADER];
    }
    if (!refresh && this.config.requestCacheControl) {
      const cc = parseCacheControl(headers['cache-control']);
      if (cc.noStore) {
        this.bypass(req, res, next, false);
        return;
      }
      refresh = cc.noCache || cc.maxAge === 0 || /no-cache/i.test(headerString(headers.pragma) ?? '');
    }
    const state: RequestState = {
      engine: this,
      key,
      start,
      route,
      stale: undefined,
      served: false,
      refresh,
      credentialed,
      leader: undefined,
      lockHeld: false,
      lockName: key,
      replaced: false,
      passed: false,
    };
    (req as StateRequest)[STATE] = state;
    if (!refresh) {
      const entry = this.l1.select(key, headers);
      if (entry !== undefined && (!credentialed || entry.shared) && this.#tryServe(req, res, state, entry)) return;
      if (!credentialed && req.method === 'GET') {
        if (this.l2?.available && this.#known?.has(key) === true) {
          this.#collapse(req, res, next, state, true, 0);
          return;
        }
        state.passed = this.#pass?.has(key) === true;
        if (!state.passed) {
          this.#collapse(req, res, next, state, false, 0);
          return;
        }
      }
    }
    this.#fetch(req, res, next, state);
  }

  /** Serves `entry` if it is fresh or within stale-while-revalidate; keeps it for stale-if-error otherwise. */
  #tryServe(req: IncomingMessage, res: ServerResponse, state: RequestState, entry: Entry): boolean {
    const now = this.config.now();
    // Fleet: a stalled invalidation feed may hide an invalidation made elsewhere (serveMemoryWhenStalled).
    if (this.#distrustStalled && (this.#feed as InvalidationFeed).stalled) return false;
    if (now < entry.expiresAt) {
      this.serve(req, res, state, entry, 'HIT');
      return true;
    }
    const late = now - entry.expiresAt;
    if (late < entry.staleWhileRevalidate) {
      this.serve(req, res, state, entry, 'STALE');
      this.#revalidate(req, state.key);
      return true;
    }
    if (late < entry.staleIfError) state.stale = entry;
    else this.l1.remove(state.key, entry);
    return false;
  }

  /** One request per key goes on (to L2 and/or the origin); the others wait for it. */
  #collapse(
    req: IncomingMessage,
    res: ServerResponse,
    next: NextFunction,
    state: RequestState,
    viaL2: boolean,
    attempt: number,
  ): void {
    const key = state.key;
    const id = this.#flightId(key, req);
    state.lockName = id;
    const flight = this.#flights.get(id);
    if (flight === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      state.leader = { id, promise, resolve };
      this.#flights.set(id, state.leader);
      if (viaL2) this.#readL2(req, res, next, state);
      else this.#fetch(req, res, next, state);
      return;
    }
    if (state.stale !== undefined) {
      this.serve(req, res, state, state.stale, 'STALE');
      return;
    }
    this.#wait(flight.promise).then(() => {
      if (res.writableEnded || res.destroyed) return;
      const entry = this.l1.select(key, req.headers);
      if (entry !== undefined && this.#tryServe(req, res, state, entry)) return;
      if (attempt < 2 && this.#flights.has(this.#flightId(key, req)) && this.#pass?.has(key) !== true) {
        this.#collapse(req, res, next, state, false, attempt + 1);
      } else {
        this.#fetch(req, res, next, state);
      }
    });
  }

  /**
   * Fleet: the flight (and fleet lock) of a request: its key, plus its variant once the
   * key's responses are known to vary, so N variants of one URL fill in parallel.
   */
  #flightId(key: string, req: IncomingMessage): string {
    const names = this.#varyNames.get(key);
    if (names === undefined) return key;
    return `${key}\n${requestVariantId(names, req.headers)}`;
  }

  /** Fleet: remembers the request headers a key's responses vary on. */
  #learnVary(key: string, names: readonly string[] | undefined): void {
    if (names !== undefined && names.length > 0) this.#varyNames.set(key, names);
  }

  #wait(promise: Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.config.lockTimeout);
      timer.unref();
      promise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** L1 missed a key known to be cacheable: ask L2, then take the fleet lock, then the origin. */
  #readL2(req: IncomingMessage, res: ServerResponse, next: NextFunction, state: RequestState): void {
    const l2 = this.l2 as RedisStore;
    const key = state.key;
    const promoted = (variants: readonly Entry[]): boolean => {
      const now = this.config.now();
      const live = variants.filter((v) => deadAt(v) > now);
      if (live.length === 0) return false;
      this.#learnVary(key, (live[0] as Entry).varyNames);
      this.l1.putAll(key, live);
      const entry = this.l1.select(key, req.headers);
      if (entry === undefined) return false;
      if (this.#tryServe(req, res, state, entry)) {
        this.#settle(state);
        return true;
      }
      return false;
    };
    l2.readVariants(key).then(
      (variants) => {
        if (res.writableEnded || res.destroyed) return this.#settle(state);
        if (promoted(variants)) return;
        if (!l2.available) return this.#fetch(req, res, next, state);
        l2.lock(state.lockName, this.#id, this.config.lockTimeout).then(
          (acquired) => {
            if (acquired) {
              state.lockHeld = true;
              this.#fetch(req, res, next, state);
            } else if (state.stale !== undefined) {
              this.serve(req, res, state, state.stale, 'STALE');
              this.#settle(state);
            } else {
              this.#pollL2(req, res, next, state, promoted, performance.now() + this.config.lockTimeout);
            }
          },
          (error: unknown) => {
            this.#storeError(error);
            this.#fetch(req, res, next, state);
          },
        );
      },
      (error: unknown) => {
        this.#storeError(error);
        this.#fetch(req, res, next, state);
      },
    );
  }

  /**
   * Another instance holds the lock: look again every 50 ms (or at once when the holder
   * announces the key stored) until the lock time runs out, or until the lock is gone with
   * nothing stored (its holder got an unstorable response).
   */
  #pollL2(
    req: IncomingMessage,
    res: ServerResponse,
    next: NextFunction,
    state: RequestState,
    promoted: (variants: readonly Entry[]) => boolean,
    deadline: number,
  ): void {
    const l2 = this.l2 as RedisStore;
    const key = state.key;
    const poll = () => {
      clearTimeout(timer);
      const waiting = this.#pollers.get(key);
      waiting?.delete(poll);
      if (waiting?.size === 0) this.#pollers.delete(key);
      if (res.writableEnded || res.destroyed) return this.#settle(state);
      if (!l2.available || this.#closed) return this.#fetch(req, res, next, state);
      // Only this request's variant (and a record that does not vary) is read and decoded.
      const names = this.#varyNames.get(key);
      const read =
        names === undefined
          ? l2.readVariants(key)
          : l2.readVariantFields(key, [requestVariantId(names, req.headers), '']);
      Promise.all([read, l2.locked(state.lockName)]).then(
        ([variants, locked]) => {
          if (promoted(variants)) return;
          if (!locked || performance.now() >= deadline) this.#fetch(req, res, next, state);
          else this.#pollL2(req, res, next, state, promoted, deadline);
        },
        (error: unknown) => {
          this.#storeError(error);
          this.#fetch(req, res, next, state);
        },
      );
    };
    const timer = setTimeout(poll, 50);
    timer.unref();
    let waiting = this.#pollers.get(key);
    if (waiting === undefined) {
      waiting = new Set();
      this.#pollers.set(key, waiting);
    }
    waiting.add(poll);
  }

  // ---------------------------------------------------------------- serving

  /** Writes a stored response: precomputed headers and a Buffer, on the live `res`. */
  serve(req: IncomingMessage, res: ServerResponse, state: RequestState, entry: Entry, kind: 'HIT' | 'STALE'): void {
    state.served = true;
    // A hit never reaches the router: name its route for timing, logs and the dashboard.
    if (entry.route !== UNMATCHED_ROUTE) setRoute(req, entry.route);
    const age = entry.initialAge + Math.max(0, Math.floor((this.config.now() - entry.storedAt) / 1000));
    res.setHeader('X-Cache', kind);
    res.setHeader('Age', String(age));
    addServerTiming(res, 'cache', performance.now() - state.start, kind === 'HIT' ? 'hit' : 'stale');
    this.counters.route(entry.route).count(kind === 'HIT' ? 'hit' : 'stale');
    const headers = req.headers;
    const inm = headers['if-none-match'];
    // Preconditions only apply to a 2xx answer (RFC 9110 §13.2.1): a stored 404 stays a 404.
    if (
      entry.status >= 200 &&
      entry.status < 300 &&
      (inm !== undefined
        ? ifNoneMatchMatches(inm, entry.etag)
        : notModifiedSince(headers['if-modified-since'], entry.lastModified))
    ) {
      res.writeHead(304, entry.notModifiedHeaders as OutgoingHttpHeaders);
      res.end();
      return;
    }
    let out = entry.headers;
    let body = entry.body;
    if (entry.encoding !== undefined) {
      if (acceptsEncoding(headers['accept-encoding'], entry.encoding)) out = entry.encodedHeaders ?? out;
      else body = decompress(body, entry.encoding);
    }
    res.writeHead(entry.status, out as OutgoingHttpHeaders);
    if (req.method === 'HEAD' || entry.status === 204) res.end();
    else res.end(body);
  }

  /** Replaces a response under way with the stale entry (stale-if-error). */
  #serveStale(req: IncomingMessage, res: ServerResponse, state: RequestState): boolean {
    const entry = state.stale;
    if (entry === undefined || state.served || res.headersSent) return false;
    if (this.config.now() >= entry.expiresAt + entry.staleIfError) return false;
    // The origin failed: say so to the layers that judge it (the breaker), then answer stale.
    if (res.statusCode >= 500) markOriginStatus(res, res.statusCode);
    for (const name of res.getHeaderNames()) if (!KEPT_ON_REPLACE.test(name)) res.removeHeader(name);
    this.serve(req, res, state, entry, 'STALE');
    this.#settle(state);
    return true;
  }

  // ---------------------------------------------------------------- the origin

  /** Lets the request through to the origin and records its response. */
  #fetch(req: IncomingMessage, res: ServerResponse, next: NextFunction, state: RequestState): void {
    // Have core patch write/end now, with no sink: a response that turns out not to be
    // storable (most of them) then costs no body copying at all. Core feeds a sink added
    // while the head is written with the chunk that triggered the head, so the sink is
    // attached in #record only once the response is known to be storable.
    captureBody(res, NO_SINK)();
    onBeforeHead(res, (r) => {
      if (state.served) return;
      const plan = this.#onHead(req, r, state);
      if (plan !== undefined) this.#record(res, state, plan);
    });
    if (state.stale !== undefined) {
      setFallback(req, (r) => this.#serveStale(req, r, state));
      gateServerErrors(res, () => {
        if (!state.replaced && !state.served && !res.headersSent && res.statusCode >= 500) {
          state.replaced = this.#serveStale(req, res, state);
        }
        return state.replaced;
      });
    }
    if (state.leader !== undefined || state.lockHeld) {
      res.once('close', () => {
        if (!res.writableFinished) this.#settle(state);
      });
    }
    next();
  }

  /** Buffers the body of a storable response (up to maxEntryBytes) and stores it when it ends. */
  #record(res: ServerResponse, state: RequestState, plan: Plan): void {
    let chunks: Buffer[] = [];
    let length = 0;
    let recording = true;
    const detach = captureBody(res, {
      write: (chunk) => {
        if (!recording) return;
        length += chunk.length;
        if (length > this.config.maxEntryBytes) {
          recording = false;
          chunks = [];
          detach();
          this.#pass?.set(state.key, true);
          this.#settle(state);
        } else {
          chunks.push(chunk);
        }
      },
      end: () => {
        if (!recording || state.served) return;
        recording = false;
        if (plan.contentLength !== undefined && plan.contentLength !== length) {
          this.#settle(state);
          return;
        }
        this.#store(state, plan, chunks, length);
      },
    });
  }

  /** Decides, as the head goes out, whether the response will be stored; sets `X-Cache`. */
  #onHead(req: IncomingMessage, res: ServerResponse, state: RequestState): Plan | undefined {
    const route = routeLabel(req);
    const tagHeader = res.getHeader('cache-tag');
    if (tagHeader !== undefined) res.removeHeader('cache-tag');
    const routeConfig = state.route;
    if (routeConfig !== undefined && routeConfig.vary.length > 0) {
      res.setHeader('Vary', mergeVary(res.getHeader('vary'), routeConfig.vary));
    }
    const plan = planStorage(req, res, {
      key: state.key,
      route,
      routeConfig: state.route,
      credentialed: state.credentialed,
      tagHeader,
      config: this.config,
    });
    const outcome: Outcome = plan === undefined && state.credentialed ? 'bypass' : 'miss';
    res.setHeader('X-Cache', outcome === 'bypass' ? 'BYPASS' : 'MISS');
    addServerTiming(res, 'cache', performance.now() - state.start, outcome);
    this.counters.route(route).count(outcome);
    if (plan === undefined) {
      if (!state.passed && !state.credentialed && req.method === 'GET') this.#pass?.set(state.key, true);
      this.#settle(state);
    }
    return plan;
  }

  /** Stores a recorded response in L1 (at once), then L2 (in the background). */
  #store(state: RequestState, plan: Plan, chunks: readonly Buffer[], length: number): void {
    const coding = this.config.compression;
    const compressible =
      coding !== false &&
      length >= this.config.compressThreshold &&
      plan.headers['content-encoding'] === undefined &&
      isCompressibleType(plan.headers['content-type']);
    if (!compressible) {
      this.#commit(state, plan, copyBody(chunks, length), length, undefined);
      return;
    }
    const identity = Buffer.concat(chunks, length);
    compress(identity, coding).then(
      (compressed) => {
        if (compressed === undefined) this.#commit(state, plan, copyBody([identity], length), length, undefined);
        else this.#commit(state, plan, copyBody([compressed], compressed.length), length, coding);
      },
      () => this.#commit(state, plan, copyBody([identity], length), length, undefined),
    );
  }

  #commit(
    state: RequestState,
    plan: Plan,
    body: Buffer,
    identityLength: number,
    encoding: 'br' | 'gzip' | undefined,
  ): void {
    if (this.#closed) {
      this.#settle(state);
      return;
    }
    const headers = plan.headers;
    this.counters.route(plan.route).ttlMs = plan.lifetime;
    if (encoding !== undefined) headers.vary = mergeVary(headers.vary, ['Accept-Encoding']);
    const now = this.config.now();
    const entry = buildEntry({
      status: plan.status,
      headers,
      body,
      identityLength,
      encoding,
      storedAt: now,
      expiresAt: now + plan.lifetime,
      staleWhileRevalidate: plan.swr,
      staleIfError: plan.sie,
      initialAge: plan.initialAge,
      shared: plan.shared,
      varyNames: plan.varyNames,
      varyValues: plan.varyValues,
      tags: plan.tags,
      route: plan.route,
    });
    const key = plan.key;
    this.l1.put(key, entry);
    this.#learnVary(key, entry.varyNames);
    this.#pass?.delete(key);
    const lockHeld = state.lockHeld;
    state.lockHeld = false;
    this.#settle(state);
    const l2 = this.l2;
    if (l2 === undefined) return;
    this.#known?.set(key, true);
    if (!l2.available) return;
    const ttl = Math.max(1, deadAt(entry) - now);
    const lockName = state.lockName;
    // One variant per write (a hash field in Redis): instances filling other variants are not overwritten.
    l2.writeVariant(key, entry, ttl)
      .then(() => l2.publish({ from: this.#id, op: 'stored', key, vary: entry.varyNames }))
      .catch((error: unknown) => this.#storeError(error))
      .finally(() => {
        if (lockHeld) l2.unlock(lockName, this.#id).catch(() => {});
      });
  }

  /** Ends this request's leadership: waiters look again. */
  #settle(state: RequestState): void {
    const leader = state.leader;
    if (leader !== undefined) {
      state.leader = undefined;
      if (this.#flights.get(leader.id) === leader) this.#flights.delete(leader.id);
      leader.resolve();
    }
    if (state.lockHeld) {
      state.lockHeld = false;
      this.l2?.unlock(state.lockName, this.#id).catch(() => {});
    }
  }

  /** Starts one background refresh per key (per process; with Redis, per fleet). */
  #revalidate(req: IncomingMessage, key: string): void {
    if (this.#refreshing.has(key) || this.#closed) return;
    this.#refreshing.add(key);
    const done = () => this.#refreshing.delete(key);
    const send = () => {
      if (!sendRefresh(req, this.#token, Math.max(this.config.lockTimeout, 1000), done)) done();
    };
    const l2 = this.l2;
    if (l2 === undefined || !l2.available) {
      send();
      return;
    }
    l2.lock(`${this.#flightId(key, req)}\nrefresh`, this.#id, this.config.lockTimeout).then(
      (acquired) => (acquired ? send() : done()),
      () => send(),
    );
  }

  // ---------------------------------------------------------------- other methods

  /** Unsafe methods and requests the cache does not look up: `X-Cache: BYPASS`; success invalidates (RFC 9111 §4.4). */
  bypass(req: IncomingMessage, res: ServerResponse, next: NextFunction, invalidates: boolean): void {
    const start = performance.now();
    onBeforeHead(res, (r) => {
      r.setHeader('X-Cache', 'BYPASS');
      addServerTiming(r, 'cache', performance.now() - start, 'bypass');
      this.counters.route(routeLabel(req)).count('bypass');
      const status = r.statusCode;
      if (invalidates && status >= 200 && status < 400) {
        const host = headerString(req.headers.host);
        const keys = new Set([defaultKey(req)]);
        for (const header of ['location', 'content-location']) {
          const key = sameOriginKey(r.getHeader(header), host);
          if (key !== undefined) keys.add(key);
        }
        // Redis is only told about URLs some instance stored (the others have nothing to drop).
        const list = [...keys];
        if (this.#known === undefined || list.some((key) => this.#known?.has(key) === true)) {
          this.#invalidate(list, [], undefined).catch(() => {});
        } else {
          this.#invalidateLocal(list, [], undefined);
        }
      }
    });
    next();
  }

  /**
   * Removes entries by key, tags or key prefix, here, in Redis and (through pub/sub) on
   * every other instance. Resolves with the number of keys removed.
   */
  invalidate(selector: {
    readonly key?: string;
    readonly tags?: readonly string[];
    readonly prefix?: string;
  }): Promise<number> {
    if (typeof selector !== 'object' || selector === null) {
      return Promise.reject(new TypeError(`${PKG}: invalidate() takes { key } | { tags } | { prefix }`));
    }
    const { key, tags, prefix } = selector;
    if (
      (key !== undefined && typeof key !== 'string') ||
      (prefix !== undefined && (typeof prefix !== 'string' || prefix === '')) ||
      (tags !== undefined && (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string'))) ||
      (key === undefined && tags === undefined && prefix === undefined)
    ) {
      return Promise.reject(
        new TypeError(`${PKG}: invalidate() takes { key: string } | { tags: string[] } | { prefix: non-empty string }`),
      );
    }
    return this.#invalidate(key === undefined ? [] : [boundKey(key)], tags ?? [], prefix);
  }

  async #invalidate(keys: readonly string[], tags: readonly string[], prefix: string | undefined): Promise<number> {
    const removed = this.#invalidateLocal(keys, tags, prefix);
    const feed = this.#feed;
    if (feed === undefined) return removed.size;
    // Fleet: L2 records deleted and every instance told through the durable stream; queued
    // while Redis does not answer and sent when it does (store/invalidation-feed.ts).
    const op: InvalidationOp = { keys: [...new Set([...keys, ...removed])], tags, prefix };
    const deleted = await feed.publish(op);
    return Math.max(removed.size, deleted);
  }

  #invalidateLocal(keys: readonly string[], tags: readonly string[], prefix: string | undefined): Set<string> {
    const removed = new Set<string>();
    const drop = (key: string) => {
      if (this.l1.delete(key) > 0) removed.add(key);
      this.#pass?.delete(key);
    };
    for (const key of keys) drop(key);
    for (const tag of tags) for (const key of this.l1.keysForTag(tag)) drop(key);
    if (prefix !== undefined) for (const key of this.l1.keysWithPrefix(prefix)) drop(key);
    return removed;
  }

  #subscribe(): void {
    const l2 = this.l2;
    if (l2 === undefined || this.#subscribed || this.#closed) return;
    this.#subscribed = true;
    l2.subscribe((event) => this.#onEvent(event)).then(
      (subscription) => {
        if (this.#closed) subscription.dispose();
        else this.#disposables.push(subscription);
      },
      (error: unknown) => {
        this.#subscribed = false;
        this.#storeError(error);
      },
    );
  }

  #onEvent(event: CacheEvent): void {
    if (event.from === this.#id || this.#closed) return;
    if (event.op === 'stored' && typeof event.key === 'string') {
      this.#known?.set(event.key, true);
      const vary = Array.isArray(event.vary) ? event.vary.filter((v): v is string => typeof v === 'string') : [];
      this.#learnVary(event.key, vary);
      const waiting = this.#pollers.get(event.key);
      if (waiting !== undefined) for (const poll of [...waiting]) poll();
    }
  }

  /** True once this instance knows `key` was stored by some instance (it then looks it up in L2). */
  knows(key: string): boolean {
    return this.#known?.has(key) === true;
  }

  #storeError(error: unknown): void {
    this.config.redis?.recordError(error);
    this.#log.warnOnce(
      'CACHE_STORE_UNAVAILABLE',
      `Redis (L2) call failed: ${error instanceof Error ? error.message : String(error)}; serving from memory and the origin`,
    );
  }

  /** Numbers for the dashboard. */
  stats(): CacheStats {
    return this.counters.snapshot(this.l1.entries, this.l1.bytes);
  }

  /**
   * `degraded` while a configured Redis is down, and also while it does not answer on an
   * open socket (paused, stalled network): the invalidation feed has not been read within
   * its bound, or invalidations made here wait for Redis.
   */
  health(): HealthCheck {
    const entries = this.l1.entries;
    const redis = this.config.redis;
    if (redis === undefined) return { status: 'ok', l2: 'none', entries };
    const feed = (this.#feed as InvalidationFeed).health();
    if (!redis.isUp) {
      return {
        status: 'degraded',
        detail: 'Redis (L2) is unreachable: serving from memory (L1) and the origin',
        l2: redis.status,
        entries,
        feed,
      };
    }
    if (feed.stalled || feed.queued > 0) {
      return {
        status: 'degraded',
        detail: `Redis (L2) does not answer: the invalidation feed was last read ${feed.lagMs}ms ago (bound ${feed.boundMs}ms), ${feed.queued} invalidation(s) queued`,
        l2: 'unresponsive',
        entries,
        feed,
      };
    }
    return { status: 'ok', l2: 'up', entries, feed };
  }

  /** Stops listening, releases waiters, closes the Redis connection if this instance made it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#feed?.close();
    for (const d of this.#disposables.splice(0)) d.dispose();
    for (const flight of this.#flights.values()) flight.resolve();
    this.#flights.clear();
    if (this.config.ownsRedis) await this.config.redis?.close();
  }
}

/** The cache state of a request, if a cache handles it. */
export function requestState(req: IncomingMessage): RequestState | undefined {
  return (req as StateRequest)[STATE];
}

/** The global instance that saw the request, and whether it skipped it. */
export function requestInstance(req: IncomingMessage): { engine: CacheEngine | undefined; skipped: boolean } {
  const r = req as StateRequest;
  return { engine: r[INSTANCE], skipped: r[SKIPPED] === true };
}
