/**
 * perfstack on plain `node:http`.
 *
 * ```ts
 * import http from 'node:http';
 * import { createListener, performanceStack } from 'perfstack/node';
 * const stack = performanceStack();
 * http.createServer(createListener(stack, (req, res) => res.end('ok'))).listen(3000);
 * ```
 *
 * `createListener` runs the stack, answers the dashboard, `/metrics` and `/health` at the
 * stack's paths, and hands every other request to the app's listener. Errors become
 * problem+json answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type RequestListener, type WithMiddlewareOptions, withMiddleware } from '@perfstack/core';
import { endpointsHandler } from './endpoint-listener.js';
import type { PerformanceStack } from './stack.js';

export { type RequestListener, setRoute, withMiddleware } from '@perfstack/core';
export * from './index.js';

/** Options for {@link createListener}. */
export interface CreateListenerOptions extends WithMiddlewareOptions {
  /** Serve the dashboard, `/metrics` and `/health` at the stack's paths. @default true */
  readonly endpoints?: boolean;
}

/**
 * Returns a `node:http` request listener: the stack, then the stack's endpoints, then `app`.
 *
 * @param stack a {@link PerformanceStack}
 * @param app the app's own listener
 * @returns a listener for `http.createServer`
 */
export function createListener(
  stack: PerformanceStack,
  app: RequestListener,
  options: CreateListenerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  // The app's errors go on the access log line too (redacted), unless the caller handles them.
  const logger = stack.layers.logger;
  if (options.onError === undefined && logger !== undefined) {
    options = {
      ...options,
      onError: (error, req) => {
        logger.recordError(req, error);
      },
    };
  }
  if (options.endpoints === false) return withMiddleware(stack, app, options);
  // Routed by the matcher that exempts them, so exempt and served are the same requests.
  return withMiddleware(stack, endpointsHandler(stack, app), options);
}
