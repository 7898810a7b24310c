/**
 * The module on `@nestjs/platform-fastify`: `perfstack/fastify` (the Fastify plugin) registered
 * on Nest's Fastify instance before Nest adds its routes, with the decorators' settings:
 *
 * - `@CacheResponse`, `@RateLimit` and `@SkipPerfstack` go into each route's Fastify `config`
 *   (`config.perfstack`, which the plugin compiles when the route is added), through the route
 *   config metadata Nest's Fastify adapter reads (what `@RouteConfig()` sets);
 * - `@NoCache`, the module limiter's exemption of routes with their own limit, and
 *   `@CircuitBreaker` are in the stack's options (service.ts `prepare()`), by route pattern.
 *
 * The dashboard, `/metrics` and `/health` are the plugin's routes; Nest keeps its own error
 * handling (exception filters), so the plugin's error handler is left out.
 */
import type { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import type { ModulesContainer } from '@nestjs/core';
import { MetadataScanner } from '@nestjs/core/metadata-scanner.js';
import type { PerformanceStack } from 'perfstack';
import { PKG } from './options.js';
import { type PerfstackRoute, requestMethodName, routeSettings } from './routes.js';
import type { PerfstackService } from './service.js';

/** `FASTIFY_ROUTE_CONFIG_METADATA` of @nestjs/platform-fastify (the key `@RouteConfig()` sets). */
const FASTIFY_ROUTE_CONFIG = '__fastify_route_config__';

type FastifyLike = {
  register(plugin: unknown, options?: unknown): PromiseLike<unknown>;
  perfstack?: PerformanceStack;
};

/**
 * Registers `perfstack/fastify` on Nest's Fastify instance, awaited, so its hooks (`onRoute`
 * among them) are in place when Nest adds the routes.
 */
export async function registerFastify(
  instance: unknown,
  service: PerfstackService,
  modules: ModulesContainer,
  routes: readonly PerfstackRoute[],
): Promise<void> {
  const fastify = instance as FastifyLike;
  const options = service.prepare(routes);
  annotateRoutes(modules, options.rateLimit);
  const { perfstack } = await import('perfstack/fastify');
  const { paths, ...rest } = options;
  const off = { dashboard: false, metrics: false, health: false } as const;
  await fastify.register(perfstack, {
    ...rest,
    ...(service.endpoints ? (paths === undefined ? {} : { paths }) : { paths: off }),
    errorHandler: false,
  });
  if (fastify.perfstack === undefined) throw new Error(`${PKG}: perfstack/fastify did not decorate the instance`);
  service.adopt(fastify.perfstack);
}

/** Puts each decorated route's settings in its Fastify route config (`config.perfstack`). */
function annotateRoutes(modules: ModulesContainer, moduleRateLimit: unknown): void {
  const scanner = new MetadataScanner();
  const basePrefix =
    typeof moduleRateLimit === 'object' && moduleRateLimit !== null
      ? ((moduleRateLimit as { prefix?: string }).prefix ?? 'rl:')
      : 'rl:';
  for (const module of modules.values()) {
    for (const wrapper of module.controllers.values()) {
      const metatype = wrapper.metatype as (new (...args: never[]) => object) | null | undefined;
      if (typeof metatype !== 'function') continue;
      const prototype = metatype.prototype as Record<string, unknown>;
      for (const name of scanner.getAllMethodNames(prototype)) {
        const handler = prototype[name] as object;
        if (Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        const method = requestMethodName(Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined);
        const settings = routeSettings(metatype, handler, method);
        const config: Record<string, unknown> = {};
        if (settings.skip) config.skip = true;
        else {
          if (settings.cache !== undefined) config.cache = settings.cache;
          if (settings.rateLimit !== undefined) {
            // Each route counts apart, even when two routes have the same policy.
            config.rateLimit = { ...settings.rateLimit, prefix: `${basePrefix}route:${metatype.name}.${name}:` };
          }
        }
        if (Object.keys(config).length === 0) continue;
        const existing = Reflect.getMetadata(FASTIFY_ROUTE_CONFIG, handler) as Record<string, unknown> | undefined;
        Reflect.defineMetadata(FASTIFY_ROUTE_CONFIG, { ...existing, perfstack: config }, handler);
      }
    }
  }
}
