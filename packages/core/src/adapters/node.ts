/**
 * Runs perfstack middleware in front of a plain `node:http` request listener.
 *
 * ```ts
 * import http from 'node:http';
 * import { performanceStack } from 'perfstack';
 * import { withMiddleware } from 'perfstack/node';
 * const stack = performanceStack();
 * http.createServer(withMiddleware(stack, (req, res) => res.end('ok'))).listen(3000);
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientErrorStatus, recordRequestError } from '../errors.js';
import { codeForStatus, HttpProblemError, isHttpProblemError, sendProblem } from '../problem.js';
import { setRoute } from '../route.js';
import type { Middleware } from '../types.js';

/** A plain `node:http` request listener. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** Options for {@link withMiddleware}. */
export interface WithMiddlewareOptions {
  /** Called with errors that are not HTTP problems before the 500 is sent. @default console.error */
  readonly onError?: (error: unknown, req: IncomingMessage) => void;
  /**
   * The route pattern of a request (`/users/:id`), or `undefined` for none. Called before
   * the middleware runs, so the breaker, timing labels and rate-limit route keys use it from
   * a route's first request. (`setRoute(req, pattern)` inside the handler is the fallback:
   * the breaker then learns the pattern from the response and guards the next requests.)
   * @default no pattern: requests are labelled `unmatched` and not guarded by a breaker
   */
  readonly route?: (req: IncomingMessage) => string | undefined;
}

/**
 * Sends the answer for an error that reached the end of the chain: a problem's own
 * status and code, anything else a 500 `INTERNAL_ERROR` that does not reveal the message.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, error: unknown): void {
  if (isHttpProblemError(error)) {
    sendProblem(res, error, req.method);
    return;
  }
  const status = clientErrorStatus(error);
  if (status !== undefined) {
    sendProblem(
      res,
      new HttpProblemError({
        code: codeForStatus(status) ?? 'BAD_REQUEST',
        status,
        detail: 'The request could not be processed.',
      }),
      req.method,
    );
    return;
  }
  sendProblem(
    res,
    new HttpProblemError({ code: 'INTERNAL_ERROR', detail: 'The server failed to answer the request.' }),
    req.method,
  );
}

/**
 * Returns a request listener that runs `middleware`, then `handler`. Errors from either
 * (thrown, rejected or passed to `next`) become problem+json answers.
 *
 * @param middleware a perfstack middleware (the preset or any layer)
 * @param handler the app's own listener
 * @returns a listener for `http.createServer`
 */
export function withMiddleware(
  middleware: Middleware,
  handler: RequestListener,
  options: WithMiddlewareOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const onError = options.onError ?? ((error: unknown) => console.error('[perfstack] unhandled error', error));
  const route = options.route;
  if (route !== undefined && typeof route !== 'function') {
    throw new TypeError(
      `@perfstack/core: option "route" of withMiddleware must be a function (req) => pattern | undefined, got ${typeof route}`,
    );
  }
  const fail = (req: IncomingMessage, res: ServerResponse, error: unknown) => {
    recordRequestError(req, error);
    if (!isHttpProblemError(error)) onError(error, req);
    sendError(req, res, error);
  };
  return function perfstackNodeListener(req: IncomingMessage, res: ServerResponse): void {
    try {
      if (route !== undefined) {
        const pattern = route(req);
        if (pattern !== undefined) setRoute(req, pattern);
      }
      middleware(req, res, (error?: unknown) => {
        if (error !== undefined && error !== null) {
          fail(req, res, error);
          return;
        }
        try {
          const result = handler(req, res);
          if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
            (result as Promise<void>).then(undefined, (rejected: unknown) => fail(req, res, rejected));
          }
        } catch (thrown) {
          fail(req, res, thrown);
        }
      });
    } catch (thrown) {
      fail(req, res, thrown);
    }
  };
}
