/**
 * Stage 5 — invalidation: requests the cache lets by (`X-Cache: BYPASS`), whose success
 * invalidates their URL and its same-origin `Location`/`Content-Location` (RFC 9111
 * §4.4); `invalidate()` by key, tags or prefix; and the pub/sub that carries both to
 * every other instance.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { addServerTiming, type NextFunction, onBeforeHead, routeLabel, spanEvent } from '@perfstack/core';
import type { CacheEngine } from './engine.js';
import { invalidationTargets, keyOf, requestOrigin, requestTarget, sameOriginKey } from './key.js';
import { PKG } from './options.js';
import { record } from './record.js';
import { createState } from './state.js';
import { planStorage } from './storability.js';
import type { CacheEvent } from './store/redis.js';

/** Unsafe methods and requests the cache does not look up: `X-Cache: BYPASS`; success invalidates (RFC 9111 §4.4). */
export function bypass(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  next: NextFunction,
  invalidates: boolean,
): void {
  const start = performance.now();
  onBeforeHead(res, (r) => {
    r.setHeader('X-Cache', 'BYPASS');
    addServerTiming(r, 'cache', performance.now() - start, 'bypass');
    const route = routeLabel(req);
    engine.counters.route(route).count('bypass');
    spanEvent(req, 'cache', { 'perfstack.cache.outcome': 'bypass', 'perfstack.route': route });
    const status = r.statusCode;
    if (invalidates && status >= 200 && status < 400) {
      const origin = requestOrigin(req);
      if (origin === undefined) return;
      const target = requestTarget(req);
      const keys = new Set([keyOf(target, origin)]);
      for (const header of ['location', 'content-location']) {
        const key = sameOriginKey(r.getHeader(header), origin, target);
        if (key !== undefined) keys.add(key);
      }
      // Redis is only told about URLs some instance stored (the others have nothing to drop).
      const list = [...keys];
      if (engine.known === undefined || list.some((key) => engine.known?.has(key) === true)) {
        invalidateEverywhere(engine, list, [], undefined).catch(() => {});
      } else {
        invalidateLocal(engine, list, [], undefined);
      }
      if (req.method === 'POST') storePostResponse(engine, req, r, keyOf(target, origin), start);
    }
  });
  next();
}

/** A selector of `invalidate()`. */
export interface InvalidateSelector {
  readonly key?: string;
  readonly tags?: readonly string[];
  readonly prefix?: string;
}

/** Checks an `invalidate()` selector and runs it. */
export function invalidateSelector(engine: CacheEngine, selector: InvalidateSelector): Promise<number> {
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
  if (key === undefined) return invalidateEverywhere(engine, [], tags ?? [], prefix);
  // A path reaches that target on every origin (a prefix); tags/prefix given too run alongside.
  const targets = invalidationTargets(key);
  const byKey = invalidateEverywhere(engine, targets.keys, tags ?? [], targets.prefix);
  if (prefix === undefined) return byKey;
  return Promise.all([byKey, invalidateEverywhere(engine, [], [], prefix)]).then(([a, b]) => a + b);
}

/**
 * Removes entries here, then (fleet.ts) deletes them in Redis and tells every other
 * instance through the durable invalidation stream — queued while Redis does not answer
 * and sent when it does (store/invalidation-feed.ts).
 */
export async function invalidateEverywhere(
  engine: CacheEngine,
  keys: readonly string[],
  tags: readonly string[],
  prefix: string | undefined,
): Promise<number> {
  const removed = invalidateLocal(engine, keys, tags, prefix);
  const feed = engine.fleet.feed;
  if (feed === undefined) {
    // Without Redis, a bus (fleetBus) carries it to the other processes, which apply it locally.
    engine.fleet.share(keys, tags, prefix);
    return removed.size;
  }
  const deleted = await feed.publish({ keys: [...new Set([...keys, ...removed])], tags, prefix });
  return Math.max(removed.size, deleted);
}

/** Removes entries from this instance's memory; returns the keys that held something. */
export function invalidateLocal(
  engine: CacheEngine,
  keys: readonly string[],
  tags: readonly string[],
  prefix: string | undefined,
): Set<string> {
  engine.generation++;
  const removed = new Set<string>();
  const drop = (key: string) => {
    if (engine.l1.delete(key) > 0) removed.add(key);
    engine.pass?.delete(key);
  };
  for (const key of keys) drop(key);
  for (const tag of tags) for (const key of engine.l1.keysForTag(tag)) drop(key);
  if (prefix !== undefined) for (const key of engine.l1.keysWithPrefix(prefix)) drop(key);
  return removed;
}

/** Listens to the other instances (once per engine). */
export function subscribe(engine: CacheEngine): void {
  const l2 = engine.l2;
  if (l2 === undefined || engine.subscribed || engine.closed) return;
  engine.subscribed = true;
  l2.subscribe((event) => onEvent(engine, event)).then(
    (subscription) => {
      if (engine.closed) subscription.dispose();
      else engine.disposables.push(subscription);
    },
    (error: unknown) => {
      engine.subscribed = false;
      engine.storeError(error);
    },
  );
}

/** "Stored" hints of the other instances (invalidations come through the feed, fleet.ts). */
function onEvent(engine: CacheEngine, event: CacheEvent): void {
  if (event.from === engine.id || engine.closed) return;
  if (event.op === 'stored' && typeof event.key === 'string') {
    engine.known?.set(event.key, true);
    const vary = Array.isArray(event.vary) ? event.vary.filter((v): v is string => typeof v === 'string') : [];
    engine.fleet.stored(event.key, vary);
  }
}

/**
 * RFC 9111 §4.4 / RFC 9110 §9.3.3: a POST response with explicit freshness and a
 * `Content-Location` equal to the request's URL is a representation of that URL, and may
 * answer later GETs. Stored under the GET key, after the URL was invalidated.
 */
function storePostResponse(engine: CacheEngine, req: IncomingMessage, res: ServerResponse, key: string, start: number) {
  if (sameOriginKey(res.getHeader('content-location'), requestOrigin(req), requestTarget(req)) !== key) return;
  const credentialed = req.headers.authorization !== undefined || req.headers.cookie !== undefined;
  const state = createState(engine, key, start, undefined, true, credentialed, undefined);
  const now = engine.config.now();
  const plan = planStorage(req, res.statusCode, res.getHeaders(), {
    key,
    route: routeLabel(req),
    routeConfig: undefined,
    tagHeader: undefined,
    config: engine.config,
    requestTime: now,
    responseTime: now,
    method: 'POST',
  });
  if (plan === undefined || (plan.source !== 's-maxage' && plan.source !== 'max-age' && plan.source !== 'expires'))
    return;
  record(engine, res, state, plan);
}
