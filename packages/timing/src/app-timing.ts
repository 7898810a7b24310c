/**
 * The `app` entry of `Server-Timing`: the time from when a request leaves the stack's
 * inner layers to when the app writes the response head. Timing itself only knows the
 * whole (`total`); the preset puts {@link appTiming} last, just before the app, so the
 * difference between `total` and `app` is what the stack's layers cost.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { addServerTiming, type Middleware, onBeforeHead } from '@perfstack/core';

const APP_START = Symbol('perfstack.timing.appStart');

type MarkedResponse = ServerResponse & { [APP_START]?: number };

function addAppEntry(res: ServerResponse): void {
  const start = (res as MarkedResponse)[APP_START];
  if (start !== undefined) addServerTiming(res, 'app', performance.now() - start);
}

/**
 * Marks the moment the app starts handling `req`; `Server-Timing` then carries
 * `app;dur=<ms>` up to the response head. Calling it again for the same response moves
 * the mark (the last call wins, one entry).
 *
 * @param _req the request (unused; kept so the call reads like a middleware step)
 * @param res the response
 * @example markApp(req, res); // first line of a node:http handler
 */
export function markApp(_req: IncomingMessage, res: ServerResponse): void {
  const marked = res as MarkedResponse;
  const first = marked[APP_START] === undefined;
  marked[APP_START] = performance.now();
  if (first) onBeforeHead(res, addAppEntry);
}

/**
 * A middleware that calls {@link markApp}: put it after the last layer, just before the
 * app's routes.
 *
 * @returns a Connect-style middleware
 * @example app.use(timing()); app.use(cache()); app.use(appTiming()); app.get('/x', handler);
 */
export function appTiming(): Middleware {
  return function perfstackAppTiming(req, res, next) {
    markApp(req, res);
    next();
  };
}
