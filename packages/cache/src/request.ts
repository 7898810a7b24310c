/**
 * Stage 1 — the request: which requests the cache looks up, which it lets by, and with
 * what state. A GET/HEAD becomes a lookup (L1, then collapsing); every other method is
 * let by (`X-Cache: BYPASS`) and, when unsafe, may invalidate (RFC 9111 §4.4).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { NextFunction } from '@perfstack/core';
import { collapse } from './collapse.js';
import type { CacheEngine } from './engine.js';
import { headerString, parseCacheControl } from './http-semantics.js';
import { bypass } from './invalidate.js';
import type { RouteConfig } from './options.js';
import { fetch } from './record.js';
import { REFRESH_HEADER } from './revalidate.js';
import { tryServe } from './serve.js';
import { type RequestState, STATE, type StateRequest } from './state.js';

/** The safe methods (RFC 9110 §9.2.1); every other one, unknown methods included, is unsafe. */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** True for a method whose success invalidates the URL (RFC 9111 §4.4): anything not known to be safe. */
export function isUnsafe(method: string | undefined): boolean {
  return method !== undefined && !SAFE.has(method);
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
    refresh = marker === engine.token;
    delete headers[REFRESH_HEADER];
  }
  if (!refresh && engine.config.requestCacheControl) {
    const cc = parseCacheControl(headers['cache-control']);
    if (cc.noStore) {
      bypass(engine, req, res, next, false);
      return;
    }
    refresh = cc.noCache || cc.maxAge === 0 || /no-cache/i.test(headerString(headers.pragma) ?? '');
  }
  const state: RequestState = {
    engine,
    key,
    start,
    route,
    stale: undefined,
    served: false,
    refresh,
    credentialed,
    leader: undefined,
    lockHeld: false,
    replaced: false,
    passed: false,
    requestTime: 0,
    validating: undefined,
  };
  (req as StateRequest)[STATE] = state;
  if (!refresh) {
    const entry = engine.l1.select(key, headers);
    if (entry !== undefined && (!credentialed || entry.shared) && tryServe(engine, req, res, state, entry)) return;
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
  }
  fetch(engine, req, res, next, state);
}
