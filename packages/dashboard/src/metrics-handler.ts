/**
 * `/metrics`: the shared prom-client registry in the Prometheus text format, with the
 * registry's own `Content-Type` (text 0.0.4 or OpenMetrics, whichever it was made for).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  checkOptionsObject,
  consoleLogger,
  type NextFunction,
  OnceLogger,
  optionTypeError,
  type PerfstackLogger,
  Registry,
  readBoolean,
} from '@perfstack/core';
import { createAccessCheck, type DashboardAuth, readAuth } from './access.js';
import { methodNotAllowed, runProtected, sendBody } from './respond.js';

const PKG = '@perfstack/dashboard';

/** Options for {@link metricsHandler}. */
export interface MetricsHandlerOptions {
  /** The registry to expose: the stack's shared one. Required. */
  readonly registry: Registry;
  /** Who may read it (see the README's access model). @default loopback clients only */
  readonly auth?: DashboardAuth;
  /** Open to anyone (a Prometheus server on another host without credentials). @default false */
  readonly public?: boolean;
  /** Where serve-time problems go. @default console */
  readonly logger?: PerfstackLogger;
}

/** The `/metrics` middleware. */
export interface MetricsHandler {
  (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void;
  /** Nothing to release; present so the preset can close every part alike. */
  close(): Promise<void>;
}

/**
 * Makes the `/metrics` middleware.
 *
 * @param options the registry and the access rule
 * @returns a Connect middleware answering every request it gets (mount it on a path)
 * @throws {TypeError} when `registry` is missing or not a prom-client Registry, or on unknown options
 * @example app.get('/metrics', metricsHandler({ registry, auth: { token: process.env.METRICS_TOKEN } }))
 */
export function metricsHandler(options: MetricsHandlerOptions): MetricsHandler {
  const opts = checkOptionsObject(PKG, 'metricsHandler', options, ['registry', 'auth', 'public', 'logger']);
  const registry = opts.registry;
  if (
    !(registry instanceof Registry) &&
    !(
      typeof registry === 'object' &&
      registry !== null &&
      typeof (registry as Registry).metrics === 'function' &&
      typeof (registry as Registry).contentType === 'string'
    )
  ) {
    throw optionTypeError(PKG, 'registry', registry, "a prom-client Registry (the stack's shared registry)");
  }
  const log = new OnceLogger(opts.logger ?? consoleLogger);
  const access = createAccessCheck(
    readAuth(PKG, 'auth', opts.auth),
    readBoolean(PKG, 'public', opts.public, false),
    (e) => log.errorOnce('DASHBOARD_AUTH_PREDICATE', 'the auth predicate threw; access refused', { error: String(e) }),
  );
  const handler = function perfstackMetrics(req: IncomingMessage, res: ServerResponse): void {
    runProtected(req, res, access, log, async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed('GET, HEAD');
      const text = await registry.metrics();
      sendBody(req, res, 200, registry.contentType, text);
    });
  } as MetricsHandler;
  handler.close = () => Promise.resolve();
  return handler;
}
