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
