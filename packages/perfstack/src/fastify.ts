/**
 * perfstack on Fastify: a Fastify plugin (fastify-plugin), not Express middleware.
 *
 * ```ts
 * import Fastify from 'fastify';
 * import perfstack from 'perfstack/fastify';
 * const app = Fastify();
 * await app.register(perfstack, { redis: process.env.REDIS_URL });
 * app.get('/products', { config: { perfstack: { cache: { ttl: '5m', tags: ['products'] } } } }, listProducts);
 * ```
 *
 * The same layers as the Express preset, on Fastify's hooks:
 *
 * - `onRequest` (Fastify has routed: `request.routeOptions.url` is the route pattern): the
 *   layers in the documented order on `request.raw`/`reply.raw`. A cache hit, a 429, an open
 *   breaker's 503 or a preflight is answered there, before the body is read and before any
 *   route work; the size limiter only arms its guard.
 * - `preParsing`: the body limit is decided before Fastify's parser exists (413
 *   problem+json, the parser never runs); a route's `config.perfstack.sizeLimit` applies first.
 * - `preHandler`: the route's own `config.perfstack.rateLimit` and `config.perfstack.cache`.
 * - The response is observed where every framework's is (core's response hooks on
 *   `ServerResponse`): the cache records the payload Fastify's `reply.send` writes, timing
 *   and the access log close on the response's `finish`, as Fastify's `onResponse` does.
 *
 * Why the layers run on the raw request and response: each layer's node:http code is the
 * one proven on Express, Koa and node:http (interplay, RFC 9111, byte-exact answers). A
 * stored response is final bytes with precomputed headers (304s, ranges, encodings
 * included); sending it through `reply.send` would re-run serializers and `onSend` hooks
 * over bytes that must go out as stored, so stack answers are written on `reply.raw` and the
 * reply is marked hijacked (Fastify's documented way to answer outside `reply.send`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type RouteCacheOptions, cache as routeCache } from '@perfstack/cache';
import {
  clientErrorStatus,
  compose,
  isHttpProblemError,
  type Middleware,
  recordRequestError,
  sendError,
  setRoute,
} from '@perfstack/core';
import { type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
import { decideBodyLimit, type RouteSizeLimitOptions, routeSizeLimit } from '@perfstack/size-limit';
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  RouteOptions,
} from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { performanceStack as buildStack, type PerformanceStack, type PerformanceStackOptions } from './stack.js';

export * from './index.js';

/** A route's own settings, under `config.perfstack` of a Fastify route. */
export interface PerfstackRouteConfig {
  /** Cache this route's responses (`ttl`, `tags`, `vary`, `staleWhileRevalidate`, ...). @default not cached */
  readonly cache?: RouteCacheOptions;
  /** A rate limit of this route's own, on top of the stack's (shares its store). @default none */
  readonly rateLimit?: RateLimitOptions;
  /** This route's body limit, instead of the stack's (raise it for an upload). @default the stack's */
  readonly sizeLimit?: RouteSizeLimitOptions;
  /** The route bypasses the whole stack: no layer runs for it (a webhook, a stream). @default false */
  readonly skip?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** perfstack's settings for this route (perfstack/fastify). */
    perfstack?: PerfstackRouteConfig;
  }
  interface FastifyInstance {
    /** The stack the perfstack plugin built for this context (`cache.invalidate`, `registry`, ...). */
    perfstack: PerformanceStack;
  }
}

/** Where the dashboard, `/metrics` and `/health` are served; `false` leaves one out. */
export interface FastifyEndpointPaths {
  /** @default '/dashboard' */
  readonly dashboard?: string | false;
  /** @default '/metrics' */
  readonly metrics?: string | false;
  /** @default '/health' */
  readonly health?: string | false;
}

/** Options of the Fastify plugin: the preset's options, plus what is Fastify's own. */
export interface FastifyPerfstackOptions extends Omit<PerformanceStackOptions, 'paths'> {
  /**
   * Paths of the stack's endpoints, registered as Fastify routes in the context the plugin is
   * registered in (under its prefix). `false` leaves an endpoint out.
   * @default { dashboard: '/dashboard', metrics: '/metrics', health: '/health' }
   */
  readonly paths?: FastifyEndpointPaths;
  /**
   * Answer errors (thrown by handlers, Fastify's own: validation, malformed JSON, unsupported
   * media type, body too large) as problem+json, with the error on the access-log line. `false`
   * leaves the context's error handler alone.
   * @default true
   */
  readonly errorHandler?: boolean;
  /**
   * A stack built already (`performanceStack()` from `perfstack`), used instead of building
   * one from these options: for a framework integration that owns the stack (NestJS). The
   * plugin then takes no other stack options, serves the endpoints at the stack's own paths
   * (`paths` may only leave one out with `false`), and does not close the stack on
   * `app.close()`: its owner does.
   * @default a stack built from these options, closed with the app
   */
  readonly stack?: PerformanceStack;
}

const PKG = 'perfstack/fastify';

/** The route layers compiled from one route's `config.perfstack`. */
interface RouteParts {
  readonly skip: boolean;
  readonly sizeLimit: Middleware | undefined;
  readonly handler: Middleware | undefined;
}

type LoggedRequest = IncomingMessage & { log?: unknown };

const noop = () => {};

/**
 * Runs a Connect-style middleware from a Fastify hook: `done()` when it passes; nothing when
 * it answered (the reply is hijacked: Fastify sends nothing more); problem+json for an error
 * it passed on.
 */
function drive(
  middleware: Middleware,
  req: IncomingMessage,
  res: ServerResponse,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
  onPass: (() => void) | undefined,
): void {
  let passed = false;
  middleware(req, res, (error?: unknown) => {
    passed = true;
    if (error !== undefined && error !== null) {
      reply.hijack();
      recordRequestError(req, error);
      if (!res.headersSent) sendError(req, res, error);
      return;
    }
    onPass?.();
    done();
  });
  // Answered at once (a memory hit, a refusal, a preflight): Fastify must not answer too. An
  // answer that comes later (a Redis hit) ends the response first, which Fastify checks
  // (`reply.sent`) before it runs anything else.
  if (!passed && res.headersSent) reply.hijack();
}

function checkPaths(paths: unknown): FastifyEndpointPaths {
  if (paths === undefined) return {};
  if (typeof paths !== 'object' || paths === null || Array.isArray(paths)) {
    throw new TypeError(`${PKG}: option "paths" must be an object like { metrics: '/metrics' }, got ${typeof paths}`);
  }
  for (const [name, value] of Object.entries(paths)) {
    if (!['dashboard', 'metrics', 'health'].includes(name)) {
      throw new TypeError(`${PKG}: unknown option "paths.${name}" (expected dashboard, metrics or health)`);
    }
    if (value !== false && typeof value !== 'string') {
      throw new TypeError(`${PKG}: option "paths.${name}" must be a path or false, got ${typeof value}`);
    }
  }
  return paths as FastifyEndpointPaths;
}

const perfstackPlugin: FastifyPluginAsync<FastifyPerfstackOptions> = async (fastify, options) => {
  const { paths: pathOptions, errorHandler = true, stack: given, ...stackOptions } = options ?? {};
  if (typeof errorHandler !== 'boolean') {
    throw new TypeError(`${PKG}: option "errorHandler" must be a boolean, got ${typeof errorHandler}`);
  }
  const paths = checkPaths(pathOptions);
  // The endpoints are routes of this context, so under its prefix: the stack exempts them there.
  const prefix = fastify.prefix;
  let stack: PerformanceStack;
  if (given !== undefined) {
    stack = checkGivenStack(given, stackOptions, paths, prefix);
  } else {
    const at = (name: keyof FastifyEndpointPaths, fallback: string): string => {
      const value = paths[name];
      return prefix + (typeof value === 'string' ? value : fallback);
    };
    stack = buildStack({
      ...(stackOptions as PerformanceStackOptions),
      paths: {
        dashboard: at('dashboard', '/dashboard'),
        metrics: at('metrics', '/metrics'),
        health: at('health', '/health'),
      },
    });
  }
  const logger = stack.layers.logger;

  // Per-route layers, compiled once per route config as routes are added.
  const compiled = new WeakMap<object, RouteParts>();
  const compile = (config: PerfstackRouteConfig, url: string): RouteParts => {
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw new TypeError(`${PKG}: route ${url}: config.perfstack must be an object, got ${typeof config}`);
    }
    for (const name of Object.keys(config)) {
      if (!['cache', 'rateLimit', 'sizeLimit', 'skip'].includes(name)) {
        throw new TypeError(
          `${PKG}: route ${url}: unknown config.perfstack option "${name}" (expected cache, rateLimit, sizeLimit or skip)`,
        );
      }
    }
    if (config.skip !== undefined && typeof config.skip !== 'boolean') {
      throw new TypeError(`${PKG}: route ${url}: config.perfstack.skip must be a boolean, got ${typeof config.skip}`);
    }
    if (config.skip === true) return { skip: true, sizeLimit: undefined, handler: undefined };
    const handler: Middleware[] = [];
    if (config.rateLimit !== undefined) {
      const limiter = stack.layers.rateLimit;
      handler.push(limiter !== undefined ? limiter.route(config.rateLimit) : rateLimit.route(config.rateLimit));
    }
    if (config.cache !== undefined) handler.push(routeCache(config.cache));
    return {
      skip: false,
      sizeLimit: config.sizeLimit === undefined ? undefined : routeSizeLimit(config.sizeLimit),
      handler: handler.length === 0 ? undefined : handler.length === 1 ? handler[0] : compose(handler),
    };
  };
  fastify.addHook('onRoute', (route: RouteOptions) => {
    const config = route.config?.perfstack;
    if (config === undefined || compiled.has(config)) return;
    compiled.set(config, compile(config, route.url));
  });
  const partsOf = (request: FastifyRequest): RouteParts | undefined => {
    const config = request.routeOptions.config?.perfstack;
    return config === undefined ? undefined : compiled.get(config);
  };

  fastify.addHook('onRequest', function perfstackOnRequest(request, reply, done) {
    if (request.routeOptions.config?.perfstack !== undefined && partsOf(request)?.skip === true) {
      done();
      return;
    }
    const req = request.raw;
    // Fastify has routed already: every layer labels, keys and guards by the route pattern.
    const url = request.routeOptions.url;
    if (url !== undefined) setRoute(req, url);
    drive(
      stack,
      req,
      reply.raw,
      reply,
      done,
      // One logger: the handler's `request.log` is the access log's (redaction compiled once).
      logger === undefined
        ? undefined
        : () => {
            const log = (req as LoggedRequest).log;
            if (log !== undefined) request.log = log as FastifyRequest['log'];
          },
    );
  });

  fastify.addHook('preParsing', function perfstackPreParsing(request, reply, payload, done) {
    const req = request.raw;
    const parts = partsOf(request);
    if (parts?.skip === true) {
      done(null, payload);
      return;
    }
    parts?.sizeLimit?.(req, reply.raw, noop);
    // Decided now, before Fastify's parser exists: a 413 here means it never runs.
    if (decideBodyLimit(req)) {
      reply.hijack();
      return;
    }
    done(null, payload);
  });

  fastify.addHook('preHandler', function perfstackPreHandler(request, reply, done) {
    const handler = partsOf(request)?.handler;
    if (handler === undefined) {
      done();
      return;
    }
    drive(handler, request.raw, reply.raw, reply, done, undefined);
  });

  if (errorHandler) {
    fastify.setErrorHandler(function perfstackErrorHandler(error, request, reply) {
      const req = request.raw;
      const res = reply.raw;
      recordRequestError(req, error);
      // A client's error (Fastify's validation, parser and limit errors carry `statusCode`)
      // stays off the error log; anything else goes on the access line with its own stack.
      if (!isHttpProblemError(error) && clientErrorStatus(error) === undefined) logger?.recordError(req, error);
      reply.hijack();
      if (!res.headersSent) sendError(req, res, error);
      else res.end();
    });
  }

  registerEndpoints(fastify, stack, paths);
  if (!fastify.hasDecorator('perfstack')) fastify.decorate('perfstack', stack);
  // A stack given to the plugin is closed by its owner.
  if (given === undefined) {
    fastify.addHook('onClose', async () => {
      await stack.close();
    });
  }
};

/** Checks option `stack`: a built stack, alone, its endpoints under the context's prefix. */
function checkGivenStack(
  given: unknown,
  others: object,
  paths: FastifyEndpointPaths,
  prefix: string,
): PerformanceStack {
  const stack = given as PerformanceStack;
  if (typeof given !== 'function' || typeof stack.endpointOf !== 'function' || typeof stack.paths !== 'object') {
    throw new TypeError(`${PKG}: option "stack" must be what performanceStack() returned, got ${typeof given}`);
  }
  const extra = Object.keys(others);
  if (extra.length > 0) {
    throw new TypeError(
      `${PKG}: option "stack" is a stack built already: give ${extra.map((k) => `"${k}"`).join(', ')} to performanceStack(), not here`,
    );
  }
  for (const [name, value] of Object.entries(paths)) {
    if (value !== false) {
      throw new TypeError(
        `${PKG}: with option "stack", the endpoints are at the stack's paths; "paths.${name}" may only be false`,
      );
    }
  }
  for (const path of Object.values(stack.paths)) {
    if (!path.startsWith(`${prefix}/`)) {
      throw new TypeError(`${PKG}: the stack's path ${path} is outside this context's prefix ${prefix}`);
    }
  }
  return stack;
}

/** The dashboard, `/metrics` and `/health` as Fastify routes, their bodies left to them. */
function registerEndpoints(fastify: FastifyInstance, stack: PerformanceStack, paths: FastifyEndpointPaths): void {
  const notFound = (res: ServerResponse) => {
    res.statusCode = 404;
    res.end();
  };
  const serve =
    (handler: Middleware) =>
    (request: FastifyRequest, reply: FastifyReply): void => {
      reply.hijack();
      const res = reply.raw;
      handler(request.raw, res, () => notFound(res));
    };
  // In a context of their own: no body parser reads what the dashboard reads itself.
  fastify.register(async (endpoints) => {
    endpoints.removeAllContentTypeParsers();
    endpoints.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    if (paths.metrics !== false) {
      endpoints.get(stack.paths.metrics.slice(fastify.prefix.length), serve(stack.metrics()));
    }
    if (paths.health !== false) {
      endpoints.get(stack.paths.health.slice(fastify.prefix.length), serve(stack.health()));
    }
    if (paths.dashboard !== false) {
      const base = stack.paths.dashboard.slice(fastify.prefix.length);
      const dashboard = serve(stack.dashboard({ basePath: stack.paths.dashboard }));
      const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];
      endpoints.route({ method: methods, url: base, handler: dashboard });
      endpoints.route({ method: methods, url: `${base}/*`, handler: dashboard });
    }
  });
}

/**
 * The perfstack Fastify plugin: `await app.register(perfstack, options)` with the preset's
 * options. Wrapped with fastify-plugin, so its hooks guard the context it is registered in
 * (and that context's children), not only an encapsulated scope of its own: register it
 * inside a child context (`app.register(async (api) => { await api.register(perfstack); ... })`)
 * to guard only that context's routes.
 */
export const perfstack = fastifyPlugin(perfstackPlugin, { fastify: '5.x', name: 'perfstack' });

export default perfstack;
