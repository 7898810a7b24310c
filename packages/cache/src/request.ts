/**
 * Stage 1 — the request: which requests the cache looks up, which it lets by, and with
 * what state. A GET/HEAD becomes a lookup (L1, then collapsing); every other method is
 * let by (`X-Cache: BYPASS`) and, when unsafe, may invalidate (RFC 9111 §4.4).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { type NextFunction, sendProblem } from '@perfstack/core';
import { collapse } from './collapse.js';
import type { CacheEngine } from './engine.js';
import { deadAt, type Entry } from './entry.js';
import { type CacheControl, headerString, parseCacheControl } from './http-semantics.js';
import { bypass } from './invalidate.js';
import type { RouteConfig } from './options.js';
import { fetch } from './record.js';
import { REFRESH_HEADER } from './revalidate.js';
import { tryServe } from './serve.js';
import { createState, type RequestState, STATE, type StateRequest } from './state.js';

/** The safe methods (RFC 9110 §9.2.1); every other one, unknown methods included, is unsafe. */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** True for a method whose success invalidates the URL (RFC 9111 §4.4): anything not known to be safe. */
export function isUnsafe(method: string | undefined): boolean {
  return method !== undefined && !SAFE.has(method);
}

function hasValidators(entry: Entry): boolean {
  return entry.etag !== undefined || entry.lastModified !== undefined;
}

/** `only-if-cached` and nothing usable stored: 504 (RFC 9111 §5.2.1.7), as problem+json. */
function notCached(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('X-Cache', 'MISS');
  sendProblem(
    res,
    { code: 'ONLY_IF_CACHED', detail: 'The request said only-if-cached and no stored response can answer it' },
    req.method,
  );
}

/**
 * Calls `then` with the variant L2 holds for the request (promoted to L1), or undefined:
 * nothing there, Redis down or not configured, or an entry a credentialed request may not use.
 */
function whenStoredInL2(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  state: RequestState,
  then: (entry: Entry | undefined) => void,
): void {
  const l2 = engine.l2;
  if (l2 === undefined || !l2.available) {
    then(undefined);
    return;
  }
  const key = state.key;
  l2.readVariants(key).then(
    (variants) => {
      if (res.writableEnded || res.destroyed) return;
      const now = engine.config.now();
      const live = variants.filter((v) => deadAt(v) > now);
      if (live.length === 0) {
        then(undefined);
        return;
      }
      engine.fleet.learnVary(key, (live[0] as Entry).varyNames);
      engine.l1.putAll(key, live);
      engine.known?.set(key, true);
      const entry = engine.l1.select(key, req.headers);
      then(entry !== undefined && (!state.credentialed || entry.shared) ? entry : undefined);
    },
    (error: unknown) => {
      engine.storeError(error);
      if (!res.writableEnded && !res.destroyed) then(undefined);
    },
  );
}

/** `only-if-cached` after an L1 miss: the entry L2 holds if it can answer, else 504. */
function answerOnlyIfCached(engine: CacheEngine, req: IncomingMessage, res: ServerResponse, state: RequestState) {
  whenStoredInL2(engine, req, res, state, (entry) => {
    if (entry === undefined || !tryServe(engine, req, res, state, entry)) notCached(req, res);
  });
}

/** Looks a GET/HEAD up: L1, then (for GET) collapsing with other requests for the key. */
export function read(
  engine: CacheEngine,
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
    delete headers[REFRESH_HEADER];
    const text = String(marker);
    const space = text.indexOf(' ');
    refresh = space > 0 && text.slice(0, space) === engine.token;
    // Our own refresh, keyed differently from the request it refreshes (e.g. the loopback
    // is a trusted proxy where the client was not, so X-Forwarded-Host now counts): never
    // store what it gets under that other key.
    if (refresh && text.slice(space + 1) !== key) {
      bypass(engine, req, res, next, false);
      return;
    }
  }
  let directives: CacheControl | undefined;
  let validate = refresh;
  let onlyIfCached = false;
  if (!refresh && engine.config.requestCacheControl) {
    const cc = headers['cache-control'] === undefined ? undefined : parseCacheControl(headers['cache-control']);
    if (cc?.noStore === true) {
      bypass(engine, req, res, next, false);
      return;
    }
    // §5.2.1.4 no-cache, max-age=0, and Pragma: no-cache without Cache-Control (§5.4): validate first.
    if (cc === undefined) validate = /no-cache/i.test(headerString(headers.pragma) ?? '');
    else if (cc.noCache || cc.maxAge === 0) validate = true;
    else if (cc.maxAge !== undefined || cc.minFresh !== undefined || cc.maxStale !== undefined) directives = cc;
    onlyIfCached = cc?.onlyIfCached === true;
  }
  const state = createState(engine, key, start, route, validate, credentialed, directives);
  if (validate) {
    (req as StateRequest)[STATE] = state;
    // A refresh (stale-while-revalidate) or a client's no-cache: a conditional request when the entry has validators.
    const entry = engine.l1.select(key, headers);
    if (entry !== undefined && (!credentialed || entry.shared) && hasValidators(entry)) state.validating = entry;
    if (onlyIfCached && entry === undefined) {
      // Validated only if some instance stored it (L2): then the entry is validated here.
      whenStoredInL2(engine, req, res, state, (stored) => {
        if (stored === undefined) notCached(req, res);
        else {
          if (hasValidators(stored)) state.validating = stored;
          fetch(engine, req, res, next, state);
        }
      });
    } else fetch(engine, req, res, next, state);
    return;
  }
  const entry = engine.l1.select(key, headers);
  // A hit never reaches a `cache()` route, the only reader of the state on the request: not stored.
  if (entry !== undefined && (!credentialed || entry.shared) && tryServe(engine, req, res, state, entry)) return;
  (req as StateRequest)[STATE] = state;
  if (onlyIfCached) {
    // §5.2.1.7: any stored response may answer, so L2 too (an entry another instance stored).
    answerOnlyIfCached(engine, req, res, state);
    return;
  }
  if (!credentialed && req.method === 'GET') {
    if (engine.l2?.available && engine.known?.has(key) === true) {
      collapse(engine, req, res, next, state, true, 0);
      return;
    }
    state.passed = engine.pass?.has(key) === true;
    if (!state.passed) {
      collapse(engine, req, res, next, state, false, 0);
      return;
    }
  }
  fetch(engine, req, res, next, state);
}
