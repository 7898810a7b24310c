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
import type { Entry, StoredHeaders } from './entry.js';
import { parseHttpDate } from './freshness.js';
import { acceptsEncoding, type CacheControl, ifNoneMatchMatches, notModifiedSince } from './http-semantics.js';
import { rangeAnswer } from './ranges.js';
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
  serveEntry(engine, req, res, entry, kind, state.start, state.key);
}

/** {@link serve} without a request state: `start` is when the lookup began (`performance.now()`), `key` the entry's key. */
export function serveEntry(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  entry: Entry,
  kind: 'HIT' | 'STALE',
  start: number,
  key: string,
): void {
  const age = countServed(engine, req, entry, kind, key);
  res.setHeader('X-Cache', kind);
  res.setHeader('Age', ageText(age));
  addServerTiming(res, 'cache', performance.now() - start, kind === 'HIT' ? 'hit' : 'stale');
  const answer = answerOf(req, entry);
  res.writeHead(answer.status, answer.headers as OutgoingHttpHeaders);
  if (answer.body === undefined) res.end();
  else res.end(answer.body);
}

/**
 * A fresh entry served as a HIT without the response hooks, in one `writeHead` (perfstack's
 * early hits, answered before the framework dispatches the request): the answer
 * {@link serve} gives — 304, 206/416, HEAD, the stored or encoded headers, `Age`,
 * `X-Cache: HIT`, the route and its hit count — with the caller's headers around the
 * stored ones, in the order the hooks would have written them.
 *
 * @param key the entry's key (its warm-start read count)
 * @param start when the lookup began (`performance.now()`), for the cache's Server-Timing entry
 * @param lead header pairs written first (`X-Powered-By`, `X-Request-Id`)
 * @param tail given the cache's time in ms just before the head goes out, the header pairs
 *   written last (`Server-Timing`)
 * @returns the status written and its Content-Length (-1 when none)
 */
export function serveHitRaw(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  entry: Entry,
  key: string,
  start: number,
  lead: readonly unknown[],
  tail: (cacheMs: number) => readonly unknown[],
): { readonly status: number; readonly length: number } {
  const age = countServed(engine, req, entry, 'HIT', key);
  const answer = answerOf(req, entry);
  const headers = answer.headers;
  const stored = headers === entry.headers || headers === entry.encodedHeaders;
  const out = lead.slice();
  // A lead header the entry stored too (Express's X-Powered-By on an app without helmet): the
  // chain's setHeader replaces the earlier value in its place, so the stored one goes there.
  let replaced: Set<string> | undefined;
  for (let i = 0; i < out.length; i += 2) {
    const name = (out[i] as string).toLowerCase();
    const own = (headers as OutgoingHttpHeaders)[name];
    if (own === undefined) continue;
    out[i] = name;
    out[i + 1] = own;
    replaced ??= new Set();
    replaced.add(name);
  }
  out.push('X-Cache', 'HIT', 'Age', ageText(age));
  const pairs = stored ? flatHeaders(headers) : flatten(headers);
  if (replaced === undefined) for (let i = 0; i < pairs.length; i++) out.push(pairs[i]);
  else {
    for (let i = 0; i < pairs.length; i += 2) {
      if (replaced.has((pairs[i] as string).toLowerCase())) continue;
      out.push(pairs[i], pairs[i + 1]);
    }
  }
  const last = tail(performance.now() - start);
  for (let i = 0; i < last.length; i++) out.push(last[i]);
  res.writeHead(answer.status, out as unknown as OutgoingHttpHeaders);
  if (answer.body === undefined) res.end();
  else res.end(answer.body);
  const length = headers['content-length'];
  return { status: answer.status, length: typeof length === 'string' && length !== '' ? Number(length) : -1 };
}

/** A hit's warm-start read, route (for timing, logs and the dashboard), count and span event; returns its `Age`. */
function countServed(
  engine: CacheEngine,
  req: IncomingMessage,
  entry: Entry,
  kind: 'HIT' | 'STALE',
  key: string,
): number {
  // A read of the URL for the warm-start ranking (batched, store/hot-keys.ts).
  engine.hot?.count(key);
  // A hit never reaches the router: name its route for timing, logs and the dashboard.
  if (entry.route !== UNMATCHED_ROUTE) setRoute(req, entry.route);
  engine.counters.route(entry.route).count(kind === 'HIT' ? 'hit' : 'stale');
  spanEvent(req, 'cache', {
    'perfstack.cache.outcome': kind === 'HIT' ? 'hit' : 'stale',
    'perfstack.route': entry.route,
  });
  // current_age (RFC 9111 §4.2.3): corrected initial age + resident time.
  return Math.floor(entry.initialAge + Math.max(0, engine.config.now() - entry.storedAt) / 1000);
}

/** What a stored entry answers `req` with: status, headers, and the body (undefined: none). */
interface HitAnswer {
  readonly status: number;
  readonly headers: StoredHeaders | OutgoingHttpHeaders;
  readonly body: Buffer | undefined;
}

function answerOf(req: IncomingMessage, entry: Entry): HitAnswer {
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
    return { status: 304, headers: entry.notModifiedHeaders, body: undefined };
  }
  if (headers.range !== undefined) {
    const range = rangeAnswer(req.method, headers.range, headers['if-range'], entry);
    if (range !== undefined) return range;
  }
  let out = entry.headers;
  let body = entry.body;
  if (entry.encoding !== undefined) {
    if (acceptsEncoding(headers['accept-encoding'], entry.encoding)) out = entry.encodedHeaders ?? out;
    else body = decompress(body, entry.encoding);
  }
  return { status: entry.status, headers: out, body: req.method === 'HEAD' || entry.status === 204 ? undefined : body };
}

/** Stored headers as flat name/value pairs, made once per headers object (entries are immutable). */
const FLAT = new WeakMap<object, readonly unknown[]>();

function flatHeaders(headers: StoredHeaders | OutgoingHttpHeaders): readonly unknown[] {
  let pairs = FLAT.get(headers);
  if (pairs === undefined) {
    pairs = flatten(headers);
    FLAT.set(headers, pairs);
  }
  return pairs;
}

function flatten(headers: StoredHeaders | OutgoingHttpHeaders): unknown[] {
  const pairs: unknown[] = [];
  for (const name of Object.keys(headers)) {
    const value = (headers as OutgoingHttpHeaders)[name];
    if (value !== undefined) pairs.push(name, value);
  }
  return pairs;
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
