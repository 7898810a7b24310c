/**
 * `PerfstackService`: the stack of the app (built by `performanceStack()` of `perfstack`
 * from the module's options and the controllers' decorators), injectable anywhere.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { cache as routeCache } from '@perfstack/cache';
import type { RouteGuardOptions } from '@perfstack/circuit-breaker';
import { type CacheStats, compose, getRoute, type Middleware, type NextFunction, type Registry } from '@perfstack/core';
import { type RateLimiter, type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
import { type PerformanceStack, type PerformanceStackOptions, performanceStack } from 'perfstack';
import { PERFSTACK_OPTIONS, type PerfstackModuleOptions, PKG, splitOptions } from './options.js';
import { type PerfstackRoute, RouteTable } from './routes.js';

/** What {@link PerfstackService.stats} returns. */
export interface PerfstackStats {
  /** The response cache's counters (hits, misses, entries, bytes, per route). */
  readonly cache: CacheStats;
  /** Requests, latency percentiles and routes, as the dashboard reads them (when timing is on). */
  readonly timing: ReturnType<NonNullable<PerformanceStack['layers']['timing']>['snapshot']> | undefined;
  /** The module's rate limiter's counters (when on). */
  readonly rateLimit: ReturnType<RateLimiter['stats']> | undefined;
  /** Breakers by route and their states (when on). */
  readonly circuitBreaker:
    | ReturnType<NonNullable<PerformanceStack['layers']['circuitBreaker']>['snapshot']>
    | undefined;
}

/** The route of a request, looked up once (`null`: none with perfstack settings). */
const ROUTE = Symbol('perfstack.nestjs.route');
type RoutedRequest = IncomingMessage & { [ROUTE]?: PerfstackRoute | null };

/** Limits the route limiter takes from the decorator only, never from the module. */
const OWN_LIMIT_KEYS = new Set(['limit', 'window', 'windowMs', 'limits', 'name']);

@Injectable()
export class PerfstackService implements OnApplicationShutdown {
  readonly #options: PerformanceStackOptions;
  readonly #endpoints: boolean;
  #stack: PerformanceStack | undefined;
  #table = new RouteTable([]);
  readonly #chains = new Map<PerfstackRoute, Middleware>();
  readonly #limiters: RateLimiter[] = [];

  constructor(@Inject(PERFSTACK_OPTIONS) options: PerfstackModuleOptions) {
    const { stack, endpoints } = splitOptions(options);
    this.#options = stack;
    this.#endpoints = endpoints;
  }

  /** Whether the module mounts the dashboard, `/metrics` and `/health`. */
  get endpoints(): boolean {
    return this.#endpoints;
  }

  /** The preset's options as given to the module. */
  get options(): PerformanceStackOptions {
    return this.#options;
  }

  /** The stack (`performanceStack()`'s result): built when the app initialises. */
  get stack(): PerformanceStack {
    if (this.#stack === undefined) {
      throw new Error(`${PKG}: the stack is built when the app initialises (app.init() or app.listen())`);
    }
    return this.#stack;
  }

  /** True once the stack is built. */
  get ready(): boolean {
    return this.#stack !== undefined;
  }

  /** The shared metrics registry (the one `/metrics` serves). */
  get registry(): Registry {
    return this.stack.registry;
  }

  /** Every route of the app's controllers and its perfstack settings. */
  get routes(): readonly PerfstackRoute[] {
    return this.#table.routes;
  }

  /**
   * Removes cached responses by tags, exact key or key prefix, on every instance (with Redis).
   *
   * @returns the number of keys removed
   * @example await this.perfstack.invalidate({ tags: ['products'] });
   */
  invalidate(selector: Parameters<PerformanceStack['cache']['invalidate']>[0]): Promise<number> {
    return this.stack.cache.invalidate(selector);
  }

  /** The cache's, timing's, rate limiter's and breakers' figures now. */
  stats(): PerfstackStats {
    const { layers } = this.stack;
    return {
      cache: this.stack.cache.stats(),
      timing: layers.timing?.snapshot(),
      rateLimit: layers.rateLimit?.stats(),
      circuitBreaker: layers.circuitBreaker?.snapshot(),
    };
  }

  /** The route `req` is routed to, when it has perfstack settings (Express: resolved before Nest's router). */
  routeOf(req: IncomingMessage): PerfstackRoute | undefined {
    const routed = req as RoutedRequest;
    const known = routed[ROUTE];
    if (known !== undefined) return known ?? undefined;
    // The pattern the framework routes the request to: set by perfstack/fastify from
    // `routeOptions.url`, resolved from Express's router before it runs.
    const route = this.#table.empty ? undefined : this.#table.lookup(req.method, getRoute(req));
    routed[ROUTE] = route ?? null;
    return route;
  }

  /** The route-level middleware of a route (its own rate limit, its route cache), if any. */
  routeChain(route: PerfstackRoute): Middleware | undefined {
    return this.#chains.get(route);
  }

  /**
   * Builds the stack for the routes found. Called once by the module when the app
   * initialises (routes, global prefix and versioning are final then).
   * @internal
   */
  build(routes: readonly PerfstackRoute[]): PerformanceStack {
    if (this.#stack !== undefined) return this.#stack;
    const stack = performanceStack(this.prepare(routes));
    const table = this.#table;
    this.#stack = stack;
    try {
      for (const route of table.routes) {
        const members: Middleware[] = [];
        if (route.skip) continue;
        if (route.rateLimit !== undefined) {
          const limiter = this.#routeLimiter(stack, route);
          this.#limiters.push(limiter);
          members.push(limiter);
        }
        if (route.cache !== undefined && stack.layers.cache !== undefined) {
          members.push(routeCache({ ...route.cache, store: stack.layers.cache }));
        }
        if (members.length > 0 && !this.#chains.has(route)) this.#chains.set(route, compose(members));
      }
    } catch (error) {
      void this.close();
      throw error;
    }
    return stack;
  }

  /**
   * Takes the app's routes and returns the module's options with the decorators' settings
   * folded in (on Fastify, perfstack/fastify builds the stack from them).
   * @internal
   */
  prepare(routes: readonly PerfstackRoute[]): PerformanceStackOptions {
    const table = new RouteTable(routes);
    this.#table = table;
    return this.#routeAwareOptions(table, this.#options);
  }

  /**
   * Takes the stack perfstack/fastify built from {@link prepare}'s options.
   * @internal
   */
  adopt(stack: PerformanceStack): void {
    this.#stack ??= stack;
  }

  /** The module's options with the decorators' settings folded in. */
  #routeAwareOptions(table: RouteTable, options: PerformanceStackOptions): PerformanceStackOptions {
    const routes = table.routes.filter((r) => !r.skip);
    const out: { -readonly [K in keyof PerformanceStackOptions]: PerformanceStackOptions[K] } = { ...options };
    const routeOf = (req: IncomingMessage) => this.routeOf(req);

    if (routes.some((r) => r.noCache) && options.cache !== false) {
      const own = typeof options.cache === 'object' ? options.cache : {};
      const userSkip = own.skip;
      out.cache = {
        ...own,
        skip: (req: IncomingMessage) => routeOf(req)?.noCache === true || userSkip?.(req) === true,
      };
    }

    if (routes.some((r) => r.rateLimit !== undefined) && options.rateLimit !== false) {
      const own = (typeof options.rateLimit === 'object' ? options.rateLimit : {}) as RateLimitOptions;
      const userSkip = own.skip;
      out.rateLimit = {
        ...own,
        // A route with its own @RateLimit is counted by its own limiter only.
        skip: (req: IncomingMessage, res: ServerResponse) =>
          routeOf(req)?.rateLimit !== undefined || (userSkip === undefined ? false : userSkip(req, res)),
      };
    }

    const guarded = routes.filter((r) => r.circuitBreaker !== undefined);
    if (guarded.length > 0 && options.circuitBreaker !== false) {
      const own = typeof options.circuitBreaker === 'object' ? options.circuitBreaker : {};
      const overrides: Record<string, RouteGuardOptions> = {};
      for (const route of guarded) {
        const key = route.method === 'ALL' ? route.path : `${route.method} ${route.path}`;
        overrides[key] = { ...own.routes?.[key], ...route.circuitBreaker };
      }
      out.circuitBreaker = { ...own, routes: { ...own.routes, ...overrides } };
    }
    return out;
  }

  /**
   * A route's own limiter: the decorator's limits; keys, headers, store and failure policy
   * from the module's limiter (`limiter.route()` of @perfstack/rate-limit), else its options.
   */
  #routeLimiter(stack: PerformanceStack, route: PerfstackRoute): RateLimiter {
    const moduleLimit = typeof this.#options.rateLimit === 'object' ? this.#options.rateLimit : {};
    const basePrefix = moduleLimit.prefix ?? 'rl:';
    // Each route counts apart, even when two routes have the same policy.
    const own = { ...route.rateLimit, prefix: `${basePrefix}route:${route.method} ${route.path}:` } as RateLimitOptions;
    const parent = stack.layers.rateLimit;
    if (parent !== undefined) return parent.route(own);
    const inherited: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(moduleLimit)) if (!OWN_LIMIT_KEYS.has(key)) inherited[key] = value;
    return rateLimit({
      ...inherited,
      registry: stack.registry,
      ...(this.#options.log ? { logger: this.#options.log } : {}),
      ...(stack.redis ? { redis: stack.redis } : {}),
      ...own,
    } as RateLimitOptions);
  }

  /**
   * The Connect middleware the module mounts on Express: the route's `@SkipPerfstack()`
   * passes by, otherwise the stack, then the route's own limiter and route cache.
   * @internal
   */
  middleware(): Middleware {
    const self = this;
    return function perfstackNest(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
      const stack = self.#stack;
      if (stack === undefined) {
        next();
        return;
      }
      const route = self.routeOf(req);
      if (route === undefined) {
        stack(req, res, next);
        return;
      }
      if (route.skip) {
        next();
        return;
      }
      const chain = self.#chains.get(route);
      if (chain === undefined) {
        stack(req, res, next);
        return;
      }
      stack(req, res, (error?: unknown) => {
        if (error !== undefined && error !== null) next(error);
        else chain(req, res, next);
      });
    };
  }

  /** Closes the route limiters and the stack (every layer, timer and Redis connection). */
  async close(): Promise<void> {
    await Promise.allSettled(this.#limiters.map((l) => l.close()));
    await this.#stack?.close();
  }

  /** @internal Nest's shutdown hook (`app.enableShutdownHooks()` or `app.close()`). */
  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }
}
