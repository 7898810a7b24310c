/**
 * `dashboard()`: the page, its assets, the JSON snapshot, the live stream and the actions,
 * as one Connect middleware meant to be mounted: `app.use('/dashboard', dashboard(...))`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { counter, gauge, HttpProblemError, type NextFunction, OnceLogger, pathOf } from '@perfstack/core';
import { createAccessCheck } from './access.js';
import { ACTIONS } from './actions.js';
import { loadAssets, PAGE_CSP, renderPage } from './assets.js';
import { readJsonBody } from './body.js';
import { CsrfTokens, checkCsrf } from './csrf.js';
import { Fleet } from './fleet.js';
import { History } from './history.js';
import { type LeakReport, LeakWatch } from './leak-watch.js';
import { type DashboardOptions, resolveOptions } from './options.js';
import { ProcessSampler } from './process-sampler.js';
import { ContinuousProfiler } from './profile/continuous.js';
import { Profiling } from './profile/handlers.js';
import { linkHotFunctions } from './profile/hot-functions.js';
import { buildReport, type PerformanceReport } from './report.js';
import { REPORT_HTML_CSP, REPORT_MEDIA_TYPES, renderReport, reportFormatOf } from './report-format.js';
import { type ReportDelivery, ReportSchedule } from './report-schedule.js';
import { methodNotAllowed, runProtected, sendBody, sendJson, setCommonHeaders } from './respond.js';
import { actorOf, attachChanges, patchSettings, settingsView, undoSettings } from './settings.js';
import { type DashboardSnapshot, SnapshotBuilder } from './snapshot.js';
import { StreamHub } from './stream.js';

/** The dashboard middleware. */
export interface DashboardMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: NextFunction): void;
  /** The current snapshot, as `GET /api/snapshot` returns it. */
  snapshot(): DashboardSnapshot;
  /** The performance report, as `GET /api/report` returns it. */
  report(): PerformanceReport;
  /** The leak watch (`undefined` with `leakWatch: false`); `tick()` samples now. */
  readonly leakWatch: LeakWatch | undefined;
  /**
   * Delivers the report to `reportSchedule`'s file and webhook now (as the schedule does);
   * resolves `undefined` without a `reportSchedule`.
   */
  deliverReport(): Promise<ReportDelivery | undefined>;
  /** The server-side history behind `GET /api/history` (`undefined` with `history: false`). */
  readonly history: History | undefined;
  /**
   * Continuous profiling (`undefined` unless `profiling.continuous` is given); `runOnce()`
   * records one period now.
   */
  readonly profiles: ContinuousProfiler | undefined;
  /** Ends open streams, stops the fleet publication, the CSRF agreement and the timers. Safe to call twice. */
  close(): Promise<void>;
}

/** The query string of a request URL, without the `?`. */
function queryOf(url: string | undefined): string {
  const q = url?.indexOf('?') ?? -1;
  return q === -1 ? '' : url!.slice(q + 1);
}

type MountedRequest = IncomingMessage & { originalUrl?: string };

const GET_ROUTES = new Set([
  '/',
  '/index.html',
  '/api/snapshot',
  '/api/stream',
  '/api/report',
  '/api/leaks',
  '/api/profile',
  '/api/history',
  '/api/settings',
]);

/** The profiling operations, by path under the dashboard (POST, behind CSRF). */
const PROFILE_ROUTES = new Set(['/api/profile/cpu', '/api/profile/heap-snapshot', '/api/profile/heap-sampling']);

/**
 * Makes the dashboard.
 *
 * Routes, relative to where it is mounted: `GET /` (the page), `GET /assets/<file>`,
 * `GET /api/snapshot`, `GET /api/stream` (Server-Sent Events), `GET /api/report`, `GET /api/leaks`,
 * `GET /api/profile`, `GET`/`PATCH /api/settings`, `POST /api/settings/undo`, the actions `POST /api/cache/invalidate`, `POST /api/rate-limit/reset`,
 * `POST /api/breakers/reset`, and the profiling operations `POST /api/profile/cpu`,
 * `POST /api/profile/heap-snapshot`, `POST /api/profile/heap-sampling`.
 *
 * @param options sources, access rule, fleet and stream settings (see {@link DashboardOptions})
 * @returns a Connect middleware with `snapshot()` and `close()`
 * @throws {TypeError} on unknown options or values of the wrong type
 * @throws {RangeError} on values out of range
 * @example
 * app.use('/dashboard', dashboard({ sources: { timing, cache }, auth: { username: 'ops', password: secret } }))
 */
export function dashboard(options?: DashboardOptions): DashboardMiddleware {
  const config = resolveOptions(options);
  const log = new OnceLogger(config.logger);
  const now = () => Date.now();
  const sampler = config.sources.timing === undefined ? new ProcessSampler() : undefined;
  sampler?.start();
  const leakWatch = config.leakWatch === undefined ? undefined : new LeakWatch(config.leakWatch, log);
  leakWatch?.start();
  const profiling = config.profiling === undefined ? undefined : new Profiling(config.profiling, log);
  const continuous =
    config.profiling?.continuous === undefined
      ? undefined
      : new ContinuousProfiler({
          config: config.profiling.continuous,
          instanceId: config.instanceId,
          log,
          redis: config.redis,
        });
  continuous?.start();
  const builder = new SnapshotBuilder(
    config.sources,
    sampler,
    log,
    config.instanceId,
    now,
    () => leakWatch?.alerts() ?? [],
  );
  const fleetBus = config.fleetBus ?? config.redis;
  const fleet =
    fleetBus === undefined
      ? undefined
      : new Fleet({
          redis: fleetBus,
          instanceId: config.instanceId,
          interval: config.fleetInterval,
          timeout: config.fleetTimeout,
          now,
          log,
          snapshot: () => builder.build(),
        });
  const snapshot = (): DashboardSnapshot => {
    if (fleet === undefined) return builder.build();
    const local = builder.build();
    return { ...local, fleet: fleet.figures(local) };
  };
  const streamGauge = gauge(config.registry, {
    name: 'perfstack_dashboard_streams',
    help: 'Open dashboard event streams',
  });
  const actionCounter = counter(config.registry, {
    name: 'perfstack_dashboard_actions_total',
    help: 'Dashboard actions by action and outcome',
    labelNames: ['action', 'outcome'] as const,
  });
  const streams = new StreamHub({
    interval: config.streamInterval,
    heartbeat: config.heartbeatInterval,
    max: config.maxStreams,
    build: () => JSON.stringify(snapshot()),
    log,
    onCount: (count) => streamGauge.set(count),
  });
  const access = createAccessCheck(config.auth, false, (error) =>
    log.errorOnce('DASHBOARD_AUTH_PREDICATE', 'the auth predicate threw; access refused', { error: String(error) }),
  );
  const csrf = new CsrfTokens({ secret: config.csrfSecret, redis: config.redis, log });
  let page = renderPage({ csrfToken: csrf.current, title: config.title });
  let pageToken = csrf.current;
  /** The page with the current token: rendered again only when the fleet agreement changed it. */
  const currentPage = (): Buffer => {
    csrf.touch();
    if (csrf.current !== pageToken) {
      pageToken = csrf.current;
      page = renderPage({ csrfToken: pageToken, title: config.title });
    }
    return page;
  };
  const assets = loadAssets();
  const basePath = config.basePath;
  const basePathLower = basePath?.toLowerCase();
  fleet?.start();

  const report = (): PerformanceReport => {
    const local = builder.build();
    let cacheRoutes = null;
    try {
      cacheRoutes = config.sources.cache?.stats().routes ?? null;
    } catch {
      // Already logged once by the snapshot builder, whose cache section is then null.
    }
    const built = buildReport(local, cacheRoutes, leakWatch?.alerts() ?? [], config.report, now());
    return attachChanges(linkHotFunctions(built, lastCpuProfile(), now()), config.settings);
  };
  /** The newest CPU profile: continuous or on demand. */
  const lastCpuProfile = () => {
    const manual = profiling?.last().cpu ?? null;
    const periodic = continuous?.latest();
    if (manual !== null && (periodic === undefined || manual.at > periodic.summary.at)) {
      return { id: null, summary: manual };
    }
    return periodic;
  };
  const history =
    config.history === undefined
      ? undefined
      : new History({ config: config.history, snapshot, now, redis: config.redis, log });
  history?.start();
  const schedule =
    config.reportSchedule === undefined ? undefined : new ReportSchedule(config.reportSchedule, report, log);
  schedule?.start();
  const leaks = (): LeakReport | { readonly enabled: false } => leakWatch?.report() ?? { enabled: false };

  const notFound = () => new HttpProblemError({ code: 'NOT_FOUND', detail: 'No such dashboard resource.' });

  /** Serves GET/HEAD routes. */
  function serveRead(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (path === '/' || path === '/index.html') {
      if (res.getHeader('content-security-policy') === undefined) res.setHeader('Content-Security-Policy', PAGE_CSP);
      if (res.getHeader('referrer-policy') === undefined) res.setHeader('Referrer-Policy', 'no-referrer');
      sendBody(req, res, 200, 'text/html; charset=utf-8', currentPage());
    } else if (path === '/api/snapshot') {
      sendJson(req, res, 200, snapshot());
    } else if (path === '/api/report') {
      const format = reportFormatOf(new URLSearchParams(queryOf(req.url)));
      if (format === 'html') res.setHeader('Content-Security-Policy', REPORT_HTML_CSP);
      sendBody(req, res, 200, REPORT_MEDIA_TYPES[format], renderReport(report(), format));
    } else if (path === '/api/history') {
      if (history === undefined) throw notFound();
      sendJson(req, res, 200, history.report());
    } else if (path === '/api/settings') {
      // 200 without settings too: the page asks on every load, and a 404 would be a console error.
      sendJson(req, res, 200, settingsView(config.settings));
    } else if (path === '/api/leaks') {
      sendJson(req, res, 200, leaks());
    } else if (path === '/api/profile') {
      if (profiling === undefined) throw notFound();
      sendJson(req, res, 200, profiling.last());
    } else if (req.method === 'HEAD') {
      // HEAD on the stream: the headers a GET would get, without opening a stream.
      sendBody(req, res, 200, 'text/event-stream; charset=utf-8', '');
    } else if (!streams.hasRoom) {
      throw new HttpProblemError({
        code: 'OVERLOADED',
        detail: `Too many open dashboard streams (limit ${config.maxStreams}); close a tab or raise maxStreams.`,
        headers: { 'Retry-After': 5 },
      });
    } else {
      streams.open(req, res);
    }
  }

  /**
   * One JSON write (an action, a settings change): CSRF first, then the JSON body, then `work`;
   * its result is sent as JSON and its outcome counted.
   */
  async function runWrite(
    req: IncomingMessage,
    res: ServerResponse,
    action: string,
    work: (body: unknown) => Promise<unknown>,
  ): Promise<void> {
    try {
      csrf.touch();
      checkCsrf(req, csrf.accepted);
      const result = await work(await readJsonBody(req, config.bodyLimit));
      actionCounter.inc({ action, outcome: 'ok' });
      sendJson(req, res, 200, result);
    } catch (error) {
      actionCounter.inc({
        action,
        outcome: error instanceof HttpProblemError && error.status < 500 ? 'rejected' : 'failed',
      });
      throw error;
    }
  }

  function runAction(req: IncomingMessage, res: ServerResponse, path: keyof typeof ACTIONS): Promise<void> {
    return runWrite(req, res, path.slice(5), (body) => ACTIONS[path](config.sources, body));
  }

  /** `PATCH /api/settings` and `POST /api/settings/undo`: the same access and CSRF rules as every action. */
  function runSettings(req: IncomingMessage, res: ServerResponse, undo: boolean): Promise<void> {
    const settings = config.settings;
    if (settings === undefined) throw notFound();
    return runWrite(req, res, undo ? 'settings/undo' : 'settings', (body) =>
      undo ? undoSettings(settings, body, actorOf(req)) : patchSettings(settings, body, actorOf(req)),
    );
  }

  /** Runs a profiling operation: CSRF first, then an empty JSON body, then the operation (which takes the lock). */
  async function runProfile(req: IncomingMessage, res: ServerResponse, path: string, p: Profiling): Promise<void> {
    const action = path.slice(5);
    try {
      csrf.touch();
      checkCsrf(req, csrf.accepted);
      const body = await readJsonBody(req, config.bodyLimit);
      if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length > 0) {
        throw new HttpProblemError({
          code: 'BAD_REQUEST',
          detail: 'Send an empty JSON object; settings go in the query string.',
        });
      }
      const query = new URLSearchParams(queryOf(req.url));
      if (path === '/api/profile/cpu') await p.cpu(req, res, query);
      else if (path === '/api/profile/heap-sampling') await p.heapSampling(req, res, query);
      else await p.heapSnapshot(req, res);
      actionCounter.inc({ action, outcome: 'ok' });
    } catch (error) {
      actionCounter.inc({
        action,
        outcome: error instanceof HttpProblemError && error.status < 500 ? 'rejected' : 'failed',
      });
      throw error;
    }
  }

  /** Redirects `/dashboard` to `/dashboard/` so the page's relative asset URLs resolve under the mount. */
  function redirectToSlash(req: IncomingMessage, res: ServerResponse, fullPath: string): void {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    setCommonHeaders(res);
    res.statusCode = 302;
    res.setHeader('Location', `${fullPath}/${q === -1 ? '' : url.slice(q)}`);
    res.setHeader('Content-Length', 0);
    res.end();
  }

  const middleware = function perfstackDashboard(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    let path = pathOf(req.url);
    if (basePath !== undefined) {
      // Any case, as Express routes `app.use('/dashboard', ...)` by default and as the preset
      // exempts it (perfstack's endpoint matcher): `/Dashboard/` is the dashboard too.
      const base = path.length >= basePath.length ? path.slice(0, basePath.length) : '';
      const inBase = base === basePath || base.toLowerCase() === basePathLower;
      if (inBase && path.length === basePath.length) path = '';
      else if (inBase && path.charCodeAt(basePath.length) === 47) path = path.slice(basePath.length);
      else {
        next();
        return;
      }
    }
    runProtected(req, res, access, log, () => {
      const method = req.method ?? 'GET';
      if (path === '' || path === '/') {
        // `basePath` mode: '' is the base without its slash. Mounted (Express): '/' arrives for both
        // `/dashboard` and `/dashboard/`; `originalUrl` tells them apart.
        const original = (req as MountedRequest).originalUrl;
        const full = path === '' ? basePath : original === undefined ? undefined : pathOf(original);
        if (full !== undefined && !full.endsWith('/') && (method === 'GET' || method === 'HEAD')) {
          redirectToSlash(req, res, full);
          return;
        }
        path = '/';
      }
      if (path === '/api/settings' && method === 'PATCH') return runSettings(req, res, false);
      if (path === '/api/settings/undo') {
        if (method !== 'POST') throw methodNotAllowed('POST');
        return runSettings(req, res, true);
      }
      if (GET_ROUTES.has(path)) {
        if (method !== 'GET' && method !== 'HEAD') {
          throw methodNotAllowed(path === '/api/settings' ? 'GET, HEAD, PATCH' : 'GET, HEAD');
        }
        serveRead(req, res, path);
        return;
      }
      if (Object.hasOwn(ACTIONS, path)) {
        if (method !== 'POST') throw methodNotAllowed('POST');
        return runAction(req, res, path as keyof typeof ACTIONS);
      }
      if (profiling !== undefined && PROFILE_ROUTES.has(path)) {
        if (method !== 'POST') throw methodNotAllowed('POST');
        return runProfile(req, res, path, profiling);
      }
      if (profiling !== undefined && (path === '/api/profiles' || path.startsWith('/api/profiles/'))) {
        if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed('GET, HEAD');
        const query = new URLSearchParams(queryOf(req.url));
        if (continuous !== undefined) return continuous.serve(req, res, path, query);
        if (path !== '/api/profiles') throw notFound();
        sendJson(req, res, 200, { enabled: false, profiles: [] });
        return;
      }
      if (path.startsWith('/assets/')) {
        // Exact names only: the map is fixed, the URL never becomes a file path.
        const asset = assets.get(path.slice(8));
        if (asset === undefined) throw notFound();
        if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed('GET, HEAD');
        sendBody(req, res, 200, asset.contentType, asset.body);
        return;
      }
      throw notFound();
    });
  } as DashboardMiddleware;

  let closed: Promise<void> | undefined;
  middleware.snapshot = snapshot;
  middleware.report = report;
  (middleware as { leakWatch: LeakWatch | undefined }).leakWatch = leakWatch;
  middleware.deliverReport = async () => schedule?.deliver();
  (middleware as { history: History | undefined }).history = history;
  (middleware as { profiles: ContinuousProfiler | undefined }).profiles = continuous;
  middleware.close = () => {
    closed ??= (async () => {
      await schedule?.close();
      history?.close();
      streams.close();
      sampler?.stop();
      leakWatch?.stop();
      profiling?.close();
      await continuous?.close();
      csrf.close();
      await fleet?.close();
    })();
    return closed;
  };
  return middleware;
}
