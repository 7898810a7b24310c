/**
 * `timing()`: the outermost layer of the stack. It starts the clock before any other layer
 * (so cache hits are measured too), adds `Server-Timing: total;dur=` and optionally
 * `X-Response-Time` just before the head goes out, and when the response ends records the
 * request in Prometheus (prom-client) and in the rolling windows the dashboard and the
 * alert rules read.
 *
 * Per request: one clock read at arrival, one before the head, one at the end; one small
 * state object in a WeakMap keyed by the response; two shared listeners (no per-request closures); label
 * objects interned per (method, route, status); O(1) recording into the current slot.
 * Process figures and alert rules run on an `unref()`ed timer, never on the request path.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  addServerTiming,
  type ClosableMiddleware,
  type Disposable,
  getRoute,
  isUncacheable,
  OnceLogger,
  onBeforeHead,
  type ProcessStats,
  pathOf,
  pathPrefixMatcher,
  pathPrefixRoute,
  type Registry,
  refusalOf,
  UNMATCHED_ROUTE,
  warmShapes,
} from '@perfstack/core';
import { AlertEngine } from './alerts/engine.js';
import { TimingEmitter, type TimingEventName, type TimingEvents } from './events.js';
import { LabelTable, type RequestKind } from './labels.js';
import { HttpMetrics } from './metrics.js';
import { resolveTimingConfig, type TimingOptions } from './options.js';
import { ProcessSampler } from './process-sampler.js';
import type { DetailedTimingSnapshot } from './snapshot.js';
import { CacheOutcome, RollingWindows } from './windows.js';

/** The timing middleware and what it exposes. */
export interface Timing extends ClosableMiddleware {
  /** The rolling figures, routes, process stats and firing alerts, as the dashboard reads them. */
  snapshot(): DetailedTimingSnapshot;
  /** Listens for `alert` (a rule started firing) or `resolved` (it stopped). */
  on<E extends TimingEventName>(event: E, listener: TimingEvents[E]): Disposable;
  /** Samples the process and evaluates the alert rules now (the timer does it every `sampleInterval`). */
  sample(): void;
  /** The prom-client registry the metrics are in. */
  readonly registry: Registry;
  /** Stops the timer and the event-loop monitor and drops listeners; requests then pass unmeasured. */
  close(): Promise<void>;
  /**
   * @internal Records a request the stack answered before its chain ran (perfstack's early
   * refusals) in the metrics and the rolling windows, as if it had passed this layer; no
   * `Server-Timing` (the response is written whole, without the hooks).
   *
   * @param startedAt the time it arrived, from {@link Timing.now}
   * @param responseBytes the body's size, or -1
   * @param cacheHit answered from the cache (perfstack's early hits): counted as a hit in the windows
   */
  recordAnswered(
    req: IncomingMessage,
    route: string,
    status: number,
    startedAt: number,
    responseBytes: number,
    cacheHit?: boolean,
  ): void;
  /** @internal The clock `recordAnswered` takes its start from (ms). */
  now(): number;
  /**
   * @internal What this layer adds to a response head, for answers written without the hooks
   * (perfstack's early hits): `Server-Timing: total;dur=` and the `X-Response-Time`-style
   * header's name, if any; both off once closed (the layer then passes requests unmeasured).
   */
  headFields(): { readonly serverTiming: boolean; readonly responseTimeHeader: string | undefined };
}

/** Per-request state, in an instance-private WeakMap keyed by the response. */
interface RequestState {
  readonly start: number;
  readonly req: IncomingMessage;
  readonly measured: boolean;
  kind: RequestKind | undefined;
  cache: CacheOutcome;
  responseBytes: number;
}

const EMPTY_PROCESS: ProcessStats = {
  rssBytes: 0,
  heapUsedBytes: 0,
  heapTotalBytes: 0,
  heapLimitBytes: 0,
  eventLoopDelayMs: { p50: 0, p99: 0, max: 0 },
  cpuPercent: 0,
  uptimeSeconds: 0,
};

/**
 * Reads `X-Cache` as the cache layer sets it: HIT and STALE are hits, MISS a miss, BYPASS
 * neither; a MISS whose response the cache may not store (core's `isUncacheable`) is no
 * cacheable lookup either, so the per-route hit ratio counts cacheable lookups only.
 */
function cacheOutcome(res: ServerResponse): CacheOutcome {
  const header = res.getHeader('x-cache');
  if (typeof header !== 'string') return CacheOutcome.None;
  // The cache layer writes these in capitals; anything else gets one case-folding.
  const value = header === 'HIT' || header === 'MISS' || header === 'STALE' ? header : header.trim().toUpperCase();
  if (value === 'HIT' || value === 'STALE') return CacheOutcome.Hit;
  return value === 'MISS' && !isUncacheable(res) ? CacheOutcome.Miss : CacheOutcome.None;
}

/**
 * The route a request is filed under: its pattern; for a refusal no router named (the stack
 * refused it before any router ran, or no route matches), its path prefix (`/api/*`), never
 * `unmatched` when the path can tell; otherwise {@link UNMATCHED_ROUTE}.
 */
function routeOf(req: IncomingMessage, res: ServerResponse): string {
  const route = getRoute(req);
  if (route !== undefined) return route;
  return refusalOf(res) === undefined ? UNMATCHED_ROUTE : pathPrefixRoute(req.url);
}

/** A Content-Length header as a byte count, or -1 when absent or malformed. */
function contentLength(header: unknown): number {
  if (typeof header === 'number') return header >= 0 ? header : -1;
  if (typeof header !== 'string' || header === '') return -1;
  const n = Number(header);
  return Number.isInteger(n) && n >= 0 ? n : -1;
}

/**
 * Creates the timing middleware: Server-Timing, Prometheus metrics by route pattern,
 * rolling 1/5/15-minute windows with p50/p95/p99, a per-route table and alert rules.
 * Mount it first (outermost), so every other layer and cache hits are measured.
 *
 * @param options see {@link TimingOptions}; every option is optional
 * @returns a Connect-style middleware with `snapshot()`, `on()`, `sample()`, `registry` and `close()`
 * @throws {TypeError} on an unknown option or a value of the wrong type (also when called as `app.use(timing)`)
 * @throws {RangeError} on a value out of range
 * @example
 * const t = timing({ exclude: ['/metrics'] });
 * app.use(t);
 * app.get('/metrics', async (_req, res) => res.type('text/plain').send(await t.registry.metrics()));
 * t.on('alert', (alert) => console.warn(alert.message, alert.recommendation));
 */
export function timing(options?: TimingOptions): Timing {
  const config = resolveTimingConfig(options);
  const { clock, exclude, serverTiming, responseTimeHeader } = config;
  const log = new OnceLogger(config.logger);
  // Per-request state lives in a WeakMap, not on the response: on Express's responses (their
  // prototype is swapped per request) a property store was measured at ~1.5 µs, a WeakMap
  // entry at a fraction of that.
  const states = new WeakMap<ServerResponse, RequestState>();
  const startedAt = clock.now();
  const labels = new LabelTable(config.maxRoutes);
  const windows = new RollingWindows(startedAt);
  const metrics = config.metrics
    ? new HttpMetrics({
        registry: config.registry,
        prefix: config.prefix,
        buckets: config.buckets,
        defaultMetrics: config.defaultMetrics,
      })
    : undefined;
  const sampler = config.sampleProcess === undefined ? new ProcessSampler() : undefined;
  const sampleProcess = config.sampleProcess ?? (() => (sampler as ProcessSampler).sample());
  const engine = new AlertEngine(config.rules, log);
  const emitter = new TimingEmitter(log);
  let processStats = EMPTY_PROCESS;
  let inFlight = 0;
  let totalRequests = 0;
  let closed = false;

  const excluded = pathPrefixMatcher(exclude);
  const isExcluded = (url: string | undefined): boolean => excluded(pathOf(url));

  const onHead = (res: ServerResponse): void => {
    const state = states.get(res);
    if (state === undefined) return;
    if (serverTiming || responseTimeHeader !== undefined) {
      const ms = clock.now() - state.start;
      if (serverTiming) addServerTiming(res, 'total', ms);
      if (responseTimeHeader !== undefined) res.setHeader(responseTimeHeader, `${ms.toFixed(3)}ms`);
    }
    // Express resets req.baseUrl once the route is done, so the pattern is read now.
    state.kind = labels.kind(state.req.method ?? 'GET', routeOf(state.req, res), res.statusCode);
    state.cache = cacheOutcome(res);
    if (metrics !== undefined) state.responseBytes = contentLength(res.getHeader('content-length'));
  };

  function onClose(this: ServerResponse): void {
    const state = states.get(this);
    if (state === undefined) return;
    states.delete(this);
    inFlight--;
    metrics?.leave();
    let kind = state.kind;
    if (kind === undefined) {
      // Aborted before any head: there is no status to file it under.
      if (!this.headersSent) return;
      // The head went out without passing the hooks (someone wrote to the socket directly).
      kind = labels.kind(state.req.method ?? 'GET', routeOf(state.req, this), this.statusCode);
    }
    const now = clock.now();
    const ms = now - state.start;
    if (metrics !== undefined) {
      metrics.observe(
        kind,
        ms > 0 ? ms / 1000 : 0,
        contentLength(state.req.headers['content-length']),
        state.responseBytes,
      );
    }
    if (state.measured) {
      totalRequests++;
      windows.record(now, ms, kind.status, state.cache, kind.series);
    }
  }

  const middleware = function perfstackTiming(req: IncomingMessage, res: ServerResponse, next: (e?: unknown) => void) {
    warmShapes(req, res);
    if (closed || states.has(res)) {
      next();
      return;
    }
    const state: RequestState = {
      start: clock.now(),
      req,
      measured: exclude.length === 0 || !isExcluded(req.url),
      kind: undefined,
      cache: CacheOutcome.None,
      responseBytes: -1,
    };
    states.set(res, state);
    inFlight++;
    metrics?.arrive();
    onBeforeHead(res, onHead);
    res.on('close', onClose);
    next();
  } as Timing;

  const build = (now: number): DetailedTimingSnapshot => ({
    at: now,
    totalRequests,
    inFlight,
    windows: windows.windows(now),
    routes: windows.routes(now, labels.series()),
    process: processStats,
    alerts: engine.active(),
  });

  const sample = (): void => {
    if (closed) return;
    try {
      processStats = sampleProcess();
    } catch (error) {
      log.errorOnce('TIMING_SAMPLE_FAILED', 'sampling the process failed', { error: String(error) });
    }
    if (config.rules.length === 0) return;
    const now = clock.now();
    const changes = engine.evaluate(build(now), now);
    for (const alert of changes.fired) emitter.emit('alert', alert);
    for (const alert of changes.resolved) emitter.emit('resolved', alert);
  };

  // Process figures from the start; rules are first judged on the first tick, once listeners are attached.
  try {
    processStats = sampleProcess();
  } catch (error) {
    log.errorOnce('TIMING_SAMPLE_FAILED', 'sampling the process failed', { error: String(error) });
  }
  const timer = setInterval(sample, config.sampleInterval);
  timer.unref();

  const recordAnswered = (
    req: IncomingMessage,
    route: string,
    status: number,
    startedAt: number,
    responseBytes: number,
    cacheHit = false,
  ): void => {
    if (closed) return;
    // An early refusal whose route no router could name: filed under its path prefix.
    const kind = labels.kind(req.method ?? 'GET', route === UNMATCHED_ROUTE ? pathPrefixRoute(req.url) : route, status);
    const now = clock.now();
    const ms = now - startedAt;
    if (metrics !== undefined) {
      metrics.observe(kind, ms > 0 ? ms / 1000 : 0, contentLength(req.headers['content-length']), responseBytes);
    }
    if (exclude.length === 0 || !isExcluded(req.url)) {
      totalRequests++;
      windows.record(now, ms, status, cacheHit ? CacheOutcome.Hit : CacheOutcome.None, kind.series);
    }
  };
  const headFields = { serverTiming, responseTimeHeader };
  const closedHeadFields = { serverTiming: false, responseTimeHeader: undefined };

  Object.defineProperties(middleware, {
    registry: { value: config.registry, enumerable: true },
    recordAnswered: { value: recordAnswered },
    now: { value: () => clock.now() },
    headFields: { value: () => (closed ? closedHeadFields : headFields) },
    snapshot: { value: () => build(clock.now()) },
    sample: { value: sample },
    on: { value: <E extends TimingEventName>(event: E, listener: TimingEvents[E]) => emitter.on(event, listener) },
    close: {
      value: async (): Promise<void> => {
        if (closed) return;
        closed = true;
        clearInterval(timer);
        sampler?.close();
        emitter.clear();
      },
    },
  });
  return middleware;
}
