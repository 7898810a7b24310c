/**
 * Response helpers shared by the dashboard, `/metrics` and `/health`: every answer is
 * `Cache-Control: no-store` (ARCHITECTURE.md: never cached, by the browser or a shared cache)
 * and `X-Content-Type-Options: nosniff`; every failure is problem+json.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpProblemError, isHttpProblemError, type OnceLogger, sendProblem } from '@perfstack/core';
import type { AccessCheck } from './access.js';

/** Sets the headers every dashboard response carries. */
export function setCommonHeaders(res: ServerResponse): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
}

/** Sends `body` with its type; HEAD gets the headers only. */
export function sendBody(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string | Buffer,
): void {
  setCommonHeaders(res);
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/** Sends a JSON body. */
export function sendJson(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  sendBody(req, res, status, 'application/json; charset=utf-8', JSON.stringify(body));
}

/** Answers a failure: a problem as it is, anything else a 500 that reveals nothing (logged once). */
export function sendFailure(req: IncomingMessage, res: ServerResponse, error: unknown, log: OnceLogger): void {
  if (isHttpProblemError(error)) {
    sendProblem(res, error, req.method);
    return;
  }
  log.errorOnce('DASHBOARD_HANDLER_FAILED', 'a dashboard handler failed', {
    error: error instanceof Error ? error.message : String(error),
  });
  sendProblem(
    res,
    new HttpProblemError({ code: 'INTERNAL_ERROR', detail: 'The dashboard failed to answer the request.' }),
    req.method,
  );
}

/** 405 with `Allow`. */
export function methodNotAllowed(allow: string): HttpProblemError {
  return new HttpProblemError({
    code: 'METHOD_NOT_ALLOWED',
    detail: `This endpoint accepts ${allow}.`,
    headers: { Allow: allow },
  });
}

/**
 * Runs `handler` once `access` lets the request through; any throw or rejection, from
 * either, becomes a problem response.
 */
export function runProtected(
  req: IncomingMessage,
  res: ServerResponse,
  access: AccessCheck,
  log: OnceLogger,
  handler: () => void | Promise<void>,
): void {
  const run = () => {
    try {
      const result = handler();
      if (result !== undefined) result.then(undefined, (error: unknown) => sendFailure(req, res, error, log));
    } catch (error) {
      sendFailure(req, res, error, log);
    }
  };
  let pending: Promise<void> | undefined;
  try {
    pending = access(req);
  } catch (error) {
    sendFailure(req, res, error, log);
    return;
  }
  if (pending === undefined) run();
  else pending.then(run, (error: unknown) => sendFailure(req, res, error, log));
}
