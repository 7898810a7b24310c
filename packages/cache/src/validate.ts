/**
 * Stage 3b — validation (RFC 9111 §4.3): a stale entry with a validator is not thrown
 * away; the request goes on to the app with `If-None-Match`/`If-Modified-Since` for the
 * stored validators (Express and Koa answer 304 by themselves when they match). A 304
 * freshens the entry — the stored headers are updated with the 304's (§3.2, §4.3.4), the
 * freshness recomputed — and the client gets the stored body (or its own 304 when its
 * conditionals match the entry). Any other answer goes through the ordinary record path
 * (a 200 replaces the entry; a 5xx may be replaced by stale-if-error).
 *
 * The 304 is turned into the answer in place, inside `writeHead`, so it works whether
 * the app sets `statusCode` and ends (Express, Koa) or calls `writeHead(304)` itself.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { addServerTiming, routeLabel, spanEvent } from '@perfstack/core';
import { decompress } from './compression.js';
import type { CacheEngine } from './engine.js';
import { type Entry, type StoredHeaders, storableHeaders } from './entry.js';
import { formatHttpDate, parseHttpDate } from './freshness.js';
import { acceptsEncoding, ifNoneMatchMatches, notModifiedSince } from './http-semantics.js';
import { rangeAnswer } from './ranges.js';
import { commit } from './record.js';
import { KEPT_ON_REPLACE } from './serve.js';
import type { RequestState } from './state.js';
import { planStorage } from './storability.js';

/** Headers of a 304 that never update the stored response (§3.2: its framing is not the 304's). */
const NOT_UPDATED = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'content-range']);

/** Request headers set aside while the cache validates (and put back if it stops). */
const CLIENT_CONDITIONALS = [
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
  'range',
];

/** Gives the request back the client's own conditional headers (the cache is no longer validating). */
export function restoreClientConditionals(req: IncomingMessage, state: RequestState): void {
  const saved = state.clientConditionals;
  if (saved === undefined) return;
  state.clientConditionals = undefined;
  for (const name of CLIENT_CONDITIONALS) {
    const value = saved[name];
    if (value === undefined) delete req.headers[name];
    else req.headers[name] = value as string;
  }
}

/** Turns the request into a conditional one for the stored validators; wraps write/end for the 304 case. */
export function startValidation(req: IncomingMessage, res: ServerResponse, state: RequestState) {
  const entry = state.validating as Entry;
  const headers = req.headers;
  // The client's own conditions are answered by the cache from the (re)validated entry.
  const saved: Record<string, string | string[] | undefined> = {};
  for (const name of CLIENT_CONDITIONALS) {
    saved[name] = headers[name];
    delete headers[name];
  }
  state.clientConditionals = saved;
  if (entry.etag !== undefined) headers['if-none-match'] = entry.etag;
  const lastModified = entry.headers['last-modified'];
  // Only a Last-Modified that is an HTTP-date is a validator (entry.lastModified, RFC 9110 §8.8.2).
  if (entry.lastModified !== undefined && typeof lastModified === 'string') headers['if-modified-since'] = lastModified;
  const write = res.write;
  const end = res.end;
  // biome-ignore lint/suspicious/noExplicitAny: write's overloads cannot be expressed on a replacement.
  res.write = function validationWrite(this: ServerResponse, ...args: any[]): boolean {
    if (state.answerBody !== undefined) {
      const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
      if (cb) process.nextTick(cb);
      return true;
    }
    // biome-ignore lint/suspicious/noExplicitAny: forwarding the caller's arguments unchanged.
    return (write as any).apply(this, args);
  } as ServerResponse['write'];
  // biome-ignore lint/suspicious/noExplicitAny: end's overloads cannot be expressed on a replacement.
  res.end = function validationEnd(this: ServerResponse, ...args: any[]): ServerResponse {
    // The head goes out first, so that the 304 is turned into the answer before the body is chosen.
    if (
      state.validating !== undefined &&
      state.answerBody === undefined &&
      !this.headersSent &&
      this.statusCode === 304
    ) {
      this.writeHead(304);
    }
    const body = state.answerBody;
    if (body !== undefined) {
      const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
      // biome-ignore lint/suspicious/noExplicitAny: the original end.
      return body === null || body.length === 0 ? (end as any).call(this, cb) : (end as any).call(this, body, cb);
    }
    // biome-ignore lint/suspicious/noExplicitAny: forwarding the caller's arguments unchanged.
    return (end as any).apply(this, args);
  } as ServerResponse['end'];
}

/**
 * The app answered 304 to the cache's conditional request (called inside `writeHead`):
 * freshen the entry and turn the response into the answer from it.
 */
export function onNotModified(engine: CacheEngine, req: IncomingMessage, res: ServerResponse, state: RequestState) {
  const entry = state.validating as Entry;
  const now = engine.config.now();
  const fresh = freshen(engine, req, res, state, entry, now) ?? entry;
  // Keep what outer layers set for this request, and the app's own Set-Cookie for this client.
  for (const name of res.getHeaderNames()) {
    if (!KEPT_ON_REPLACE.test(name) && name !== 'set-cookie') res.removeHeader(name);
  }
  state.served = true;
  const client = state.clientConditionals;
  const inm = client?.['if-none-match'];
  const ok = fresh.status >= 200 && fresh.status < 300;
  const notModified =
    ok &&
    (inm !== undefined
      ? ifNoneMatchMatches(inm, fresh.etag)
      : notModifiedSince(client?.['if-modified-since'], fresh.lastModified ?? parseHttpDate(fresh.headers.date)));
  let status = fresh.status;
  let headers = fresh.headers;
  let body: Buffer | null = fresh.body;
  // The client's Range (set aside while validating) is answered from the freshened entry.
  const range = notModified ? undefined : rangeAnswer(req.method, client?.range, client?.['if-range'], fresh);
  if (range !== undefined) {
    status = range.status;
    headers = range.headers as StoredHeaders;
    body = range.body ?? null;
  } else if (notModified) {
    status = 304;
    headers = fresh.notModifiedHeaders;
    body = null;
  } else if (fresh.encoding !== undefined) {
    if (acceptsEncoding(req.headers['accept-encoding'], fresh.encoding)) headers = fresh.encodedHeaders ?? headers;
    else body = decompress(fresh.body, fresh.encoding);
  }
  if (req.method === 'HEAD' || status === 204) body = null;
  res.statusCode = status;
  for (const name of Object.keys(headers)) res.setHeader(name, headers[name] as OutgoingHttpHeaders[string] & {});
  res.setHeader('X-Cache', 'MISS');
  addServerTiming(res, 'cache', performance.now() - state.start, 'miss');
  const route = routeLabel(req);
  engine.counters.route(route).count('miss');
  spanEvent(req, 'cache', { 'perfstack.cache.outcome': 'miss', 'perfstack.route': route });
  state.answerBody = body;
}

/** Updates the stored entry from the 304 (§3.2, §4.3.4); undefined when it may no longer be stored. */
function freshen(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  state: RequestState,
  entry: Entry,
  now: number,
): Entry | undefined {
  const merged: Record<string, string | string[]> = {};
  for (const name of Object.keys(entry.headers)) {
    if (name !== 'content-length') merged[name] = entry.headers[name] as string | string[];
  }
  const update = storableHeaders(res.getHeaders());
  for (const name of Object.keys(update)) {
    if (!NOT_UPDATED.has(name)) merged[name] = update[name] as string | string[];
  }
  // The 304 is the newest response: its Date (Node writes it at send time) replaces the stored one.
  if (update.date === undefined) merged.date = formatHttpDate(now);
  const plan = planStorage(req, entry.status, merged, {
    key: state.key,
    route: entry.route,
    routeConfig: state.route,
    tagHeader: entry.tags.length > 0 ? entry.tags.join(',') : undefined,
    config: engine.config,
    requestTime: state.requestTime,
    responseTime: now,
  });
  if (plan === undefined) {
    engine.l1.remove(state.key, entry);
    return undefined;
  }
  const length = entry.headers['content-length'];
  return commit(engine, state, plan, entry.body, typeof length === 'string' ? Number(length) : 0, entry.encoding);
}
