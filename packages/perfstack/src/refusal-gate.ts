/**
 * Early answers: cache hits from fresh stored entries, and the stack's 429 `RATE_LIMITED`,
 * 503 `CIRCUIT_OPEN` and 413 `PAYLOAD_TOO_LARGE` (a declared body over every limit a route may
 * have: size-limit's `EARLY_TOO_LARGE`, answered by size-limit's own guard), decided and written before anything else runs for the request — before
 * Express dispatches it when the stack is the app's first middleware, else first thing in the
 * stack. Hits are described at {@link RefusalGate.answer}'s `#hit`; refusals below.
 *
 * A refused request needs none of what a served one does: no router, no cache lookup that
 * cannot hit, no hooks on the response, no per-request access-log state, no timing state. A
 * refusal through the full chain cost 0.72 of a served uncached request's CPU (698k vs 971k
 * instructions per request, `node benchmarks/instructions.js`); Node alone parsing a request
 * and writing such a 429 costs 162k. So the gate asks the layers, in the chain's order,
 * whether each one would let the request by untouched —
 *
 * - the cache (`mayAnswer`): no stored entry, no fetch to join, no directive to honour;
 * - the size limiter: URL and headers within their limits, no body or a body within its limit;
 * - the stack's own endpoints are not the target (they are exempt from both refusals);
 *
 * — and then whether the rate limiter (a dry run of its memory store) or the route's breaker
 * (open, no fallback) refuses it. Only then is the request decided for real and answered with
 * one `writeHead(status, rawHeaders)`: `X-Request-Id`, helmet's headers and CORS's (replayed
 * from one recording each when they do not depend on the request, else set by the layer
 * itself), the `RateLimit` headers, `Retry-After`, and the prebuilt problem+json body.
 *
 * What a refusal keeps, exactly as through the chain: its status, body and headers (minus the
 * `X-Cache` and `Server-Timing` of layers that did not run), its count in the layer's metric
 * (`perfstack_rate_limit_requests_total`, the breaker's short circuits) and in timing's
 * request metrics and windows (under its route pattern), and its place in the access log's
 * aggregation: a refusal whose line is due (the first of its client and reason in an
 * interval) takes the usual path, so that line is written by the access log as before; the
 * others are counted as left out. Any doubt (another store than memory, a custom key, `skip`,
 * `handler` or `fallback`, a custom layer order, trust settings it cannot read) sends the
 * request down the usual path.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { ResponseCache } from '@perfstack/cache';
import { EARLY_BREAKER, type EarlyBreaker } from '@perfstack/circuit-breaker';
import {
  addServerTiming,
  clearForProblem,
  expressRouterOf,
  getRequestId,
  getRoute,
  isValidRequestId,
  type Middleware,
  OnceLogger,
  onBeforeHead,
  type PerfstackLogger,
  resolveExpressRouteIn,
  serverTimingEntry,
  shapeWarmerOf,
  spanEvent,
  UNMATCHED_ROUTE,
} from '@perfstack/core';
import type { AccessLogger } from '@perfstack/logger';
import { EARLY_LIMITER, type EarlyLimiter, type RateLimiter } from '@perfstack/rate-limit';
import {
  EARLY_SIZE_CHECK,
  EARLY_TOO_LARGE,
  type EarlySizeCheck,
  type EarlyTooLarge,
  type SizeLimiter,
} from '@perfstack/size-limit';
import type { Timing } from '@perfstack/timing';
import { type EndpointMatcher, routingOfApp } from './endpoints.js';
import { recordedHeaders } from './static-headers.js';

/** The cache engine's early questions and its early hit (packages/cache/src/engine.ts). */
interface CacheEngineLike {
  mayAnswer(req: IncomingMessage): boolean;
  freshEntry(req: IncomingMessage, beforeFramework: boolean): EarlyHit | undefined;
  serveEarly(
    req: IncomingMessage,
    res: ServerResponse,
    hit: EarlyHit,
    start: number,
    raw: { readonly lead: unknown[]; readonly tail: (cacheMs: number) => readonly unknown[] } | undefined,
  ): { readonly status: number; readonly length: number };
}
interface EarlyHit {
  readonly key: string;
  readonly entry: { readonly route: string };
}
const CACHE_ENGINE = Symbol.for('perfstack.cache.engine');

/** What the gate is built from: the stack's layers (absent when off). */
export interface GateParts {
  readonly timing: Timing | undefined;
  readonly cache: ResponseCache | undefined;
  readonly sizeLimit: SizeLimiter | undefined;
  readonly logger: AccessLogger | undefined;
  readonly helmet: Middleware | undefined;
  readonly cors: Middleware | undefined;
  /** How CORS was configured: its headers are fixed (`'fixed'`), depend on the request and come synchronously (`'request'`), or may come later (`'async'`). */
  readonly corsKind: 'fixed' | 'request' | 'async';
  readonly rateLimit: RateLimiter | undefined;
  readonly circuitBreaker: Middleware | undefined;
  readonly endpoints: EndpointMatcher;
  readonly log: PerfstackLogger;
  /** helmet is on with its `X-Powered-By` removal: the stack removes Express's header for every answer, hits included. */
  readonly hidePoweredBy: boolean;
}

/** An Express app, as far as the gate reads it. */
type ExpressApp = ((req: IncomingMessage, res: ServerResponse) => void) & {
  get(name: string): unknown;
  parent?: unknown;
  request?: object;
};

type ExpressLayer = {
  handle?: unknown;
  name?: string;
  route?: unknown;
  slash?: boolean;
  regexp?: { fast_slash?: boolean };
};

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';
const RATE_LIMITED = 'RATE_LIMITED';
const CIRCUIT_OPEN = 'CIRCUIT_OPEN';
const PAYLOAD_TOO_LARGE = 'PAYLOAD_TOO_LARGE';
const GATED = Symbol.for('perfstack.refusalGate');

type GatedServer = Server & { [GATED]?: true };

/** The stack's early answers (hits, refusals); {@link RefusalGate.answer} is asked per request. */
export class RefusalGate {
  readonly #timing: Timing | undefined;
  readonly #cache: CacheEngineLike | undefined;
  /** False when the layers leave the gate only cache hits to answer (see {@link RefusalGate.build}). */
  readonly #refusals: boolean;
  /** The current early hit's start on timing's clock, for {@link RefusalGate.#hitTail}. */
  #hitStartedAt = 0;
  /** The headers after the stored ones on an early hit (Server-Timing), made once. */
  readonly #hitTail = (cacheMs: number): readonly unknown[] => this.#tail(cacheMs);
  readonly #sizeCheck: EarlySizeCheck | undefined;
  readonly #tooLarge: EarlyTooLarge | undefined;
  readonly #logger: AccessLogger | undefined;
  readonly #limiter: EarlyLimiter | undefined;
  readonly #breaker: EarlyBreaker | undefined;
  readonly #endpoints: EndpointMatcher;
  readonly #hidePoweredBy: boolean;
  readonly #log: OnceLogger;
  /** helmet's and CORS's headers when they do not depend on the request, as flat pairs. */
  readonly #fixed: readonly string[];
  /** helmet or CORS when their headers depend on the request: run on the response itself. */
  readonly #live: readonly Middleware[];
  #closed = false;

  /**
   * The gate, or `undefined` when the stack's layers leave it nothing it could decide. Cache
   * hits need only the cache (the layers behind it never run for a hit); refusals need every
   * layer in front of the limiter to be one the gate can ask or replay.
   */
  static build(parts: GateParts): RefusalGate | undefined {
    const engine =
      parts.cache === undefined ? undefined : (parts.cache as unknown as Record<symbol, unknown>)[CACHE_ENGINE];
    const cache = engine as CacheEngineLike | undefined;
    if (
      parts.cache !== undefined &&
      (typeof cache?.mayAnswer !== 'function' ||
        typeof cache.freshEntry !== 'function' ||
        typeof cache.serveEarly !== 'function')
    ) {
      return undefined;
    }
    const refusals = RefusalGate.#refusalParts(parts);
    if (refusals === undefined && cache === undefined) return undefined;
    return new RefusalGate(parts, cache, refusals);
  }

  /** What early refusals need, or `undefined` when the layers leave none the gate could decide. */
  static #refusalParts(parts: GateParts): RefusalParts | undefined {
    const limiter = parts.rateLimit === undefined ? undefined : earlyOf<EarlyLimiter>(parts.rateLimit, EARLY_LIMITER);
    const breaker =
      parts.circuitBreaker === undefined ? undefined : earlyOf<EarlyBreaker>(parts.circuitBreaker, EARLY_BREAKER);
    // Every layer must be one the gate can ask or replay; a limiter it cannot ask means no
    // early 503 either (the limiter would have counted the request first).
    if (parts.rateLimit !== undefined && limiter === undefined) return undefined;
    const sizeCheck =
      parts.sizeLimit === undefined ? undefined : earlyOf<EarlySizeCheck>(parts.sizeLimit, EARLY_SIZE_CHECK);
    if (parts.sizeLimit !== undefined && sizeCheck === undefined) return undefined;
    const tooLarge =
      parts.sizeLimit === undefined ? undefined : earlyOf<EarlyTooLarge>(parts.sizeLimit, EARLY_TOO_LARGE);
    if (limiter === undefined && breaker === undefined && tooLarge === undefined) return undefined;
    if (parts.logger !== undefined && typeof parts.logger.quietRefusal !== 'function') return undefined;
    const fixed: string[] = [];
    const live: Middleware[] = [];
    if (parts.helmet !== undefined) {
      // helmet calls next() at once, also with per-request CSP directives (nonces).
      const helmet = recordedHeaders(parts.helmet);
      if (helmet === undefined) live.push(parts.helmet);
      else fixed.push(...helmet);
    }
    if (parts.cors !== undefined) {
      if (parts.corsKind === 'async') return undefined;
      const cors = parts.corsKind === 'fixed' ? recordedHeaders(parts.cors, true) : undefined;
      if (cors === undefined) live.push(parts.cors);
      else fixed.push(...cors);
    }
    return { sizeCheck, tooLarge, limiter, breaker, fixed, live };
  }

  private constructor(parts: GateParts, cache: CacheEngineLike | undefined, refusals: RefusalParts | undefined) {
    this.#timing = parts.timing;
    this.#cache = cache;
    this.#refusals = refusals !== undefined;
    this.#sizeCheck = refusals?.sizeCheck;
    this.#tooLarge = refusals?.tooLarge;
    this.#logger = parts.logger;
    this.#limiter = refusals?.limiter;
    this.#breaker = refusals?.breaker;
    this.#endpoints = parts.endpoints;
    this.#hidePoweredBy = parts.hidePoweredBy;
    this.#log = new OnceLogger(parts.log);
    this.#fixed = refusals?.fixed ?? [];
    this.#live = refusals?.live ?? [];
  }

  /** Stops answering early (the stack is closing: requests take the usual path). */
  close(): void {
    this.#closed = true;
  }

  /**
   * Answers `req` when the cache would answer it with a fresh entry (see early-hits below),
   * or when the stack would refuse it with 429 or an open breaker's 503, and says so;
   * `false` sends it on, untouched (or with the limiter's decision left for the chain).
   *
   * @param app the top-level Express app when Express has not dispatched the request yet;
   *   `undefined` inside the stack (where `req.app` is already set, or no Express at all)
   */
  answer(req: IncomingMessage, res: ServerResponse, app: ExpressApp | undefined): boolean {
    if (this.#closed) return false;
    try {
      if (this.#cache !== undefined && this.#hit(req, res, app)) return true;
      return this.#refusals && this.#refuse(req, res, app);
    } catch (error) {
      // Never a request lost to the gate: log once, and stop asking.
      this.#closed = true;
      this.#log.errorOnce('PERFSTACK_GATE_FAILED', 'the early answer check threw; requests take the usual path', {
        error: String(error),
      });
      return false;
    }
  }

  /**
   * Early hits: a request the cache layer would answer from a fresh L1 entry is answered
   * here, by the cache engine's own serving code (conditionals → 304, `Range` → 206/416,
   * HEAD, `Age`, `X-Cache: HIT`, the stored headers, its hit count), and recorded by timing
   * under the entry's route as a hit — what the chain does for a hit, since no layer behind
   * the cache runs for one (no rate-limit decision, breaker or access-log line: the
   * documented order). Before Express, the head is written in one `writeHead` with what the
   * chain adds around the stored headers — Express's `X-Powered-By` when the app sends it and
   * helmet does not hide it,
   * `X-Request-Id`, and the `Server-Timing` (`cache;dur;desc=hit`, `total;dur`) and
   * response-time header timing adds — in the chain's order. Inside the stack (Koa,
   * node:http, Express with middleware before the stack) the head goes through the response
   * hooks like the chain's. Anything else the cache might do (stale, revalidation,
   * directives, L2, skip hooks, forwarded hosts before Express knows its proxy trust) goes
   * down the chain.
   */
  #hit(req: IncomingMessage, res: ServerResponse, app: ExpressApp | undefined): boolean {
    const cache = this.#cache as CacheEngineLike;
    const timing = this.#timing;
    const startedAt = timing === undefined ? 0 : timing.now();
    const start = performance.now();
    const hit = cache.freshEntry(req, app !== undefined);
    if (hit === undefined) return false;
    let result: { readonly status: number; readonly length: number };
    if (app !== undefined) {
      // The stack's endpoints are never cached by the stack, but an app's route at their path could be.
      if (this.#endpoints.matchFor(req, routingOfApp(app)) !== undefined) return false;
      const incoming = req.headers['x-request-id'];
      const id = isValidRequestId(incoming) ? incoming : randomUUID();
      // What Express's own dispatch sets first (`app.handle`/expressInit) and the stack leaves
      // (it removes it when helmet hides it), then the stack's id.
      const lead: unknown[] =
        !this.#hidePoweredBy && app.get('x-powered-by')
          ? ['X-Powered-By', 'Express', 'x-request-id', id]
          : ['x-request-id', id];
      this.#hitStartedAt = startedAt;
      result = cache.serveEarly(req, res, hit, start, { lead, tail: this.#hitTail });
    } else {
      // Another Server-Timing already on the response, or hooks another layer set: the chain merges them its way.
      if (res.hasHeader('server-timing')) return false;
      if (timing !== undefined) onBeforeHead(res, this.#headListener(startedAt));
      result = cache.serveEarly(req, res, hit, start, undefined);
    }
    timing?.recordAnswered(req, hit.entry.route, result.status, startedAt, result.length, true);
    return true;
  }

  /** Timing's headers after the stored ones on an early hit before Express, as its hooks would add them. */
  #tail(cacheMs: number): readonly unknown[] {
    let serverTiming = serverTimingEntry('cache', cacheMs, 'hit');
    const timing = this.#timing;
    if (timing === undefined) return ['Server-Timing', serverTiming];
    const fields = timing.headFields();
    const ms = timing.now() - this.#hitStartedAt;
    if (fields.serverTiming) serverTiming += `, ${serverTimingEntry('total', ms)}`;
    if (fields.responseTimeHeader === undefined) return ['Server-Timing', serverTiming];
    return [fields.responseTimeHeader, `${ms.toFixed(3)}ms`, 'Server-Timing', serverTiming];
  }

  /** Timing's head listener for an early hit inside the stack (what its own `onHead` adds). */
  #headListener(startedAt: number): (res: ServerResponse) => void {
    const timing = this.#timing as Timing;
    return (res) => {
      const fields = timing.headFields();
      const ms = timing.now() - startedAt;
      if (fields.serverTiming) addServerTiming(res, 'total', ms);
      if (fields.responseTimeHeader !== undefined) res.setHeader(fields.responseTimeHeader, `${ms.toFixed(3)}ms`);
    };
  }

  #refuse(req: IncomingMessage, res: ServerResponse, app: ExpressApp | undefined): boolean {
    // The cheap questions first: most requests are neither over a limit nor on an open
    // breaker's route, and are sent on after a dry run of the limiter's memory store.
    const limiter = this.#limiter;
    const refusedKey = limiter?.wouldRefuse(req, app);
    if (refusedKey !== undefined) {
      if (!this.#passesLayers(req, app)) return false;
      const limiterOf = limiter as EarlyLimiter;
      if (!this.#quiet(req, RATE_LIMITED, app)) {
        // Its access-log line is due: decided here, finished by the usual path.
        limiterOf.decide(req, refusedKey, false);
        return false;
      }
      const verdict = limiterOf.decide(req, refusedKey, 'refused');
      if (verdict === undefined || verdict.refusal === undefined) return false;
      this.#answer(req, res, app, 429, verdict.headers, verdict.retryAfter, verdict.refusal);
      return true;
    }
    const breaker = this.#breaker;
    if (breaker === undefined || !breaker.anyOpen()) return this.#refuseTooLarge(req, res, app);
    const route = this.#route(req, app);
    const open = breaker.openRoute(req, route);
    if (open === undefined) return this.#refuseTooLarge(req, res, app, route);
    if (!this.#passesLayers(req, app)) return false;
    let key: string | undefined;
    if (limiter !== undefined) {
      key = limiter.keyOf(req, app);
      if (key === undefined) return false;
    }
    if (!this.#quiet(req, CIRCUIT_OPEN, app)) return false;
    let headers: string[] = [];
    if (limiter !== undefined) {
      const verdict = limiter.decide(req, key as string, 'allowed');
      if (verdict === undefined) return false;
      headers = verdict.headers;
    }
    const { retryAfter, body } = breaker.reject(open);
    this.#answer(req, res, app, 503, headers, retryAfter, body, route);
    return true;
  }

  /**
   * The early 413: a declared `Content-Length` over every body limit any route may have (see
   * size-limit's `EARLY_TOO_LARGE`), on a request the limiter allows and no open breaker
   * refuses — the chain would answer it 413 once a reader starts, or never read it. The
   * layers' headers are set as for the other refusals, then size-limit's own guard answers
   * (problem+json, count, metric, drained or closed connection).
   */
  #refuseTooLarge(
    req: IncomingMessage,
    res: ServerResponse,
    app: ExpressApp | undefined,
    route: string | undefined = undefined,
  ): boolean {
    const tooLarge = this.#tooLarge;
    if (tooLarge === undefined || !tooLarge.wouldRefuse(req) || !this.#passesLayers(req, app, false)) return false;
    const limiter = this.#limiter;
    let key: string | undefined;
    if (limiter !== undefined) {
      key = limiter.keyOf(req, app);
      if (key === undefined) return false;
    }
    if (!this.#quiet(req, PAYLOAD_TOO_LARGE, app)) return false;
    let layerHeaders: readonly string[] = [];
    if (limiter !== undefined) {
      const verdict = limiter.decide(req, key as string, 'allowed');
      if (verdict === undefined) return false;
      layerHeaders = verdict.headers;
    }
    const timing = this.#timing;
    const startedAt = timing === undefined ? 0 : timing.now();
    const headers = this.#lead(req, res);
    for (let i = 0; i < layerHeaders.length; i++) headers.push(layerHeaders[i] as string);
    for (let i = 0; i + 1 < headers.length; i += 2) res.setHeader(headers[i] as string, headers[i + 1] as string);
    tooLarge.refuse(req, res);
    const length = Number(res.getHeader('content-length') ?? 0);
    timing?.recordAnswered(req, route ?? this.#route(req, app) ?? UNMATCHED_ROUTE, 413, startedAt, length);
    return true;
  }

  /**
   * The headers every early refusal starts with, as flat pairs: the request id (made here
   * before Express; inside the stack it is on the response already, which keeps only what a
   * problem keeps), helmet's and CORS's (the live ones set on `res` itself).
   */
  #lead(req: IncomingMessage, res: ServerResponse): string[] {
    let headers: string[];
    if (getRequestId(req) === undefined) {
      const incoming = req.headers['x-request-id'];
      headers = ['x-request-id', isValidRequestId(incoming) ? incoming : randomUUID(), ...this.#fixed];
    } else {
      // What the app or middleware before the stack set: kept only as a problem keeps it.
      clearForProblem(res);
      headers = [...this.#fixed];
    }
    for (const layer of this.#live) layer(req, res, ignore);
    return headers;
  }

  /**
   * True when the layers in front of the limiter would let `req` by untouched: not one of the
   * stack's endpoints (checked here only before Express; the stack checks it first), nothing
   * the cache could answer, nothing the size limits refuse, not a CORS preflight.
   */
  #passesLayers(req: IncomingMessage, app: ExpressApp | undefined, sizes = true): boolean {
    if (req.method === 'OPTIONS') return false;
    // Before Express, the cache cannot key a forwarded host (its proxy trust is Express's): maybe a hit.
    if (
      app !== undefined &&
      (req.headers['x-forwarded-host'] !== undefined || req.headers['x-forwarded-proto'] !== undefined)
    ) {
      return false;
    }
    if (app !== undefined && this.#endpoints.matchFor(req, routingOfApp(app)) !== undefined) return false;
    if (this.#cache?.mayAnswer(req)) return false;
    return !sizes || this.#sizeCheck === undefined || this.#sizeCheck(req);
  }

  /** True when the access log would write no line for this refusal (counted as left out). */
  #quiet(req: IncomingMessage, code: string, app: ExpressApp | undefined): boolean {
    const logger = this.#logger;
    return logger === undefined || logger.quietRefusal(req, code, clientOf(req, app));
  }

  #route(req: IncomingMessage, app: ExpressApp | undefined): string | undefined {
    return app === undefined ? getRoute(req) : resolveExpressRouteIn(app, req.method ?? 'GET', req.url);
  }

  #answer(
    req: IncomingMessage,
    res: ServerResponse,
    app: ExpressApp | undefined,
    status: number,
    layerHeaders: readonly string[],
    retryAfter: number,
    body: string,
    route: string | undefined = this.#route(req, app),
  ): void {
    const timing = this.#timing;
    const startedAt = timing === undefined ? 0 : timing.now();
    const headers = this.#lead(req, res);
    for (let i = 0; i < layerHeaders.length; i++) headers.push(layerHeaders[i] as string);
    const length = Buffer.byteLength(body);
    headers.push('Content-Type', PROBLEM_TYPE, 'Cache-Control', 'no-store', 'Content-Length', String(length));
    headers.push('Retry-After', String(retryAfter));
    res.writeHead(status, headers);
    // OpenTelemetry: the same event the usual path's problem answer records (core's trace.ts).
    spanEvent(req, 'problem', { 'perfstack.problem.code': status === 429 ? RATE_LIMITED : CIRCUIT_OPEN });
    if (req.method === 'HEAD') res.end();
    else res.end(body);
    timing?.recordAnswered(req, route ?? UNMATCHED_ROUTE, status, startedAt, length);
  }
}

/** What early refusals are built from. */
interface RefusalParts {
  readonly sizeCheck: EarlySizeCheck | undefined;
  readonly tooLarge: EarlyTooLarge | undefined;
  readonly limiter: EarlyLimiter | undefined;
  readonly breaker: EarlyBreaker | undefined;
  /** helmet's and CORS's headers when they do not depend on the request, as flat pairs. */
  readonly fixed: readonly string[];
  /** helmet or CORS when their headers depend on the request: run on the response itself. */
  readonly live: readonly Middleware[];
}

/** A layer's early interface under `symbol` (rate-limit's, size-limit's, the breaker's), or `undefined` when it has none. */
export function earlyOf<T>(layer: object, symbol: symbol): T | undefined {
  return (layer as Record<symbol, T | undefined>)[symbol];
}

/** The `next` of a layer run only for its headers. */
function ignore(): void {}

/**
 * The client the access log aggregates a refusal under: what Express's `req.ip` would be
 * (the socket's address unless `trust proxy` is set, then Express's own getter), the socket's
 * address elsewhere.
 */
function clientOf(req: IncomingMessage, app: ExpressApp | undefined): string {
  const expressIp = (req as IncomingMessage & { ip?: unknown }).ip;
  if (typeof expressIp === 'string' && expressIp !== '') return expressIp;
  if (app?.get('trust proxy')) {
    const ip = ipGetter(app)?.call(Object.assign(Object.create(req) as object, { app }));
    if (typeof ip === 'string' && ip !== '') return ip;
  }
  return req.socket?.remoteAddress ?? 'unknown';
}

const ipGetters = new WeakMap<object, (() => unknown) | null>();

/** Express's `req.ip` getter of `app`, found once per app. */
function ipGetter(app: ExpressApp): (() => unknown) | undefined {
  const proto = app.request;
  if (proto === undefined) return undefined;
  let getter = ipGetters.get(proto);
  if (getter === undefined) {
    getter = null;
    for (let o: object | null = proto; o !== null; o = Object.getPrototypeOf(o)) {
      const descriptor = Object.getOwnPropertyDescriptor(o, 'ip');
      if (descriptor !== undefined) {
        getter = typeof descriptor.get === 'function' ? (descriptor.get as () => unknown) : null;
        break;
      }
    }
    ipGetters.set(proto, getter);
  }
  return getter ?? undefined;
}

/**
 * Moves the gate in front of Express for `server`, when `stack` is the first middleware of
 * the top-level app that is the server's only request listener (besides core's shape
 * warmer): every request Express would dispatch reaches the stack first, unchanged, so the
 * gate may decide it before Express does. Done once per server, from the first request.
 *
 * @returns true when installed
 */
export function gateServer(gate: RefusalGate, stack: Middleware, req: IncomingMessage): boolean {
  if (!(req instanceof IncomingMessage)) return false;
  const app = (req as IncomingMessage & { app?: unknown }).app;
  const server = (req.socket as { server?: GatedServer } | null | undefined)?.server;
  if (typeof app !== 'function' || server === undefined || server === null || server[GATED] === true) return false;
  const express = app as ExpressApp;
  if (express.parent !== undefined || typeof express.get !== 'function' || !firstLayerIs(express, stack)) return false;
  const warmer = shapeWarmerOf(server)?.listener;
  const listeners = server.listeners('request');
  if (!listeners.includes(app) || !listeners.every((l) => l === app || l === warmer)) return false;
  const count = listeners.length;
  const emit = server.emit;
  // An APM or OpenTelemetry's HTTP instrumentation wraps `emit` to see every request (and
  // open its span): in front of it, early refusals would be invisible to it. Stay inside the
  // stack then.
  if (emit !== EventEmitter.prototype.emit) return false;
  server[GATED] = true;
  // Node's HTTP server dispatches each request with `server.emit('request', req, res)`.
  server.emit = function perfstackEarlyRefusals(this: Server, type: string | symbol, a?: unknown, b?: unknown) {
    if (
      type === 'request' &&
      this.listenerCount('request') === count &&
      gate.answer(a as IncomingMessage, b as ServerResponse, express)
    ) {
      return true;
    }
    // biome-ignore lint/complexity/noArguments: forwarding every argument of any event unchanged.
    return emit.apply(this, arguments as unknown as Parameters<Server['emit']>);
  } as Server['emit'];
  return true;
}

/** True when the gate runs in front of `server`'s app (the stack then does not ask again). */
export function isGated(server: unknown): boolean {
  return typeof server === 'object' && server !== null && (server as GatedServer)[GATED] === true;
}

/** True when `stack` is the first middleware of `app`'s router, mounted at `/`. */
function firstLayerIs(app: ExpressApp, stack: Middleware): boolean {
  const router = expressRouterOf(app) as { stack: readonly ExpressLayer[] } | undefined;
  if (router === undefined) return false;
  for (const layer of router.stack) {
    // Express 4's own first two layers (query parsing, request init) change nothing a refusal shows.
    if (layer.name === 'query' || layer.name === 'expressInit') continue;
    return (
      layer.handle === stack && layer.route === undefined && (layer.slash === true || layer.regexp?.fast_slash === true)
    );
  }
  return false;
}
