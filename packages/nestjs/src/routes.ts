/**
 * The route table: every route of the app's controllers with the path Nest registers it at
 * (global prefix, `RouterModule` path, controller path, method path and URI version, through
 * Nest's own `PathsExplorer` and `RoutePathFactory`, then the adapter's `normalizePath`), and
 * the perfstack settings its decorators give it (the method's over the controller's).
 *
 * Built once, when the app starts. Requests are matched to it by the pattern the framework
 * routes them to (Express: core's `resolveRoute`, before Nest's router runs; Fastify:
 * `request.routeOptions.url`), so a lookup is two Map reads.
 */
import { RequestMethod, type VersioningOptions } from '@nestjs/common';
import { METHOD_METADATA, MODULE_PATH, PATH_METADATA, VERSION_METADATA } from '@nestjs/common/constants.js';
import type { VersionValue } from '@nestjs/common/interfaces/version-options.interface.js';
import type { ApplicationConfig, ModulesContainer } from '@nestjs/core';
import { MetadataScanner } from '@nestjs/core/metadata-scanner.js';
import type { RoutePathMetadata } from '@nestjs/core/router/interfaces/route-path-metadata.interface.js';
import { PathsExplorer } from '@nestjs/core/router/paths-explorer.js';
import { RoutePathFactory } from '@nestjs/core/router/route-path-factory.js';
import {
  type CacheResponseOptions,
  type CircuitBreakerRouteOptions,
  PERFSTACK_CACHE,
  PERFSTACK_CIRCUIT_BREAKER,
  PERFSTACK_NO_CACHE,
  PERFSTACK_RATE_LIMIT,
  PERFSTACK_SKIP,
  type RateLimitRouteOptions,
} from './decorators.js';

/** One route of the app and the perfstack settings of it. */
export interface PerfstackRoute {
  /** `GET`, `POST`, ... or `ALL` (`@All()`). */
  readonly method: string;
  /** The pattern as the framework routes it (`/api/products/:id`). */
  readonly path: string;
  /** The controller class's name. */
  readonly controller: string;
  /** The route method's name. */
  readonly handler: string;
  /** `@CacheResponse()` options (the method's over the controller's), unless `@NoCache()`. */
  readonly cache: CacheResponseOptions | undefined;
  /** `@NoCache()` on the method, or on the controller without a `@CacheResponse()` on the method. */
  readonly noCache: boolean;
  /** `@RateLimit()` options (the method's, else the controller's). */
  readonly rateLimit: RateLimitRouteOptions | undefined;
  /** `@CircuitBreaker()` options (the method's over the controller's). */
  readonly circuitBreaker: CircuitBreakerRouteOptions | undefined;
  /** `@SkipPerfstack()` on the method or the controller. */
  readonly skip: boolean;
}

/** The methods whose answers a route cache may store. */
const READ_METHODS = new Set(['GET', 'HEAD', 'ALL']);

/** Routes by pattern, then by method; only routes with a perfstack setting. */
export class RouteTable {
  readonly routes: readonly PerfstackRoute[];
  readonly #byPath = new Map<string, Map<string, PerfstackRoute>>();

  constructor(routes: readonly PerfstackRoute[]) {
    this.routes = Object.freeze([...routes]);
    for (const route of routes) {
      if (!hasSettings(route)) continue;
      let methods = this.#byPath.get(route.path);
      if (methods === undefined) {
        methods = new Map();
        this.#byPath.set(route.path, methods);
      }
      // The first route registered for a method and path is the one the framework runs.
      if (!methods.has(route.method)) methods.set(route.method, route);
    }
  }

  /** True when no route has a perfstack setting (requests need no lookup). */
  get empty(): boolean {
    return this.#byPath.size === 0;
  }

  /** The route the framework runs for `method` on `pattern` (HEAD through GET, then `@All()`). */
  lookup(method: string | undefined, pattern: string | undefined): PerfstackRoute | undefined {
    if (pattern === undefined) return undefined;
    const methods = this.#byPath.get(pattern);
    if (methods === undefined) return undefined;
    const name = method ?? 'GET';
    return methods.get(name) ?? (name === 'HEAD' ? methods.get('GET') : undefined) ?? methods.get('ALL');
  }
}

function hasSettings(route: PerfstackRoute): boolean {
  return (
    route.skip ||
    route.noCache ||
    route.cache !== undefined ||
    route.rateLimit !== undefined ||
    route.circuitBreaker !== undefined
  );
}

type Meta = Record<string, unknown> | undefined;
const meta = (key: string, target: object): unknown => Reflect.getMetadata(key, target);

/** The settings of one route method of `controller`. */
export function routeSettings(
  controller: object,
  handler: object,
  method: string,
): Pick<PerfstackRoute, 'cache' | 'noCache' | 'rateLimit' | 'circuitBreaker' | 'skip'> {
  const ownCache = meta(PERFSTACK_CACHE, handler) as Meta;
  const classCache = meta(PERFSTACK_CACHE, controller) as Meta;
  // The method's own decorator wins: @NoCache on a method of a cached controller, or
  // @CacheResponse on a method of a @NoCache controller.
  const noCache =
    meta(PERFSTACK_NO_CACHE, handler) === true ||
    (ownCache === undefined && meta(PERFSTACK_NO_CACHE, controller) === true);
  const cacheOptions = noCache || !READ_METHODS.has(method) ? undefined : mergeDefined(classCache, ownCache);
  const breaker = mergeDefined(
    meta(PERFSTACK_CIRCUIT_BREAKER, controller) as Meta,
    meta(PERFSTACK_CIRCUIT_BREAKER, handler) as Meta,
  );
  return {
    cache: cacheOptions as CacheResponseOptions | undefined,
    noCache,
    rateLimit: (meta(PERFSTACK_RATE_LIMIT, handler) ?? meta(PERFSTACK_RATE_LIMIT, controller)) as
      | RateLimitRouteOptions
      | undefined,
    circuitBreaker: breaker as CircuitBreakerRouteOptions | undefined,
    skip: meta(PERFSTACK_SKIP, handler) === true || meta(PERFSTACK_SKIP, controller) === true,
  };
}

function mergeDefined(base: Meta, own: Meta): Meta {
  if (base === undefined) return own;
  if (own === undefined) return base;
  return { ...base, ...own };
}

/** What {@link scanRoutes} reads. */
export interface ScanInput {
  readonly modules: ModulesContainer;
  /** The app's config (global prefix, versioning); absent in a bare context. */
  readonly config: ApplicationConfig | undefined;
  /** The adapter's path normalisation (Nest 11 on Express: legacy wildcards converted). */
  readonly normalizePath?: ((path: string) => string) | undefined;
}

/** Every route of every controller, with its path as Nest registers it. */
export function scanRoutes({ modules, config, normalizePath }: ScanInput): PerfstackRoute[] {
  const explorer = new PathsExplorer(new MetadataScanner());
  const factory = config === undefined ? undefined : new RoutePathFactory(config);
  const globalPrefix = config?.getGlobalPrefix() || undefined;
  const versioning: VersioningOptions | undefined = config?.getVersioning();
  const found: PerfstackRoute[] = [];
  for (const module of modules.values()) {
    const modulePath = (meta(MODULE_PATH + modules.applicationId, module.metatype) ??
      meta(MODULE_PATH, module.metatype)) as string | undefined;
    for (const wrapper of module.controllers.values()) {
      const metatype = wrapper.metatype as (new (...args: never[]) => object) | null | undefined;
      if (typeof metatype !== 'function') continue;
      const controllerPath = meta(PATH_METADATA, metatype) as string | string[] | undefined;
      if (controllerPath === undefined) continue;
      const controllerPaths = (Array.isArray(controllerPath) ? controllerPath : [controllerPath]).map(leadingSlash);
      const controllerVersion = versioning
        ? ((meta(VERSION_METADATA, metatype) as VersionValue | undefined) ?? versioning.defaultVersion)
        : undefined;
      const prototype = metatype.prototype as Record<string, unknown>;
      for (const definition of explorer.scanForPaths(prototype as never, prototype)) {
        const handler = prototype[definition.methodName] as object;
        const method = requestMethodName(meta(METHOD_METADATA, handler) as RequestMethod);
        const settings = routeSettings(metatype, handler, method);
        for (const ctrlPath of controllerPaths) {
          for (const methodPath of definition.path) {
            const metadata = {
              ctrlPath,
              methodPath,
              globalPrefix,
              modulePath,
              controllerVersion,
              methodVersion: definition.version,
              versioningOptions: versioning,
            } as RoutePathMetadata;
            const paths = factory
              ? factory.create(metadata, definition.requestMethod)
              : [joinPaths(modulePath, ctrlPath, methodPath)];
            for (const path of paths) {
              found.push({
                method,
                path: normalizePath ? normalizePath(path) : path,
                controller: metatype.name,
                handler: definition.methodName,
                ...settings,
              });
            }
          }
        }
      }
    }
  }
  return found;
}

/** `GET`, `POST`, ... `ALL`: Nest's `RequestMethod` enum by name. */
export function requestMethodName(method: RequestMethod | undefined): string {
  return RequestMethod[method ?? RequestMethod.GET] ?? 'GET';
}

function leadingSlash(path: string): string {
  return path.startsWith('/') ? path : `/${path}`;
}

function joinPaths(...parts: Array<string | undefined>): string {
  const joined = parts
    .filter((p): p is string => p !== undefined && p !== '' && p !== '/')
    .map((p) => leadingSlash(p).replace(/\/+$/, ''))
    .join('');
  return joined === '' ? '/' : joined;
}
