/**
 * Who caused an error: what the layers need to tell the app's own faults from the client's
 * and from the stack's own refusals.
 *
 * - {@link clientErrorStatus}: the 4xx status an error carries (`status`/`statusCode`, the
 *   http-errors convention body-parser, multer's wrappers, co-body, koa-body and `ctx.throw`
 *   follow). Such an error is the client's fault, whatever status an app's naive error
 *   handler writes for it.
 * - {@link recordRequestError}/{@link requestErrorOf}: the error a request failed with, as the
 *   adapters see it (Express error handlers through {@link gateExpressErrorHandlers}, Koa
 *   through `toKoa`, `node:http` through `withMiddleware`).
 * - {@link problemSent}: the problem code a perfstack layer answered with (`sendProblem`
 *   marks the response), so no other layer counts it as the app's answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { expressLayers, expressRouterOf } from './adapters/express-routes.js';
import type { ProblemCode } from './problem.js';
import { spanEvent } from './trace.js';

const REQUEST_ERROR = Symbol.for('perfstack.requestError');
const PROBLEM_SENT = Symbol.for('perfstack.problemSent');
const GATED = Symbol.for('perfstack.errorGate');

/** The top-level stack length each router was gated at (handlers added later are gated on the next request). */
const gatedLength = new WeakMap<object, number>();

type ErrorCarrier = IncomingMessage & { [REQUEST_ERROR]?: unknown };
type MarkedResponse = ServerResponse & { [PROBLEM_SENT]?: ProblemCode };

/**
 * The client-error status (400–499) an error carries in `status` or `statusCode`, or
 * `undefined`. Body parsers raise their refusals this way (malformed JSON: 400, too large:
 * 413, unsupported charset: 415).
 *
 * @param error anything thrown or passed to `next(err)`
 */
export function clientErrorStatus(error: unknown): number | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const carrier = error as { status?: unknown; statusCode?: unknown };
  const status = carrier.status ?? carrier.statusCode;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status < 500 ? status : undefined;
}

/** Remembers the error a request failed with (the first one; later ones are its consequences). */
export function recordRequestError(req: IncomingMessage, error: unknown): void {
  const carrier = req as ErrorCarrier;
  if (carrier[REQUEST_ERROR] === undefined && error !== undefined && error !== null) carrier[REQUEST_ERROR] = error;
}

/** The error a request failed with, if an adapter saw one. */
export function requestErrorOf(req: IncomingMessage): unknown {
  return (req as ErrorCarrier)[REQUEST_ERROR];
}

/** Marks a response as answered by a perfstack layer (`sendProblem` does it; a custom refusal handler too). */
export function markProblemSent(res: ServerResponse, code: ProblemCode): void {
  (res as MarkedResponse)[PROBLEM_SENT] = code;
  // OpenTelemetry: every answer the stack gives in the app's place is an event on the span.
  if (res.req !== undefined) spanEvent(res.req, 'problem', { 'perfstack.problem.code': code });
}

/** The problem code a perfstack layer answered this response with, or `undefined`. */
export function problemSent(res: ServerResponse): ProblemCode | undefined {
  return (res as MarkedResponse)[PROBLEM_SENT];
}

/**
 * Puts a gate in front of each error handler (`(err, req, res, next)`) of the request's
 * Express app and the routers mounted in it, once per handler. The gate records the error
 * on the request ({@link requestErrorOf}) and, when a perfstack layer already answered the
 * request (a 413 from the size limit, a 504 from a time budget), drops the error instead of
 * handing it to the app: the body parser that reports the refused body afterwards must not
 * make the app answer a second time (`ERR_HTTP_HEADERS_SENT`). Anything else reaches the
 * app's handler unchanged. A no-op outside Express.
 *
 * @param req a request inside an Express app
 */
export function gateExpressErrorHandlers(req: IncomingMessage): void {
  const router = expressRouterOf((req as IncomingMessage & { app?: unknown }).app);
  if (router === undefined || gatedLength.get(router) === router.stack.length) return;
  gatedLength.set(router, router.stack.length);
  for (const layer of expressLayers(router.stack)) {
    const handle = layer.handle as ((...args: unknown[]) => unknown) & { [GATED]?: true };
    if (typeof handle !== 'function' || handle.length !== 4 || handle[GATED] === true) continue;
    const gate = function perfstackErrorGate(
      this: unknown,
      error: unknown,
      request: IncomingMessage,
      response: ServerResponse,
      next: unknown,
    ): unknown {
      recordRequestError(request, error);
      if (problemSent(response) !== undefined && response.headersSent) return undefined;
      return handle.call(this, error, request, response, next);
    };
    Object.defineProperty(gate, GATED, { value: true });
    Object.defineProperty(gate, 'name', { value: handle.name });
    layer.handle = gate as typeof layer.handle;
  }
}
