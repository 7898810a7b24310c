/**
 * `sizeLimit()`: the stack's size limiter (layer 3 of the documented order) and
 * `sizeLimit.route()`, the per-route override.
 *
 * URL and header limits are checked at once (the request line and headers are already
 * in memory). The body limit is armed, not applied: see `body-guard.ts`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type ClosableMiddleware,
  createRegistry,
  type NextFunction,
  type SizeLimitSource,
  warmShapes,
} from '@perfstack/core';
import { armBodyGuard, guardOf } from './body-guard.js';
import { limitForType, mediaType } from './content-type.js';
import { Enforcer, type SizeLimitStats } from './enforcer.js';
import { SizeLimitError } from './errors.js';
import { checkHead } from './head.js';
import {
  DEFAULT_BODY_TIMEOUT,
  DEFAULT_LIMIT,
  type RouteSizeLimitOptions,
  resolveOptions,
  resolveRouteOptions,
  type SizeLimitOptions,
} from './options.js';

/** The middleware `sizeLimit()` returns; also the data source the dashboard reads. */
export interface SizeLimiter extends ClosableMiddleware, SizeLimitSource {
  /** Refusals so far, by problem code. */
  stats(): SizeLimitStats;
}

/**
 * @internal Where a size limiter keeps its early check: perfstack's early refusals ask it
 * before the framework runs whether this layer would let the request by untouched.
 */
export const EARLY_SIZE_CHECK = Symbol.for('perfstack.sizeLimit.earlyCheck');

/**
 * `true` when the limiter would pass `req` on with nothing left to enforce: URL and headers
 * within their limits, and no body or a `Content-Length` body within the body limit of its
 * type (a route could change the limit only for a request that reaches the route).
 */
export type EarlySizeCheck = (req: IncomingMessage) => boolean;

/**
 * @internal Where a size limiter keeps its early 413 (absent with `early: false` or an
 * `onReject`): perfstack's early refusals ask `wouldRefuse` before the framework runs, and
 * `refuse` answers the request as the chain's guard would once a reader started — the same
 * problem+json, count, metric and drained or closed connection.
 */
export const EARLY_TOO_LARGE = Symbol.for('perfstack.sizeLimit.earlyTooLarge');

/** See {@link EARLY_TOO_LARGE}. */
export interface EarlyTooLarge {
  /** True when `req` declares a `Content-Length` over every body limit any route may have. */
  wouldRefuse(req: IncomingMessage): boolean;
  /** Answers `req` 413 (headers the caller set first are kept as a problem keeps them). */
  refuse(req: IncomingMessage, res: ServerResponse): void;
}

const ROUTE_MAX = Symbol.for('perfstack.sizeLimit.routeMax');

/** The largest body limit a `sizeLimit.route()` of this process set (shared by copies of this package), 0 without one. */
function routeMax(): number {
  return (globalThis as { [ROUTE_MAX]?: number })[ROUTE_MAX] ?? 0;
}

function raiseRouteMax(limit: number): void {
  if (limit > routeMax()) (globalThis as { [ROUTE_MAX]?: number })[ROUTE_MAX] = limit;
}

/** The middleware `sizeLimit.route()` returns. */
export interface RouteSizeLimiter extends ClosableMiddleware, SizeLimitSource {
  /** Refusals counted by this route's own guard (when no stack limiter armed the request). */
  stats(): SizeLimitStats;
}

/** True when the request announces a body (RFC 9112 §6.3: `Transfer-Encoding` or a non-zero `Content-Length`). */
function announcesBody(req: IncomingMessage): boolean {
  const headers = req.headers;
  const contentLength = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (contentLength !== undefined && contentLength !== '0');
}

/**
 * Creates the size limiter: 414 for a long URL, 431 for too many or too large headers,
 * 411 for a body without `Content-Length` (when required), and a body limit (413) and
 * body timeout (408) enforced as the body is read, by whoever reads it.
 *
 * Mount it before anything that reads the body. A route that takes more (or less) says
 * so with {@link sizeLimit.route} in front of its own parser.
 *
 * @param options limits; every one is optional
 * @returns a Connect middleware with `stats()` and `close()`
 * @throws {TypeError} on an unknown option or a value of the wrong type
 * @throws {RangeError} on a value out of range
 * @example
 * app.use(sizeLimit({ limit: '1mb', limits: { 'application/json': '100kb' } }));
 * app.use(express.json({ limit: '50mb' }));
 * app.post('/upload', sizeLimit.route({ limit: '20mb' }), upload.single('file'), handler);
 */
export function sizeLimit(options?: SizeLimitOptions): SizeLimiter {
  const config = resolveOptions(options);
  const enforcer = new Enforcer(
    config.logger,
    config.registry ?? createRegistry(),
    config.onReject,
    config.lingerTimeout,
  );
  const { skip, requireContentLength, limit, limits, bodyTimeout, decompress } = config;

  const middleware = function sizeLimitMiddleware(req: IncomingMessage, res: ServerResponse, next: NextFunction) {
    warmShapes(req, res);
    if (skip?.(req)) {
      next();
      return;
    }
    const headError = checkHead(req, config);
    if (headError !== undefined) {
      enforcer.reject(req, res, headError, announcesBody(req));
      return;
    }
    const headers = req.headers;
    const contentLength = headers['content-length'];
    if (headers['transfer-encoding'] === undefined && (contentLength === undefined || contentLength === '0')) {
      next();
      return;
    }
    if (guardOf(req) !== undefined) {
      next();
      return;
    }
    if (contentLength === undefined && requireContentLength) {
      const error = new SizeLimitError('LENGTH_REQUIRED', 'A request body must be sent with a Content-Length header.');
      enforcer.reject(req, res, error, true);
      return;
    }
    const type = mediaType(headers['content-type']);
    armBodyGuard(req, res, enforcer, {
      contentLength: contentLength === undefined ? -1 : Number(contentLength),
      mediaType: type,
      limit: limitForType(limits, type) ?? limit,
      bodyTimeout,
      decompress,
    });
    next();
  };
  const earlyCheck: EarlySizeCheck = (req) => {
    if (skip?.(req)) return true;
    if (checkHead(req, config) !== undefined) return false;
    const headers = req.headers;
    const contentLength = headers['content-length'];
    if (headers['transfer-encoding'] !== undefined) return false;
    if (contentLength === undefined || contentLength === '0') return true;
    if (decompress && headers['content-encoding'] !== undefined) return false;
    const type = mediaType(headers['content-type']);
    const length = Number(contentLength);
    return Number.isInteger(length) && length >= 0 && length <= (limitForType(limits, type) ?? limit);
  };
  Object.defineProperty(middleware, EARLY_SIZE_CHECK, { value: earlyCheck });
  if (config.early && config.onReject === undefined) {
    const early: EarlyTooLarge = {
      wouldRefuse(req) {
        const headers = req.headers;
        const contentLength = headers['content-length'];
        if (contentLength === undefined || headers['transfer-encoding'] !== undefined) return false;
        if (decompress && headers['content-encoding'] !== undefined) return false;
        const length = Number(contentLength);
        if (!Number.isInteger(length)) return false;
        const own = limitForType(limits, mediaType(headers['content-type'])) ?? limit;
        if (length <= own || length <= routeMax()) return false;
        return skip?.(req) !== true && checkHead(req, config) === undefined;
      },
      refuse(req, res) {
        const type = mediaType(req.headers['content-type']);
        // The chain's guard, armed and read at once: its 413, count and connection handling.
        armBodyGuard(req, res, enforcer, {
          contentLength: Number(req.headers['content-length']),
          mediaType: type,
          limit: limitForType(limits, type) ?? limit,
          bodyTimeout,
          decompress: false,
        }).startReading();
      },
    };
    Object.defineProperty(middleware, EARLY_TOO_LARGE, { value: early });
  }
  return Object.assign(middleware, {
    stats: (): SizeLimitStats => enforcer.stats(),
    close: async (): Promise<void> => enforcer.close(),
  });
}

/**
 * A per-route override: sets this route's body limit and body timeout on the guard the
 * stack's limiter armed, before the route's own parser reads the body. Works even though
 * the stack's (smaller) limit ran first, because that limit was never applied yet.
 * Without a stack limiter in front, it guards the route's body itself.
 *
 * @param options this route's `limit`, `limits` and `bodyTimeout`
 * @returns a Connect middleware for the route, with `stats()` and `close()`
 * @throws {TypeError} on an unknown option or a value of the wrong type
 * @throws {RangeError} on a value out of range
 * @example app.post('/upload', sizeLimit.route({ limit: '20mb' }), multer().single('file'), handler);
 */
export function routeSizeLimit(options?: RouteSizeLimitOptions): RouteSizeLimiter {
  const { route, registry, logger } = resolveRouteOptions(options);
  // Declared bodies up to this route's limit must reach it: no early 413 below it.
  raiseRouteMax(Math.max(route.limit ?? 0, ...route.limits.values()));
  const enforcer = new Enforcer(logger, registry, undefined, 2000);
  const middleware = function sizeLimitRoute(req: IncomingMessage, res: ServerResponse, next: NextFunction) {
    const guard = guardOf(req);
    if (guard !== undefined) {
      guard.applyRoute(route, guard.enforcer.logger);
      next();
      return;
    }
    if (!announcesBody(req)) {
      next();
      return;
    }
    const type = mediaType(req.headers['content-type']);
    const contentLength = req.headers['content-length'];
    armBodyGuard(req, res, enforcer, {
      contentLength: contentLength === undefined ? -1 : Number(contentLength),
      mediaType: type,
      limit: limitForType(route.limits, type) ?? route.limit ?? DEFAULT_LIMIT,
      bodyTimeout: route.bodyTimeout ?? DEFAULT_BODY_TIMEOUT,
      decompress: false,
    });
    next();
  };
  return Object.assign(middleware, {
    stats: (): SizeLimitStats => enforcer.stats(),
    close: async (): Promise<void> => enforcer.close(),
  });
}

sizeLimit.route = routeSizeLimit;

/**
 * Decides a guarded request's body limit now, as if its reader had started. For frameworks
 * whose body parser starts in a hook of their own (Fastify's `preParsing`): a
 * `Content-Length` over the limit in force is answered 413 before the parser exists; a
 * chunked body is still counted as it arrives (413 the moment it crosses the limit).
 *
 * @param req a request the limiter (stack or route) has seen
 * @returns `true` when the request was refused (the 413 is already answered), else `false`
 * @example if (decideBodyLimit(request.raw)) return; // preParsing: the parser never runs
 */
export function decideBodyLimit(req: IncomingMessage): boolean {
  const guard = guardOf(req);
  if (guard === undefined) return false;
  guard.startReading();
  return guard.rejected;
}
