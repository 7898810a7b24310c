/**
 * `/health`: `{ status: 'ok' | 'degraded' | 'down', checks: { name: HealthCheck } }`
 * (ARCHITECTURE.md). The worst check wins; HTTP 503 when the result is `down`, 200 otherwise,
 * so a load balancer pulls an instance that cannot serve and keeps one that serves with
 * reduced guarantees (Redis down: L1 cache and local limits still work).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  checkOptionsObject,
  consoleLogger,
  type HealthCheck,
  type HealthSource,
  type NextFunction,
  OnceLogger,
  optionTypeError,
  type PerfstackLogger,
  readBoolean,
  type SharedRedis,
} from '@perfstack/core';
import { createAccessCheck, type DashboardAuth, readAuth } from './access.js';
import { methodNotAllowed, runProtected, sendJson } from './respond.js';

const PKG = '@perfstack/dashboard';

/** The `/health` body. */
export interface HealthReport {
  readonly status: HealthCheck['status'];
  readonly checks: Readonly<Record<string, HealthCheck>>;
}

/** A named check: a layer with `health()`, or a function. */
export type HealthCheckInput = HealthSource | (() => HealthCheck);

/** Options for {@link healthHandler}. */
export interface HealthHandlerOptions {
  /** Named checks, e.g. `{ redis: redisHealthCheck(redis), breakers: circuitBreaker }`. @default {} */
  readonly checks?: Readonly<Record<string, HealthCheckInput>>;
  /** Who may read it (see the README's access model). @default loopback clients only */
  readonly auth?: DashboardAuth;
  /** Open to anyone (a load balancer's probe from another host). @default false */
  readonly public?: boolean;
  /** Where serve-time problems go. @default console */
  readonly logger?: PerfstackLogger;
}

/** The `/health` middleware; `report()` gives the same body without HTTP (the dashboard shows it). */
export interface HealthHandler {
  (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void;
  /** Runs every check now. */
  report(): HealthReport;
  /** Nothing to release; present so the preset can close every part alike. */
  close(): Promise<void>;
}

const RANK = { ok: 0, degraded: 1, down: 2 } as const;
const STATUSES = new Set(['ok', 'degraded', 'down']);

/**
 * Runs checks and folds them into one report; the worst status wins. A check that throws
 * or returns something unusable is reported `degraded` (a bug in a check says nothing about
 * whether the instance can serve) and logged once.
 *
 * @param checks the named checks
 * @param log where broken checks are reported
 * @returns the report
 */
export function buildHealthReport(
  checks: Readonly<Record<string, HealthCheckInput>>,
  log: OnceLogger = new OnceLogger(consoleLogger),
): HealthReport {
  let status: HealthCheck['status'] = 'ok';
  const results: Record<string, HealthCheck> = {};
  for (const [name, check] of Object.entries(checks)) {
    let result: HealthCheck;
    try {
      // Layers are middleware functions that carry health(): prefer the method when present.
      const value =
        typeof (check as HealthSource).health === 'function'
          ? (check as HealthSource).health()
          : (check as () => HealthCheck)();
      if (typeof value !== 'object' || value === null || !STATUSES.has(value.status)) {
        throw new TypeError(`returned ${JSON.stringify(value)?.slice(0, 80)}`);
      }
      result = value;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.errorOnce(`HEALTH_CHECK_FAILED:${name}`, `health check "${name}" failed: ${message}`);
      result = { status: 'degraded', detail: `the check failed: ${message}` };
    }
    results[name] = result;
    if (RANK[result.status] > RANK[status]) status = result.status;
  }
  return { status, checks: results };
}

/**
 * A health check for the shared Redis connection: `ok` when up, `degraded` otherwise
 * (perfstack keeps serving without Redis, ARCHITECTURE.md), with the connection's details. The
 * connection's heartbeat marks it down when Redis stops answering on an open socket (a
 * paused Redis), so this says `degraded` then too, and `ok` again once it answers.
 *
 * @param redis the shared connection
 * @returns a check for {@link healthHandler}'s `checks`
 * @example healthHandler({ checks: { redis: redisHealthCheck(redis) } })
 */
export function redisHealthCheck(redis: SharedRedis): HealthSource {
  return {
    health(): HealthCheck {
      const h = redis.health();
      return {
        status: h.status === 'up' ? 'ok' : 'degraded',
        detail:
          h.status === 'up' ? 'connected' : `Redis is ${h.status}; serving from memory (L1 cache, local rate limits)`,
        redis: h.status,
        since: h.since,
        errors: h.errors,
        missedHeartbeats: h.missedHeartbeats,
        liveInstances: h.liveInstances,
        ...(h.heartbeatMs === undefined ? {} : { heartbeatMs: h.heartbeatMs }),
        ...(h.lastError === undefined ? {} : { lastError: h.lastError }),
      };
    },
  };
}

/**
 * Makes the `/health` middleware.
 *
 * @param options the checks and the access rule
 * @returns a Connect middleware answering every request it gets (mount it on a path)
 * @throws {TypeError} on unknown options or a check that is neither a function nor has `health()`
 * @example app.get('/health', healthHandler({ checks: { redis: redisHealthCheck(redis) }, public: true }))
 */
export function healthHandler(options: HealthHandlerOptions = {}): HealthHandler {
  const opts = checkOptionsObject(PKG, 'healthHandler', options, ['checks', 'auth', 'public', 'logger']);
  const checks = opts.checks ?? {};
  if (typeof checks !== 'object' || checks === null || Array.isArray(checks)) {
    throw optionTypeError(PKG, 'checks', checks, 'an object of named checks');
  }
  for (const [name, check] of Object.entries(checks)) {
    const ok =
      typeof check === 'function' ||
      (typeof check === 'object' && check !== null && typeof (check as HealthSource).health === 'function');
    if (!ok) throw optionTypeError(PKG, `checks.${name}`, check, 'an object with health() or a function');
  }
  const frozen = { ...checks };
  const log = new OnceLogger(opts.logger ?? consoleLogger);
  const access = createAccessCheck(
    readAuth(PKG, 'auth', opts.auth),
    readBoolean(PKG, 'public', opts.public, false),
    (e) => log.errorOnce('DASHBOARD_AUTH_PREDICATE', 'the auth predicate threw; access refused', { error: String(e) }),
  );
  const report = () => buildHealthReport(frozen, log);
  const handler = function perfstackHealth(req: IncomingMessage, res: ServerResponse): void {
    runProtected(req, res, access, log, () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed('GET, HEAD');
      const body = report();
      sendJson(req, res, body.status === 'down' ? 503 : 200, body);
    });
  } as HealthHandler;
  handler.report = report;
  handler.close = () => Promise.resolve();
  return handler;
}
