/**
 * Request ids: a valid incoming `X-Request-Id` is kept, anything else is replaced by a
 * fresh id; the id is echoed on the response. One implementation for the logger and the
 * preset, which assigns the id before the cache so that hits carry their own id too.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const REQUEST_ID = Symbol.for('perfstack.requestId');

/** Longest incoming id kept. */
export const MAX_REQUEST_ID_LENGTH = 128;

/** Safe characters: no CR/LF, no spaces, nothing that could forge a log line or a header. */
const SAFE_ID = /^[A-Za-z0-9._:@/+=-]+$/;

/** True when `value` is an id worth keeping: 1 to 128 safe characters. */
export function isValidRequestId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_REQUEST_ID_LENGTH && SAFE_ID.test(value);
}

type IdRequest = IncomingMessage & { [REQUEST_ID]?: string; id?: unknown };

/**
 * Returns the request's id, assigning one the first time: the incoming header if valid,
 * else a new UUID. Sets the response header (`X-Request-Id` unless `header` says otherwise).
 */
export function ensureRequestId(
  req: IncomingMessage,
  res: ServerResponse | undefined,
  header = 'x-request-id',
  generate: () => string = randomUUID,
): string {
  const withId = req as IdRequest;
  let id = withId[REQUEST_ID];
  if (id === undefined) {
    const incoming = req.headers[header];
    id = isValidRequestId(incoming) ? incoming : generate();
    withId[REQUEST_ID] = id;
    if (res !== undefined && !res.headersSent) res.setHeader(header, id);
  }
  return id;
}

/** The id assigned so far, if any. */
export function getRequestId(req: IncomingMessage): string | undefined {
  return (req as IdRequest)[REQUEST_ID];
}
