/**
 * RFC 9457 problem details (`application/problem+json`) for every error perfstack answers.
 *
 * Each problem has a stable `code` (the table in ARCHITECTURE.md); clients switch on `code`,
 * humans read `title` and `detail`. `type` is a URN built from the code so that it is
 * stable and needs no web page (RFC 9457 §3.1.1 allows any URI).
 */
import type { ServerResponse } from 'node:http';
import { markProblemSent } from './errors.js';

/** Every problem code perfstack sends, with its HTTP status and title. */
export const PROBLEM_CODES = {
  BAD_REQUEST: { status: 400, title: 'Bad Request' },
  UNAUTHORIZED: { status: 401, title: 'Unauthorized' },
  FORBIDDEN: { status: 403, title: 'Forbidden' },
  NOT_FOUND: { status: 404, title: 'Not Found' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'Method Not Allowed' },
  BODY_TIMEOUT: { status: 408, title: 'Request Timeout' },
  LENGTH_REQUIRED: { status: 411, title: 'Length Required' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Payload Too Large' },
  URI_TOO_LONG: { status: 414, title: 'URI Too Long' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported Media Type' },
  RATE_LIMITED: { status: 429, title: 'Too Many Requests' },
  HEADERS_TOO_LARGE: { status: 431, title: 'Request Header Fields Too Large' },
  INTERNAL_ERROR: { status: 500, title: 'Internal Server Error' },
  CIRCUIT_OPEN: { status: 503, title: 'Service Unavailable' },
  OVERLOADED: { status: 503, title: 'Service Unavailable' },
  STORE_UNAVAILABLE: { status: 503, title: 'Service Unavailable' },
  TIMEOUT: { status: 504, title: 'Gateway Timeout' },
  ONLY_IF_CACHED: { status: 504, title: 'Gateway Timeout' },
} as const satisfies Record<string, { status: number; title: string }>;

/** A stable problem code. */
export type ProblemCode = keyof typeof PROBLEM_CODES;

/**
 * The problem code for a status (`413` → `PAYLOAD_TOO_LARGE`), for errors that carry only a
 * status (a body parser's); `undefined` when no code has it.
 */
export function codeForStatus(status: number): ProblemCode | undefined {
  for (const code of Object.keys(PROBLEM_CODES) as ProblemCode[]) {
    if (PROBLEM_CODES[code].status === status) return code;
  }
  return undefined;
}

/** What {@link sendProblem} writes. */
export interface Problem {
  /** Stable machine-readable code, e.g. `RATE_LIMITED`. */
  readonly code: ProblemCode;
  /** Human-readable explanation of this occurrence. */
  readonly detail: string;
  /** Overrides the code's default status. */
  readonly status?: number;
  /** Overrides the code's default title. */
  readonly title?: string;
  /** Extra members of the JSON body (RFC 9457 §3.2 extensions), e.g. `{ limit: 1048576 }`. */
  readonly extensions?: Readonly<Record<string, unknown>>;
  /** Extra response headers, e.g. `{ 'Retry-After': '30' }`. */
  readonly headers?: Readonly<Record<string, string | number>>;
}

/**
 * An HTTP error with a problem code. Layers throw or pass it to `next(err)`; the
 * framework adapters and {@link sendProblem} turn it into problem+json.
 */
export class HttpProblemError extends Error {
  override readonly name = 'HttpProblemError';
  readonly code: ProblemCode;
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly extensions: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string | number>>;

  constructor(problem: Problem) {
    super(problem.detail);
    const entry = PROBLEM_CODES[problem.code];
    this.code = problem.code;
    this.status = problem.status ?? entry.status;
    this.title = problem.title ?? entry.title;
    this.detail = problem.detail;
    this.extensions = problem.extensions ?? {};
    this.headers = problem.headers ?? {};
  }
}

/** Type guard for {@link HttpProblemError} (works across package copies). */
export function isHttpProblemError(error: unknown): error is HttpProblemError {
  return (
    error instanceof HttpProblemError ||
    (typeof error === 'object' &&
      error !== null &&
      (error as { name?: unknown }).name === 'HttpProblemError' &&
      typeof (error as { code?: unknown }).code === 'string' &&
      typeof (error as { status?: unknown }).status === 'number')
  );
}

/** The JSON body of a problem. */
export function problemBody(problem: Problem | HttpProblemError): Record<string, unknown> {
  const entry = PROBLEM_CODES[problem.code];
  return {
    type: `urn:perfstack:problem:${problem.code.toLowerCase().replaceAll('_', '-')}`,
    title: problem.title ?? entry.title,
    status: problem.status ?? entry.status,
    detail: problem.detail,
    code: problem.code,
    ...problem.extensions,
  };
}

/**
 * Writes a problem+json response and ends it.
 *
 * Headers the app already set for the response are cleared first, except the
 * ones every response must keep (`X-Request-Id`, CORS and security headers), so
 * that a half-built success response never leaks into the error. If the headers
 * were already sent, the response cannot change any more: it is ended as it is.
 *
 * @param res the response
 * @param problem the problem, or an {@link HttpProblemError}
 * @param method the request method; HEAD gets headers only
 */
export function sendProblem(res: ServerResponse, problem: Problem | HttpProblemError, method?: string): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  markProblemSent(res, problem.code);
  const body = problemJson(problem);
  clearForProblem(res);
  res.statusCode = problem.status ?? PROBLEM_CODES[problem.code].status;
  res.setHeader('Content-Type', 'application/problem+json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  const headers = problem.headers;
  if (headers) for (const name of Object.keys(headers)) res.setHeader(name, String(headers[name]));
  if (method === 'HEAD') res.end();
  else res.end(body);
}

/**
 * Removes the headers set so far that a problem does not keep (see {@link sendProblem}): a
 * half-built success response never leaks into an error.
 */
export function clearForProblem(res: ServerResponse): void {
  for (const name of res.getHeaderNames()) {
    if (!KEPT_HEADERS.test(name)) res.removeHeader(name);
  }
}

/** Headers kept when a problem replaces a response: ids, CORS, security, rate-limit and timing headers. */
const KEPT_HEADERS =
  /^(x-request-id|vary|access-control-|content-security-policy|cross-origin-|origin-agent-cluster|referrer-policy|strict-transport-security|x-content-type-options|x-dns-prefetch-control|x-download-options|x-frame-options|x-permitted-cross-domain-policies|x-xss-protection|ratelimit|x-ratelimit-|retry-after|server-timing|x-cache|connection)/i;

// --- Prebuilt problem bodies (the refusal path: 429, 503, 413 under a flood) -------------

/** The members every problem starts with, serialised once per code, status, title and detail. */
const prefixes = new Map<string, string>();

/** Most prefixes kept: details that vary per request (a byte count) are not worth keeping. */
const MAX_PREFIXES = 256;

/** Members the prefix holds: an extension with one of these names takes the general path. */
const STANDARD_MEMBERS: ReadonlySet<string> = new Set(['type', 'title', 'status', 'detail', 'code']);

/**
 * `JSON.stringify(problemBody(problem))`, with the standard members serialised once per
 * code, status, title and detail and only the extensions per call — a refusal under load
 * (the same 429 thousands of times) builds one short string instead of an object and its
 * serialisation.
 */
export function problemJson(problem: Problem | HttpProblemError): string {
  const extensions = problem.extensions;
  if (extensions !== undefined) {
    for (const name in extensions) {
      // A standard member overridden, an index-like key (serialised first by the spread in
      // problemBody) or a toJSON method: the general path, which keeps their exact effect.
      const first = name.charCodeAt(0);
      if (STANDARD_MEMBERS.has(name) || name === 'toJSON' || (first >= 48 && first <= 57)) {
        return JSON.stringify(problemBody(problem));
      }
    }
  }
  const entry = PROBLEM_CODES[problem.code];
  const title = problem.title ?? entry.title;
  const status = problem.status ?? entry.status;
  const cacheKey = `${problem.code}\u0000${status}\u0000${title}\u0000${problem.detail}`;
  let prefix = prefixes.get(cacheKey);
  if (prefix === undefined) {
    const standard = JSON.stringify({
      type: `urn:perfstack:problem:${problem.code.toLowerCase().replaceAll('_', '-')}`,
      title,
      status,
      detail: problem.detail,
      code: problem.code,
    });
    prefix = standard.slice(0, -1);
    if (prefixes.size < MAX_PREFIXES) prefixes.set(cacheKey, prefix);
  }
  if (extensions === undefined) return `${prefix}}`;
  const rest = JSON.stringify(extensions);
  return rest === '{}' ? `${prefix}}` : `${prefix},${rest.slice(1)}`;
}
