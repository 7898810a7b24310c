/**
 * Stage 4 — the origin: the request goes on to the app, and its response is recorded on
 * the way out (core's `onBeforeHead` and `captureBody`), stored when RFC 9111 and the
 * route allow ({@link planStorage}), and replaced by the stale entry when it is a 5xx or
 * an inner layer (breaker, timeout) asks. Stored in L1 at once, then L2 in the background.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  addServerTiming,
  captureBody,
  markUncacheable,
  type NextFunction,
  onBeforeHead,
  routeLabel,
  setFallback,
  spanEvent,
} from '@perfstack/core';
import { settle } from './collapse.js';
import { compress } from './compression.js';
import type { CacheEngine } from './engine.js';
import { buildEntry, copyBody, deadAt, type Entry } from './entry.js';
import { isCompressibleType, mergeVary } from './http-semantics.js';
import type { RouteConfig } from './options.js';
import { serveStale } from './serve.js';
import { gateServerErrors } from './stale-if-error.js';
import type { RequestState } from './state.js';
import type { Outcome } from './stats.js';
import { type Plan, planStorage } from './storability.js';
import { onNotModified, startValidation } from './validate.js';

const NO_SINK = { write() {}, end() {} };

/** Lets the request through to the origin and records its response. */
export function fetch(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  next: NextFunction,
  state: RequestState,
): void {
  // Have core patch write/end now, with no sink: a response that turns out not to be
  // storable (most of them) then costs no body copying at all. Core feeds a sink added
  // while the head is written with the chunk that triggered the head, so the sink is
  // attached in record() only once the response is known to be storable.
  captureBody(res, NO_SINK)();
  state.requestTime = engine.config.now();
  if (state.validating !== undefined) startValidation(req, res, state);
  onBeforeHead(res, (r) => {
    if (state.served) return;
    if (state.validating !== undefined && r.statusCode === 304) {
      onNotModified(engine, req, r, state);
      return;
    }
    const plan = onHead(engine, req, r, state);
    if (plan !== undefined) record(engine, res, state, plan);
  });
  if (state.stale !== undefined) {
    setFallback(req, (r) => serveStale(engine, req, r, state));
    gateServerErrors(res, () => {
      if (!state.replaced && !state.served && !res.headersSent && res.statusCode >= 500) {
        state.replaced = serveStale(engine, req, res, state);
      }
      return state.replaced;
    });
  }
  if (state.leader !== undefined || state.lockHeld) {
    res.once('close', () => {
      if (!res.writableFinished) settle(engine, state);
    });
  }
  next();
}

/** Buffers the body of a storable response (up to maxEntryBytes) and stores it when it ends. */
export function record(engine: CacheEngine, res: ServerResponse, state: RequestState, plan: Plan): void {
  let chunks: Buffer[] = [];
  let length = 0;
  let recording = true;
  const detach = captureBody(res, {
    write: (chunk) => {
      if (!recording) return;
      length += chunk.length;
      if (length > engine.config.maxEntryBytes) {
        recording = false;
        chunks = [];
        detach();
        engine.markPass(state.key);
        settle(engine, state);
      } else {
        chunks.push(chunk);
      }
    },
    end: () => {
      if (!recording || state.served) return;
      recording = false;
      if (plan.contentLength !== undefined && plan.contentLength !== length) {
        settle(engine, state);
        return;
      }
      store(engine, state, plan, chunks, length);
    },
  });
}

/** Decides, as the head goes out, whether the response will be stored; sets `X-Cache`. */
function onHead(engine: CacheEngine, req: IncomingMessage, res: ServerResponse, state: RequestState): Plan | undefined {
  const route = routeLabel(req);
  const tagHeader = res.getHeader('cache-tag');
  if (tagHeader !== undefined) res.removeHeader('cache-tag');
  const routeConfig = state.route;
  if (routeConfig !== undefined && routeConfig.vary.length > 0) {
    res.setHeader('Vary', mergeVary(res.getHeader('vary'), routeConfig.vary));
  }
  const config = engine.config;
  const plan = lacksFreshness(res, routeConfig, config.targeted)
    ? undefined
    : planStorage(req, res.statusCode, res.getHeaders(), {
        key: state.key,
        route,
        routeConfig: state.route,
        tagHeader,
        config,
        requestTime: state.requestTime,
        responseTime: config.now(),
        tuned: engine.tuned,
      });
  if (routeConfig !== undefined && !engine.cachedRoutes.has(route)) engine.noteRoute(route, routeConfig);
  // Targeted fields (RFC 9213) are for this cache: removed before the response leaves.
  if (!config.forwardTargeted) for (const name of config.targeted) res.removeHeader(name);
  const outcome: Outcome = plan === undefined && state.credentialed ? 'bypass' : 'miss';
  res.setHeader('X-Cache', outcome === 'bypass' ? 'BYPASS' : 'MISS');
  addServerTiming(res, 'cache', performance.now() - state.start, outcome);
  // Hit ratios count cacheable lookups only: a miss whose response may not be stored (a route
  // without cache() answering without freshness, a 429, a 5xx, `private`) could never have
  // been a hit. For HTTP it stays a MISS (RFC 9211 `fwd=miss`, not `stored`); it is counted
  // with the bypasses, apart from the hit ratio.
  if (plan === undefined) markUncacheable(res);
  engine.counters.route(route).count(plan === undefined ? 'bypass' : outcome);
  spanEvent(req, 'cache', { 'perfstack.cache.outcome': outcome, 'perfstack.route': route });
  if (plan === undefined) {
    if (!state.passed && !state.credentialed && req.method === 'GET') engine.markPass(state.key);
    settle(engine, state);
  }
  return plan;
}

/**
 * True when nothing could make the response storable, read from a few names instead of a copy
 * of every header (`getHeaders()`): no route opt-in (so no route ttl), and none of the fields
 * freshness comes from — Cache-Control, a targeted field, Expires, Last-Modified (heuristic).
 * `planStorage` would answer "no freshness" (RFC 9111 §3) or refuse earlier.
 */
function lacksFreshness(
  res: ServerResponse,
  routeConfig: RouteConfig | undefined,
  targeted: readonly string[],
): boolean {
  if (routeConfig !== undefined) return false;
  if (res.hasHeader('cache-control') || res.hasHeader('expires') || res.hasHeader('last-modified')) return false;
  for (let i = 0; i < targeted.length; i++) if (res.hasHeader(targeted[i] as string)) return false;
  return true;
}

/** Stores a recorded response in L1 (at once), then L2 (in the background). */
function store(engine: CacheEngine, state: RequestState, plan: Plan, chunks: readonly Buffer[], length: number): void {
  const coding = engine.config.compression;
  const compressible =
    coding !== false &&
    length >= engine.config.compressThreshold &&
    plan.headers['content-encoding'] === undefined &&
    isCompressibleType(plan.headers['content-type']);
  if (!compressible) {
    commit(engine, state, plan, copyBody(chunks, length), length, undefined);
    return;
  }
  const identity = Buffer.concat(chunks, length);
  compress(identity, coding).then(
    (compressed) => {
      if (compressed === undefined) commit(engine, state, plan, copyBody([identity], length), length, undefined);
      else commit(engine, state, plan, copyBody([compressed], compressed.length), length, coding);
    },
    () => commit(engine, state, plan, copyBody([identity], length), length, undefined),
  );
}

/** Stores an entry made from `plan` and `body` in L1, then L2; returns it (undefined once closed). */
export function commit(
  engine: CacheEngine,
  state: RequestState,
  plan: Plan,
  body: Buffer,
  identityLength: number,
  encoding: 'br' | 'gzip' | undefined,
): Entry | undefined {
  if (engine.closed) {
    settle(engine, state);
    return undefined;
  }
  const headers = plan.headers;
  engine.counters.route(plan.route).ttlMs = plan.lifetime;
  if (encoding !== undefined) headers.vary = mergeVary(headers.vary, ['Accept-Encoding']);
  const now = engine.config.now();
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
    forbidsStale: plan.forbidsStale,
  });
  const key = plan.key;
  engine.l1.put(key, entry);
  engine.fleet.learnVary(key, entry.varyNames);
  engine.pass?.delete(key);
  const lockHeld = state.lockHeld;
  state.lockHeld = false;
  settle(engine, state);
  const l2 = engine.l2;
  if (l2 === undefined) return entry;
  engine.known?.set(key, true);
  // The request that stored it read the URL too (the warm-start ranking).
  engine.hot?.count(key);
  if (!l2.available) return entry;
  const ttl = Math.max(1, deadAt(entry) - now);
  const lockName = state.lockName;
  // Fleet: one variant per write (a hash field): instances filling other variants are not overwritten.
  l2.writeVariant(key, entry, ttl)
    .then(() => l2.publish({ from: engine.id, op: 'stored', key, vary: entry.varyNames }))
    .catch((error: unknown) => engine.storeError(error))
    .finally(() => {
      if (lockHeld) l2.unlock(lockName, engine.id).catch(() => {});
    });
  return entry;
}
