/**
 * `performanceStack()`: every perfstack layer, composed in the documented order, sharing
 * one metrics registry, one Redis connection and one logger.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createCache,
  type DataCache,
  type DataCacheOptions,
  defaultDataCache,
  linkTagBus,
  type ResponseCache,
  type ResponseCacheOptions,
  responseCache,
  setDefaultDataCache,
} from '@perfstack/cache';
import type { Client } from '@perfstack/circuit-breaker';
import { type CircuitBreakerMiddleware, type CircuitBreakerOptions, circuitBreaker } from '@perfstack/circuit-breaker';
import {
  checkOptionsObject,
  compose,
  consoleLogger,
  createRegistry,
  createSharedRedis,
  ensureRequestId,
  type HealthSource,
  isRedisClient,
  type Middleware,
  type NextFunction,
  type PerfstackLogger,
  type RedisClient,
  type Registry,
  SharedRedis,
  type SharedRedisOptions,
  warmShapes,
} from '@perfstack/core';
import {
  type DashboardMiddleware,
  type DashboardOptions,
  dashboard,
  type HealthHandler,
  healthHandler,
  type MetricsHandler,
  metricsHandler,
  redisHealthCheck,
} from '@perfstack/dashboard';
import { type AccessLogger, type AccessLogOptions, accessLog } from '@perfstack/logger';
import { type RateLimiter, type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
import {
  decideBodyLimit,
  EARLY_TOO_LARGE,
  type EarlyTooLarge,
  type SizeLimiter,
  type SizeLimitOptions,
  sizeLimit,
} from '@perfstack/size-limit';
import { appTiming, type Timing, type TimingOptions, timing } from '@perfstack/timing';
import cors, { type CorsOptions } from 'cors';
import helmet, { type HelmetOptions } from 'helmet';
import { type AutoTune, type AutoTuneOptions, resolveAutoTune, startAutoTune } from './autotune.js';
import { outboundSource, type StackClientOptions, stackClient } from './client.js';
import { clusterWorkerParts } from './cluster-worker.js';
import { EndpointMatcher, type EndpointName } from './endpoints.js';
import { envBoolean, envInteger, readEnv } from './env.js';
import { DEFAULT_ORDER, type LayerName } from './layers.js';
import { type Monitoring, type MonitoringOptions, startMonitoring } from './monitoring.js';
import { type OffloadHandler, type OffloadOptions, offload } from './offload.js';
import { earlyOf, type GateParts, gateServer, isGated, RefusalGate } from './refusal-gate.js';
import { createSettings, redisSettingsStore, type StackSettings } from './settings.js';
import { staticCors, staticHeaders } from './static-headers.js';

const PKG = 'perfstack';

/** Where the stack's own endpoints live; they are never cached, limited or guarded. */
export interface InternalPaths {
  /** @default '/dashboard' */
  readonly dashboard?: string;
  /** @default '/metrics' */
  readonly metrics?: string;
  /** @default '/health' */
  readonly health?: string;
}

/** Options of the dashboard, `/metrics` and `/health` endpoints. */
export type StackDashboardOptions = Pick<
  DashboardOptions,
  'auth' | 'streamInterval' | 'title' | 'instanceId' | 'profiling' | 'report' | 'leakWatch' | 'csrfSecret'
>;

/** Options for {@link performanceStack}. Every layer is on by default; `false` turns it off. */
export interface PerformanceStackOptions {
  /** Request timing, Server-Timing, Prometheus metrics, rolling percentiles, alerts. @default true */
  readonly timing?: TimingOptions | boolean;
  /** Response cache (L1 memory, L2 Redis when `redis` is set). @default true */
  readonly cache?: ResponseCacheOptions | boolean;
  /** Request body, URL and header size limits. @default true */
  readonly sizeLimit?: SizeLimitOptions | boolean;
  /** Access log with redaction and request ids (stdout by default). @default true */
  readonly logger?: AccessLogOptions | boolean;
  /** Security headers (helmet's defaults). @default true */
  readonly helmet?: HelmetOptions | boolean;
  /**
   * CORS. `true` allows no cross-origin access until origins are configured (the secure
   * default); pass `{ origin: [...] }` or set `PERFSTACK_CORS_ORIGINS`. @default true
   */
  readonly cors?: CorsOptions | boolean;
  /** Rate limits (memory, or Redis when `redis` is set). @default true */
  readonly rateLimit?: RateLimitOptions | boolean;
  /** Per-route circuit breakers, timeouts, bulkheads and overload shedding. @default true */
  readonly circuitBreaker?: CircuitBreakerOptions | boolean;
  /**
   * The data cache, `stack.data` (`createCache()` on the shared registry, logger and Redis):
   * `get`/`set`/`wrap`/`invalidate`, the default cache of `memoize`/`@Memoize`, one tag bus
   * with the response cache. Not a layer: it serves the app's code, not requests.
   * @default true
   */
  readonly data?: DataCacheOptions | boolean;
  /** Shared Redis: a URL, a node-redis client, options, or a `SharedRedis`. @default process.env.REDIS_URL */
  readonly redis?: string | RedisClient | SharedRedisOptions | SharedRedis | false;
  /** Dashboard, `/metrics` and `/health` options (access control). Loopback-only by default. */
  readonly dashboard?: StackDashboardOptions;
  /** Where the dashboard, `/metrics` and `/health` are mounted. */
  readonly paths?: InternalPaths;
  /**
   * The layer order. Changing it is allowed only on purpose: pass all eight names.
   * @default ['timing','cache','sizeLimit','logger','helmet','cors','rateLimit','circuitBreaker']
   */
  readonly order?: readonly LayerName[];
  /** The metrics registry. @default a new Registry */
  readonly registry?: Registry;
  /** Where serve-time problems are reported. @default console */
  readonly log?: PerfstackLogger;
  /** Read `REDIS_URL` and `PERFSTACK_*` for options left unset. @default true */
  readonly env?: boolean | NodeJS.ProcessEnv;
  /**
   * Serve the dashboard, `/metrics` and `/health` on a second port as well (see
   * `stack.monitoring`); `MONITORING_PORT` / `MONITORING_HOST` set it from the environment.
   * @default undefined (no second port)
   */
  readonly monitoring?: MonitoringOptions | false;
  /**
   * Opt-in auto-tuning over `stack.settings` (autotune.ts): only safe, reversible changes (a
   * ttl raise on a tagged cached route, a rate-limit raise while every route is healthy),
   * each rolled back when a route's p99 or error rate worsens within the window.
   * @default false
   */
  readonly autoTune?: AutoTuneOptions | boolean;
}

/**
 * The preset's rate limit when none is configured: 1000 requests per client per minute.
 * One ordinary user must never be refused: a page with 60 assets (each one a request when
 * the app serves its own static files), reloaded five times a minute, is about 300; a
 * household or an office behind one NAT address is several such users. Abuse at scale is
 * still bounded (17 requests a second per address, sustained), and `rateLimit.limit`
 * (or `PERFSTACK_RATE_LIMIT`) sets the limit an app needs.
 */
export const DEFAULT_RATE_LIMIT = Object.freeze({ limit: 1000, windowMs: 60_000 });

const KNOWN_OPTIONS = [
  ...DEFAULT_ORDER,
  'data',
  'redis',
  'dashboard',
  'paths',
  'order',
  'registry',
  'log',
  'env',
  'monitoring',
  'autoTune',
];

/** The layers the stack built (absent when turned off). */
export interface StackLayers {
  readonly timing?: Timing;
  readonly cache?: ResponseCache;
  readonly sizeLimit?: SizeLimiter;
  readonly logger?: AccessLogger;
  readonly rateLimit?: RateLimiter;
  readonly circuitBreaker?: CircuitBreakerMiddleware;
}

/** What {@link performanceStack} returns: the composed middleware plus the stack's handles. */
export interface PerformanceStack extends Middleware {
  /** The dashboard, to mount: `app.use('/dashboard', stack.dashboard())`. */
  dashboard(options?: StackDashboardOptions & { readonly basePath?: string }): DashboardMiddleware;
  /** Prometheus text: `app.get('/metrics', stack.metrics())`. */
  metrics(): MetricsHandler;
  /** `{ status, checks }`, 503 when down: `app.get('/health', stack.health())`. */
  health(): HealthHandler;
  /** The response cache (`invalidate`, `stats`). */
  readonly cache: ResponseCache;
  /**
   * The data cache (`get`, `set`, `getMany`, `setMany`, `wrap`, `invalidate`, `warm`,
   * `namespace`): one tag bus with {@link PerformanceStack.cache}. Reading it throws a
   * TypeError when the stack was built with `data: false`.
   */
  readonly data: DataCache;
  /** The monitoring port's server (`monitoring` / `MONITORING_PORT`), else `undefined`. */
  readonly monitoring: Monitoring | undefined;
  /** Every layer that is on. */
  readonly layers: StackLayers;
  /** The layer order in force. */
  readonly order: readonly LayerName[];
  /** The shared Redis connection, when configured. */
  readonly redis: SharedRedis | undefined;
  /** The shared metrics registry. */
  readonly registry: Registry;
  /** A resilient outbound HTTP client on the shared registry, closed with the stack (see client.ts). */
  client(name: string, options: StackClientOptions): Client;
  /** `offload()` on the shared registry and logger, closed with the stack; its pool is on the dashboard. */
  offload(modulePath: string | URL, options?: Omit<OffloadOptions, 'registry' | 'logger' | 'redis'>): OffloadHandler;
  /** The internal paths in force. */
  readonly paths: Required<InternalPaths>;
  /**
   * The runtime settings (settings.ts): `list()`, `get(path)`, `set({ 'rateLimit.limit': 300 })`,
   * `undo(id)`, `audit()`; changes reach every instance through Redis (or the cluster hub).
   */
  readonly settings: StackSettings;
  /** The auto-tuning loop (`autoTune` option): its decisions and `tick()`; `undefined` when off. */
  readonly autoTune: AutoTune | undefined;
  /**
   * The stack's endpoint `req` is routed to, by the routing settings of the app handling it
   * (Express's `case sensitive routing` and `strict routing`; any case and one trailing slash
   * elsewhere), or `undefined`. Such requests skip the cache, the rate limits, the breakers,
   * the timing windows and the access log (unless `logger.logEndpoints`).
   */
  endpointOf(req: IncomingMessage): EndpointName | undefined;
  /**
   * Express error middleware: puts the error an app passed to `next(err)` or threw on the
   * request's access-log line (its own stack, redacted), then passes it on. Needed only by an
   * app without an error handler of its own (core records the error when it reaches one):
   * `app.use(stack.errorHandler)` after the routes. Koa and `perfstack/node` need nothing.
   */
  readonly errorHandler: (error: unknown, req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;
  /**
   * Waits for the requests in flight (up to `logger.closeTimeout`, so each one served gets
   * its access-log line), then closes every layer, timer and the Redis connection, and
   * flushes the log. Safe to call twice.
   */
  close(): Promise<void>;
}

function layerOptions<T extends object>(value: T | boolean | undefined, name: string): T | undefined {
  if (value === undefined || value === true) return {} as T;
  if (value === false) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${PKG}: option "${name}" must be an options object or a boolean, got ${typeof value}`);
  }
  return value;
}

function checkOrder(order: readonly LayerName[] | undefined): readonly LayerName[] {
  if (order === undefined) return DEFAULT_ORDER;
  const valid =
    Array.isArray(order) &&
    order.length === DEFAULT_ORDER.length &&
    new Set(order).size === DEFAULT_ORDER.length &&
    order.every((name) => (DEFAULT_ORDER as readonly string[]).includes(name));
  if (!valid) {
    throw new TypeError(`${PKG}: option "order" must list each of ${DEFAULT_ORDER.join(', ')} exactly once`);
  }
  return [...order];
}

function normalisePath(path: string | undefined, fallback: string, name: string): string {
  const value = path ?? fallback;
  if (typeof value !== 'string' || !value.startsWith('/') || value.length < 2 || value.endsWith('/')) {
    throw new TypeError(`${PKG}: option "paths.${name}" must be a path like "${fallback}", got ${String(value)}`);
  }
  return value;
}

function makeRedis(
  input: PerformanceStackOptions['redis'],
  envUrl: string | undefined,
  log: PerfstackLogger,
): { redis: SharedRedis | undefined; owned: boolean } {
  if (input === false) return { redis: undefined, owned: false };
  if (input instanceof SharedRedis) return { redis: input, owned: false };
  if (input === undefined) {
    return envUrl === undefined
      ? { redis: undefined, owned: false }
      : { redis: createSharedRedis({ url: envUrl, logger: log }), owned: true };
  }
  if (typeof input === 'string' || isRedisClient(input)) return { redis: createSharedRedis(input), owned: true };
  return { redis: createSharedRedis({ logger: log, ...input }), owned: true };
}

/** Whether helmet, with these options, removes `X-Powered-By` (its `xPoweredBy`/`hidePoweredBy`, on by default). */
function helmetPoweredByRemoval(options: HelmetOptions): boolean {
  const o = options as { xPoweredBy?: unknown; hidePoweredBy?: unknown };
  return o.xPoweredBy !== false && o.hidePoweredBy !== false;
}

/**
 * Builds the whole stack: timing → cache → size limit → logger → helmet → CORS → rate
 * limit → circuit breaker, each on by default and configurable, sharing one registry,
 * one Redis connection and one logger. The dashboard, `/metrics` and `/health` are
 * exempt from the cache, the rate limits and the breakers.
 *
 * @param options per-layer options (`false` turns a layer off), `redis`, `dashboard`, `paths`
 * @returns a Connect middleware with `.dashboard()`, `.metrics()`, `.health()`, `.cache`, `.close()`
 * @throws {TypeError} on an unknown option, a bad layer option, or a partial `order`
 * @example
 * const stack = performanceStack({ redis: process.env.REDIS_URL });
 * app.use(stack);
 * app.use('/dashboard', stack.dashboard());
 * app.get('/metrics', stack.metrics());
 * app.get('/health', stack.health());
 */
export function performanceStack(options?: PerformanceStackOptions): PerformanceStack {
  const opts = checkOptionsObject(PKG, 'performanceStack', options, KNOWN_OPTIONS) as PerformanceStackOptions;
  const env = opts.env === false ? {} : readEnv(opts.env === true || opts.env === undefined ? process.env : opts.env);
  const disabled = new Set(
    (env.PERFSTACK_DISABLE ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  // The seed documents' names: only `false` changes anything (a layer is on by default).
  if (envBoolean(env, 'PERFORMANCE_CACHE_ENABLED') === false) disabled.add('cache');
  if (envBoolean(env, 'PERFORMANCE_MONITORING_ENABLED') === false) disabled.add('timing');
  const dashboardEnabled = envBoolean(env, 'DASHBOARD_ENABLED') !== false;
  const cacheMiB = envInteger(env, 'MEMORY_CACHE_SIZE_MB', 1, 1024 * 1024);
  const monitoringOptions = readMonitoring(opts.monitoring, env);
  const autoTuneConfig = resolveAutoTune(opts.autoTune);
  const log = opts.log ?? consoleLogger;
  const order = checkOrder(opts.order);
  const paths: Required<InternalPaths> = {
    dashboard: normalisePath(opts.paths?.dashboard, '/dashboard', 'dashboard'),
    metrics: normalisePath(opts.paths?.metrics, '/metrics', 'metrics'),
    health: normalisePath(opts.paths?.health, '/health', 'health'),
  };
  const endpoints = new EndpointMatcher({ ...paths, dashboard: dashboardEnabled ? paths.dashboard : undefined });
  const enabled = <T extends object>(name: LayerName, value: T | boolean | undefined): T | undefined =>
    disabled.has(name) ? undefined : layerOptions(value, name);

  const registry = opts.registry ?? createRegistry();
  const { redis, owned: ownsRedis } = makeRedis(opts.redis, env.REDIS_URL, log);
  // In a worker of a `clusterPrimary()` (perfstack/cluster): undefined everywhere else.
  const clusterParts = clusterWorkerParts(registry);
  const shared = { registry, logger: log };
  const built: Partial<Record<LayerName, Middleware>> = {};
  const layers: {
    -readonly [K in keyof StackLayers]: StackLayers[K];
  } = {};
  const closers: Array<() => Promise<void>> = [];
  let data: DataCache | undefined;
  let corsKind: GateParts['corsKind'] = 'fixed';
  let corsMiddleware: Middleware | undefined;
  let hidePoweredBy = false;

  try {
    const timingOptions = enabled<TimingOptions>('timing', opts.timing);
    if (timingOptions) {
      layers.timing = timing({ ...shared, ...timingOptions });
      built.timing = layers.timing;
    }
    const cacheOptions = enabled<ResponseCacheOptions>('cache', opts.cache);
    if (cacheOptions) {
      layers.cache = responseCache({
        ...shared,
        ...(redis ? { redis } : {}),
        // A cluster without Redis: invalidations reach every worker through the hub.
        ...(!redis && clusterParts ? { fleetBus: clusterParts.cacheBus } : {}),
        ...(env.PERFSTACK_CACHE_TTL ? { ttl: env.PERFSTACK_CACHE_TTL } : {}),
        ...(cacheMiB === undefined ? {} : { maxBytes: cacheMiB * 1024 * 1024 }),
        ...cacheOptions,
      });
      built.cache = layers.cache;
    }
    const sizeOptions = enabled<SizeLimitOptions>('sizeLimit', opts.sizeLimit);
    if (sizeOptions) {
      layers.sizeLimit = sizeLimit({
        ...shared,
        ...(env.PERFSTACK_BODY_LIMIT ? { limit: env.PERFSTACK_BODY_LIMIT } : {}),
        ...sizeOptions,
      });
      built.sizeLimit = layers.sizeLimit;
    }
    const loggerOptions = enabled<AccessLogOptions>('logger', opts.logger);
    if (loggerOptions) {
      layers.logger = accessLog({
        // The endpoints never reach the logger unless `logEndpoints` (see `endpointChain`).
        ignore: [],
        ...(env.PERFSTACK_LOG_LEVEL ? { level: env.PERFSTACK_LOG_LEVEL as AccessLogOptions['level'] } : {}),
        ...loggerOptions,
      });
      built.logger = layers.logger;
    }
    const helmetOptions = enabled<HelmetOptions>('helmet', opts.helmet);
    hidePoweredBy = helmetOptions !== undefined && helmetPoweredByRemoval(helmetOptions);
    // helmet's headers worked out once and replayed per request (static-headers.ts).
    if (helmetOptions) built.helmet = staticHeaders(helmet(helmetOptions) as unknown as Middleware, helmetOptions);
    const corsOptions = enabled<CorsOptions>('cors', opts.cors);
    if (corsOptions) {
      const envOrigins = env.PERFSTACK_CORS_ORIGINS?.split(',').map((s) => s.trim());
      const resolvedCors: CorsOptions = { origin: envOrigins ?? false, ...corsOptions };
      corsMiddleware = cors(resolvedCors) as unknown as Middleware;
      corsKind = corsKindOf(resolvedCors.origin);
      // A fixed origin's headers recorded once and replayed on every non-preflight request.
      built.cors = staticCors(corsMiddleware, corsKind === 'fixed');
    }
    const limitOptions = enabled<RateLimitOptions>('rateLimit', opts.rateLimit);
    if (limitOptions) {
      const configured = limitOptions as { limits?: unknown; window?: unknown; windowMs?: unknown };
      layers.rateLimit = rateLimit({
        ...shared,
        ...(redis ? { redis } : {}),
        ...(configured.limits === undefined ? { limit: DEFAULT_RATE_LIMIT.limit } : {}),
        ...(configured.limits === undefined &&
        configured.window === undefined &&
        configured.windowMs === undefined &&
        !env.PERFSTACK_RATE_LIMIT_WINDOW
          ? { windowMs: DEFAULT_RATE_LIMIT.windowMs }
          : {}),
        ...(env.PERFSTACK_RATE_LIMIT ? { limit: Number(env.PERFSTACK_RATE_LIMIT) } : {}),
        ...(env.PERFSTACK_RATE_LIMIT_WINDOW ? { window: env.PERFSTACK_RATE_LIMIT_WINDOW } : {}),
        ...(env.PERFSTACK_TRUST_PROXY ? { trustProxy: parseTrust(env.PERFSTACK_TRUST_PROXY) } : {}),
        ...limitOptions,
      } as RateLimitOptions);
      built.rateLimit = layers.rateLimit;
    }
    const breakerOptions = enabled<CircuitBreakerOptions>('circuitBreaker', opts.circuitBreaker);
    if (breakerOptions) {
      layers.circuitBreaker = circuitBreaker({
        ...shared,
        ...(env.PERFSTACK_TIMEOUT ? { timeout: env.PERFSTACK_TIMEOUT } : {}),
        ...breakerOptions,
      });
      built.circuitBreaker = layers.circuitBreaker;
    }
    const dataOptions = layerOptions<DataCacheOptions>(opts.data, 'data');
    if (dataOptions) data = createCache({ ...shared, ...(redis ? { redis } : {}), ...dataOptions });
  } catch (error) {
    // A bad option in one layer must not leave the others' timers or Redis running.
    for (const layer of Object.values(layers)) void (layer as { close?: () => Promise<void> }).close?.();
    void data?.close();
    if (ownsRedis) void redis?.close();
    throw error;
  }

  for (const layer of Object.values(layers)) {
    const close = (layer as { close?: () => Promise<void> }).close;
    if (close) closers.push(() => close.call(layer));
  }

  if (data !== undefined) {
    const own = data;
    // Without Redis, one tag bus in this process; with Redis the invalidation stream is it.
    const unlink = layers.cache === undefined ? () => {} : linkTagBus(layers.cache, own);
    // memoize()/@Memoize use the stack's data cache unless given one (the last stack built).
    setDefaultDataCache(own);
    closers.push(async () => {
      unlink();
      if (defaultDataCache() === own) setDefaultDataCache(undefined);
      await own.close();
    });
  }

  const members = order.flatMap((name) => (built[name] ? [built[name] as Middleware] : []));
  // The early 413 of a request the gate left to the chain (its access-log line is due, or no
  // gate): decided after the last layer, before the app, as the gate would (size-limit's README).
  const tooLarge =
    layers.sizeLimit === undefined ? undefined : earlyOf<EarlyTooLarge>(layers.sizeLimit, EARLY_TOO_LARGE);
  if (tooLarge !== undefined) members.push(earlyTooLarge(tooLarge));
  // `app;dur=` in Server-Timing: the time from the last layer to the app's response head.
  if (layers.timing) members.push(appTiming());
  const chain = compose(members);
  // The stack's endpoints pass only the layers that protect any endpoint (size limits,
  // security headers, CORS) and the access log when asked for: no cache, no rate limit, no
  // breaker, no timing windows. Decided once per request, so every layer agrees.
  const endpointLayers = new Set<LayerName>(['sizeLimit', 'helmet', 'cors']);
  if (layers.logger !== undefined && (opts.logger as AccessLogOptions | undefined)?.logEndpoints === true) {
    endpointLayers.add('logger');
  }
  const endpointChain = compose(
    order.flatMap((name) => (endpointLayers.has(name) && built[name] ? [built[name] as Middleware] : [])),
  );
  // Cache hits from fresh entries and refusals (429, an open breaker's 503) answered before
  // the chain, and before Express itself where the stack is the app's first middleware
  // (refusal-gate.ts).
  const gate =
    order === DEFAULT_ORDER
      ? RefusalGate.build({
          timing: layers.timing,
          cache: layers.cache,
          sizeLimit: layers.sizeLimit,
          logger: layers.logger,
          helmet: built.helmet,
          cors: corsMiddleware,
          corsKind,
          rateLimit: layers.rateLimit,
          circuitBreaker: layers.circuitBreaker,
          endpoints,
          log,
          hidePoweredBy,
        })
      : undefined;
  /** The server whose requests the stack saw last: the gate is put in front of Express once per server. */
  let gateSeen: unknown;
  const stack = function performanceStack(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    warmShapes(req, res);
    // helmet removes Express's X-Powered-By, but sits behind the cache: removed here, before
    // the cache, so a hit carries the stored headers without it, as the miss did.
    if (hidePoweredBy) res.removeHeader('x-powered-by');
    ensureRequestId(req, res);
    if (endpoints.match(req) !== undefined) {
      endpointChain(req, res, next);
      return;
    }
    if (gate !== undefined) {
      const server = (req.socket as { server?: unknown } | null | undefined)?.server;
      if (server !== gateSeen) {
        gateSeen = server;
        gateServer(gate, stack, req);
      }
      if (!isGated(server) && gate.answer(req, res, undefined)) return;
    }
    chain(req, res, next);
  } as PerformanceStack;

  const dashboardOptions: StackDashboardOptions = {
    ...(env.PERFSTACK_DASHBOARD_CSRF_SECRET ? { csrfSecret: env.PERFSTACK_DASHBOARD_CSRF_SECRET } : {}),
    ...opts.dashboard,
  };
  const envAuth = dashboardAuthFromEnv(env);
  const access = {
    ...(envAuth ? { auth: envAuth } : {}),
    ...(dashboardOptions.auth ? { auth: dashboardOptions.auth } : {}),
  };
  const healthChecks: Record<string, HealthSource> = {};
  if (redis) healthChecks.redis = redisHealthCheck(redis);
  if (layers.cache) healthChecks.cache = layers.cache;
  if (data) healthChecks.data = data;
  if (layers.rateLimit) healthChecks.rateLimit = layers.rateLimit;
  if (layers.circuitBreaker) healthChecks.circuitBreaker = layers.circuitBreaker;
  if (clusterParts !== undefined) healthChecks.cluster = clusterParts.health;
  let health: HealthHandler | undefined;
  const getHealth = () => {
    health ??= healthHandler({ checks: healthChecks, logger: log, ...access });
    return health;
  };

  const settings = createSettings({
    layers,
    bus: redis ?? clusterParts?.fleetBus,
    ...(redis ? { store: redisSettingsStore(redis) } : clusterParts ? { store: clusterParts.settingsStore } : {}),
    log,
    ...(opts.dashboard?.instanceId === undefined ? {} : { instanceId: opts.dashboard.instanceId }),
  });
  const autoTune =
    autoTuneConfig === undefined ? undefined : startAutoTune(autoTuneConfig, settings, layers, layers.timing, log);
  if (autoTune !== undefined) Object.defineProperty(settings, 'autoTune', { value: autoTune });
  const opened: Array<{ close(): Promise<void> }> = [];
  let closing: Promise<void> | undefined;
  const outbound = stackClient({ registry, logger: log }, healthChecks, opened);
  Object.defineProperties(stack, {
    dashboard: {
      value: (extra: StackDashboardOptions & { readonly basePath?: string } = {}) => {
        const mw = dashboard({
          ...dashboardOptions,
          ...access,
          ...extra,
          sources: {
            timing: layers.timing,
            cache: layers.cache,
            data,
            rateLimit: layers.rateLimit,
            circuitBreaker: layers.circuitBreaker,
            sizeLimit: layers.sizeLimit,
            outbound: outboundSource(outbound.clients, registry),
            health: getHealth(),
          },
          registry,
          logger: log,
          settings,
          ...(redis ? { redis } : clusterParts ? { fleetBus: clusterParts.fleetBus } : {}),
        });
        opened.push(mw);
        if (dashboardEnabled) return mw;
        // DASHBOARD_ENABLED=false: the data stays readable in code; HTTP passes on to the app.
        return Object.assign(
          function dashboardDisabled(_req: IncomingMessage, _res: ServerResponse, next: NextFunction) {
            next();
          },
          {
            snapshot: mw.snapshot,
            report: mw.report,
            leakWatch: mw.leakWatch,
            deliverReport: mw.deliverReport,
            close: mw.close,
          },
        ) as DashboardMiddleware;
      },
    },
    metrics: {
      value: () =>
        metricsHandler({ registry: (clusterParts?.metricsRegistry ?? registry) as Registry, logger: log, ...access }),
    },
    health: { value: getHealth },
    client: { value: outbound.client },
    offload: {
      value: (modulePath: string | URL, options: Omit<OffloadOptions, 'registry' | 'logger' | 'redis'> = {}) => {
        const handler = offload(modulePath, { ...options, registry, logger: log });
        opened.push(handler);
        return handler;
      },
    },
    cache: { value: layers.cache ?? disabledCache(), enumerable: true },
    data: {
      get: () => {
        if (data === undefined) throw new TypeError(`${PKG}: stack.data is off (the stack was built with data: false)`);
        return data;
      },
      enumerable: true,
    },
    layers: { value: Object.freeze({ ...layers }), enumerable: true },
    order: { value: Object.freeze([...order]), enumerable: true },
    redis: { value: redis, enumerable: true },
    registry: { value: registry, enumerable: true },
    paths: { value: Object.freeze(paths), enumerable: true },
    settings: { value: settings, enumerable: true },
    autoTune: { value: autoTune, enumerable: true },
    endpointOf: { value: (req: IncomingMessage) => endpoints.match(req) },
    errorHandler: {
      value: function perfstackErrorHandler(
        error: unknown,
        req: IncomingMessage,
        _res: ServerResponse,
        next: NextFunction,
      ): void {
        layers.logger?.recordError(req, error);
        next(error);
      },
    },
    close: {
      value: () => {
        closing ??= (async () => {
          // The access log first: it waits for the requests in flight, which the other
          // layers (and Redis) still serve meanwhile, then flushes their lines.
          gate?.close();
          autoTune?.close();
          settings.close();
          await layers.logger?.close();
          await Promise.allSettled([...opened.map((o) => o.close()), ...closers.map((close) => close())]);
          await monitoring?.close();
          await health?.close();
          clusterParts?.close();
          if (ownsRedis) await redis?.close();
        })();
        return closing;
      },
    },
  });
  // Last: the monitoring server serves the endpoints of the finished stack.
  const monitoring = monitoringOptions === undefined ? undefined : startMonitoring(stack, monitoringOptions);
  Object.defineProperty(stack, 'monitoring', { value: monitoring, enumerable: true });
  return stack;
}

/** What the early refusals need to know of CORS's `origin` setting. */
function corsKindOf(origin: CorsOptions['origin']): GateParts['corsKind'] {
  if (typeof origin === 'function') return 'async';
  // undefined, false, '*' or one origin: the same headers whatever the request's Origin.
  return origin === undefined || origin === false || typeof origin === 'string' ? 'fixed' : 'request';
}

/** `monitoring`, else `MONITORING_PORT`/`MONITORING_HOST`; `false` ignores the environment. */
function readMonitoring(
  value: MonitoringOptions | false | undefined,
  env: Readonly<Record<string, string>>,
): Required<MonitoringOptions> | undefined {
  if (value === false) return undefined;
  if (value === undefined) {
    const port = envInteger(env, 'MONITORING_PORT', 0, 65_535);
    return port === undefined ? undefined : { port, host: env.MONITORING_HOST ?? '127.0.0.1' };
  }
  const o = checkOptionsObject(PKG, 'performanceStack({ monitoring })', value, ['port', 'host']);
  const port: unknown = o.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new TypeError(`${PKG}: monitoring.port must be a whole number from 0 to 65535, got ${String(port)}`);
  }
  if (o.host !== undefined && (typeof o.host !== 'string' || o.host === '')) {
    throw new TypeError(`${PKG}: monitoring.host must be a non-empty address string, got ${String(o.host)}`);
  }
  return { port, host: o.host ?? env.MONITORING_HOST ?? '127.0.0.1' };
}

function parseTrust(value: string): boolean | number | string | string[] {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^\d+$/.test(value)) return Number(value);
  return value.includes(',') ? value.split(',').map((s) => s.trim()) : value;
}

function dashboardAuthFromEnv(env: Readonly<Record<string, string>>): DashboardOptions['auth'] | undefined {
  if (env.PERFSTACK_DASHBOARD_TOKEN) return { token: env.PERFSTACK_DASHBOARD_TOKEN };
  if (env.PERFSTACK_DASHBOARD_USER && env.PERFSTACK_DASHBOARD_PASSWORD) {
    return { username: env.PERFSTACK_DASHBOARD_USER, password: env.PERFSTACK_DASHBOARD_PASSWORD };
  }
  return undefined;
}

/** `stack.cache` when the cache layer is off: stats are zero and invalidation clears nothing. */
function disabledCache(): ResponseCache {
  const empty = {
    hits: 0,
    misses: 0,
    stale: 0,
    bypass: 0,
    evictions: 0,
    entries: 0,
    bytes: 0,
    hitRatio: 0,
    routes: {},
  };
  const off = ((_req: IncomingMessage, _res: ServerResponse, next: NextFunction) => next()) as unknown as ResponseCache;
  Object.assign(off, {
    stats: () => empty,
    invalidate: async () => 0,
    warm: async () => 0,
    health: () => ({ status: 'ok', detail: 'cache layer is off' }),
    close: async () => {},
  });
  return off;
}

/** The stack's last layer when size-limit's early 413 is on: a declared body over every limit is refused here. */
function earlyTooLarge(tooLarge: EarlyTooLarge): Middleware {
  return function sizeLimitEarly(req: IncomingMessage, _res: ServerResponse, next: NextFunction): void {
    if (tooLarge.wouldRefuse(req) && decideBodyLimit(req)) return;
    next();
  };
}
