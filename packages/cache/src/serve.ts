/**
 * Stage 3 — serving a stored response: fresh (HIT), within stale-while-revalidate
 * (STALE + one background refresh per key), or as the stale-if-error fallback when the
 * origin fails. A hit writes precomputed headers and a Buffer on the live `res`.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { addServerTiming, markOriginStatus, setRoute, spanEvent, UNMATCHED_ROUTE } from '@perfstack/core';
import { settle } from './collapse.js';
import { decompress } from './compression.js';
import type { CacheEngine } from './engine.js';
import type { Entry } from './entry.js';
import { parseHttpDate } from './freshness.js';
import { acceptsEncoding, type CacheControl, ifNoneMatchMatches, notModifiedSince } from './http-semantics.js';
import { serveRange } from './ranges.js';
import { sendRefresh } from './revalidate.js';
import type { RequestState } from './state.js';
import { restoreClientConditionals } from './validate.js';

/** Headers kept when a stale entry replaces a response under way (set by outer layers for this request). */
export const KEPT_ON_REPLACE =
  /^(x-request-id|access-control-|ratelimit|x-ratelimit-|content-security-policy|cross-origin-|origin-agent-cluster|referrer-policy|strict-transport-security|x-content-type-options|x-dns-prefetch-control|x-download-options|x-frame-options|x-permitted-cross-domain-policies|x-xss-protection|server-timing|connection)/;

/** Serves `entry` if it is fresh or within stale-while-revalidate; keeps it for stale-if-error otherwise. */
export function tryServe(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  state: RequestState,
  entry: Entry,
): boolean {
  // Fleet: a stalled invalidation feed may hide an invalidation made elsewhere (serveMemoryWhenStalled: false).
  if (engine.fleet.distrustStalled && engine.fleet.memoryUntrusted) return false;
  if (state.directives !== undefined) return tryServeDirected(engine, req, res, state, entry, state.directives);
  const now = engine.config.now();
  if (now < entry.expiresAt) {
    serve(engine, req, res, state, entry, 'HIT');
    return true;
  }
  const late = now - entry.expiresAt;
  if (late < entry.staleWhileRevalidate) {
    serve(engine, req, res, state, entry, 'STALE');
    revalidateInBackground(engine, req, state.key);
    return true;
  }
  if (late < entry.staleIfError) state.stale = entry;
  // Stale with a validator: ask the app whether it is still good (§4.3) instead of refetching.
  if (entry.etag !== undefined || entry.lastModified !== undefined) state.validating = entry;
  else if (state.stale === undefined) engine.l1.remove(state.key, entry);
  return false;
}

/**
 * {@link tryServe} for a request with its own `max-age`, `min-fresh` or `max-stale`
 * (RFC 9111 §5.2.1, `requestCacheControl`): fresh enough for the client → HIT; stale but
 * within `max-stale` and not must-revalidate → STALE; else validated or refetched.
 */
function tryServeDirected(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  state: RequestState,
  entry: Entry,
  cc: CacheControl,
): boolean {
  const now = engine.config.now();
  const age = entry.initialAge + Math.max(0, now - entry.storedAt) / 1000;
  const remaining = (entry.expiresAt - now) / 1000;
  const tooOld = cc.maxAge !== undefined && !Number.isNaN(cc.maxAge) && age > cc.maxAge;
  const notFreshEnough = cc.minFresh !== undefined && !Number.isNaN(cc.minFresh) && remaining < cc.minFresh;
  if (!tooOld && !notFreshEnough) {
    if (remaining > 0) {
      serve(engine, req, res, state, entry, 'HIT');
      return true;
    }
    const stale = -remaining;
    if (cc.maxStale !== undefined && !Number.isNaN(cc.maxStale) && stale <= cc.maxStale && !entry.forbidsStale) {
      serve(engine, req, res, state, entry, 'STALE');
      return true;
    }
  }
  if (entry.etag !== undefined || entry.lastModified !== undefined) state.validating = entry;
  if (now - entry.expiresAt < entry.staleIfError) state.stale = entry;
  return false;
}

/** `Age` values 0–3599 as strings, made once each: most hits are younger than an hour. */
const AGES: string[] = [];

function ageText(age: number): string {
  if (age >= 3600) return String(age);
  let text = AGES[age];
  if (text === undefined) {
    text = String(age);
    AGES[age] = text;
  }
  return text;
}

/** Writes a stored response: precomputed headers and a Buffer, on the live `res`. */
export function serve(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  state: RequestState,
  entry: Entry,
  kind: 'HIT' | 'STALE',
): void {
  state.served = true;
  // A read of the URL for the warm-start ranking (batched, store/hot-keys.ts).
  engine.hot?.count(state.key);
  // A hit never reaches the router: name its route for timing, logs and the dashboard.
  if (entry.route !== UNMATCHED_ROUTE) setRoute(req, entry.route);
  // current_age (RFC 9111 §4.2.3): corrected initial age + resident time.
  const age = Math.floor(entry.initialAge + Math.max(0, engine.config.now() - entry.storedAt) / 1000);
  res.setHeader('X-Cache', kind);
  res.setHeader('Age', ageText(age));
  addServerTiming(res, 'cache', performance.now() - state.start, kind === 'HIT' ? 'hit' : 'stale');
  engine.counters.route(entry.route).count(kind === 'HIT' ? 'hit' : 'stale');
  spanEvent(req, 'cache', {
    'perfstack.cache.outcome': kind === 'HIT' ? 'hit' : 'stale',
    'perfstack.route': entry.route,
  });
  const headers = req.headers;
  const inm = headers['if-none-match'];
  const ims = headers['if-modified-since'];
  // Preconditions only apply to a 2xx answer (RFC 9110 §13.2.1): a stored 404 stays a 404.
  // If-Modified-Since is compared with Last-Modified, else the stored Date (RFC 9111 §4.3.2).
  if (
    entry.status >= 200 &&
    entry.status < 300 &&
    (inm !== undefined
      ? ifNoneMatchMatches(inm, entry.etag)
      : ims !== undefined && notModifiedSince(ims, entry.lastModified ?? parseHttpDate(entry.headers.date)))
  ) {
    res.writeHead(304, entry.notModifiedHeaders as OutgoingHttpHeaders);
    res.end();
    return;
  }
  if (headers.range !== undefined && serveRange(req, res, entry)) return;
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
export function serveStale(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  state: RequestState,
): boolean {
  const entry = state.stale;
  if (entry === undefined || state.served || res.headersSent) return false;
  if (engine.config.now() >= entry.expiresAt + entry.staleIfError) return false;
  // The origin failed: say so to the layers that judge it (the breaker), then answer stale.
  if (res.statusCode >= 500) markOriginStatus(res, res.statusCode);
  for (const name of res.getHeaderNames()) if (!KEPT_ON_REPLACE.test(name)) res.removeHeader(name);
  // The cache's own validators went to the app; the client's conditions decide what it gets.
  restoreClientConditionals(req, state);
  serve(engine, req, res, state, entry, 'STALE');
  settle(engine, state);
  return true;
}

/** Starts one background refresh per key (per process; with Redis, per fleet). */
function revalidateInBackground(engine: CacheEngine, req: IncomingMessage, key: string): void {
  if (engine.refreshing.has(key) || engine.closed) return;
  engine.refreshing.add(key);
  const done = () => engine.refreshing.delete(key);
  const send = () => {
    // The marker carries the key: a refresh that would land under another key is not stored (request.ts).
    if (!sendRefresh(req, `${engine.token} ${key}`, Math.max(engine.config.lockTimeout, 1000), done)) done();
  };
  const l2 = engine.l2;
  if (l2 === undefined || !l2.available) {
    send();
    return;
  }
  l2.lock(`${engine.fleet.flightId(key, req)}\nrefresh`, engine.id, engine.config.lockTimeout).then(
    (acquired) => (acquired ? send() : done()),
    () => send(),
  );
}
