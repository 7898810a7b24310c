/**
 * `accessLog()` options, and their resolution into a fully-required config at
 * construction (ARCHITECTURE.md rules 2 and 3): every value is checked once, unknown keys
 * are rejected, and nothing here runs per request.
 */
import {
  checkOptionsObject,
  consoleLogger,
  optionRangeError,
  optionTypeError,
  type PerfstackLogger,
  parseDuration,
  readBoolean,
  readNumber,
  readString,
  type SharedContext,
} from '@perfstack/core';
import { DEFAULT_REDACTED_HEADERS, DEFAULT_REDACTED_RESPONSE_HEADERS, type HeaderSelection } from './redact/headers.js';
import { DEFAULT_SENSITIVE_KEYS, normalizeKey } from './redact/keys.js';

/** The package name used in error messages. */
export const PKG = '@perfstack/logger';

/** Log levels `level` accepts (pino's, plus `silent`). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** A pino log level. */
export type AccessLogLevel = (typeof LOG_LEVELS)[number];

/** Something pino can write JSON lines to: a Node writable stream or any object with `write(line)`. */
export interface LogStream {
  write(line: string): unknown;
}

/** Paths not logged by default: health checks, metrics scrapes and the dashboard's live stream. */
export const DEFAULT_IGNORE: readonly string[] = ['/health', '/metrics', '/dashboard/api/stream'];

/** Default `refusalInterval`: one line per refusal reason per client per minute. */
export const DEFAULT_REFUSAL_INTERVAL_MS = 60_000;

/** Default `closeTimeout`: how long `close()` waits for requests in flight. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/** A predicate deciding which requests are not logged. */
export type IgnorePredicate = (req: import('node:http').IncomingMessage) => boolean;

/** Options of {@link accessLog}. Every one is optional. */
export interface AccessLogOptions extends SharedContext {
  /**
   * Where JSON lines go: a writable stream (yours: `close()` does not end it), a file path
   * (opened for append, created with its folders), or a file descriptor. Paths and
   * descriptors are written asynchronously through `pino.destination({ sync: false })`
   * (sonic-boom), and `close()` flushes and closes them.
   * @default process stdout (file descriptor 1), asynchronously
   */
  readonly destination?: LogStream | NodeJS.WritableStream | string | number;
  /** Extra pino redact paths over the logged line, e.g. `['res.headers["x-internal"]']`. @default [] */
  readonly redact?: readonly string[];
  /**
   * Extra header names to censor in requests and responses (any case). Always censored:
   * `authorization`, `cookie`, `proxy-authorization`, `x-api-key`, `set-cookie`, and any
   * header whose name holds a sensitive key (`x-auth-token`).
   * @default []
   */
  readonly redactHeaders?: readonly string[];
  /**
   * Extra keys whose values are secrets, in bodies, query strings, error properties and
   * logged objects. Compared without case, `-`, `_`, `.` or spaces; entries of five or more
   * characters also match inside longer keys.
   * @default []
   */
  readonly sensitiveKeys?: readonly string[];
  /**
   * Paths whose successful and failed requests are not logged (`req.log` still works). An entry
   * ending in `/*` matches every path under it. Replaces the defaults when given. A function
   * `(req) => boolean` decides instead (the preset passes one that matches its endpoints as
   * the framework routes them: any case, trailing slash, mounted prefixes).
   * @default ['/health', '/metrics', '/dashboard/api/stream'] (none with `logEndpoints: true`)
   */
  readonly ignore?: readonly string[] | IgnorePredicate;
  /**
   * Log the stack's own endpoints (`/health`, `/metrics`, the dashboard) like any request.
   * Alone, it drops the `ignore` defaults; in the preset, it stops the preset from leaving
   * its endpoints out.
   * @default false
   */
  readonly logEndpoints?: boolean;
  /**
   * The stack's refusals (429, 503 open/shed, 413, 414, 431, 408) are written at most once
   * per reason per client per interval; the next line carries `suppressed`, the number of
   * lines left out, and a client that goes quiet gets a `refusals suppressed` summary line.
   * Metrics still count every refusal. `0` writes every refusal. Milliseconds or `'1m'`.
   * @default 60000
   */
  readonly refusalInterval?: number | string;
  /**
   * How long `close()` waits for requests in flight to finish (so their lines are written)
   * before it flushes and closes the destination. Milliseconds or `'10s'`.
   * @default 10000
   */
  readonly closeTimeout?: number | string;
  /** Share of successful (below 400) requests logged, 0 to 1; 4xx and 5xx are always logged. @default 1 */
  readonly sampleRate?: number;
  /** Lowest level written. @default 'info' */
  readonly level?: AccessLogLevel;
  /** Log the parsed JSON body (`req.body`, set by a parser such as `express.json()`), redacted. @default false */
  readonly logBody?: boolean;
  /** Header carrying the request id, read on the request and echoed on the response. @default 'x-request-id' */
  readonly requestIdHeader?: string;
  /** What secrets are replaced with. @default '[REDACTED]' */
  readonly censor?: string;
  /**
   * Which headers each line carries. `'minimal'`: on requests `user-agent`, `referer`,
   * `content-type`, `content-length`; on responses `content-type`, `content-length`,
   * `x-cache`, `location`; plus, on both, every censored header present (shown as the
   * censor). `'all'`: every header, redacted. The full set costs a larger line and more
   * CPU per request (a security middleware alone sets a dozen response headers).
   * @default 'minimal'
   */
  readonly headers?: HeaderSelection;
}

/** The resolved, fully-required configuration. */
export interface AccessLogConfig {
  readonly destination: LogStream | string | number;
  readonly redactPaths: readonly string[];
  readonly redactHeaders: readonly string[];
  readonly sensitiveKeys: readonly string[];
  readonly ignoreExact: ReadonlySet<string>;
  readonly ignorePrefixes: readonly string[];
  readonly ignorePredicate: IgnorePredicate | undefined;
  readonly logEndpoints: boolean;
  readonly refusalIntervalMs: number;
  readonly closeTimeoutMs: number;
  readonly sampleRate: number;
  readonly level: AccessLogLevel;
  readonly logBody: boolean;
  readonly requestIdHeader: string;
  readonly censor: string;
  readonly headers: HeaderSelection;
  readonly logger: PerfstackLogger;
}

const KNOWN_OPTIONS = [
  'destination',
  'redact',
  'redactHeaders',
  'sensitiveKeys',
  'ignore',
  'logEndpoints',
  'refusalInterval',
  'closeTimeout',
  'sampleRate',
  'level',
  'logBody',
  'requestIdHeader',
  'censor',
  'headers',
  'registry',
  'redis',
  'logger',
] as const;

const HEADER_SELECTIONS: readonly HeaderSelection[] = ['minimal', 'all'];

/** RFC 9110 §5.1 field names are tokens. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function readList(option: string, value: unknown, accepted: string, valid: (item: string) => boolean): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw optionTypeError(PKG, option, value, accepted);
  for (const item of value) {
    if (typeof item !== 'string') throw optionTypeError(PKG, option, item, accepted);
    if (!valid(item)) throw optionRangeError(PKG, option, item, accepted);
  }
  return [...(value as string[])];
}

function readDestination(value: unknown): LogStream | string | number {
  const accepted = 'a writable stream, a non-empty file path or a file descriptor (integer >= 0)';
  if (value === undefined) return 1;
  if (typeof value === 'string') {
    if (value.trim() === '' || value.includes('\0')) throw optionRangeError(PKG, 'destination', value, accepted);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw optionRangeError(PKG, 'destination', value, accepted);
    return value;
  }
  if (typeof value === 'object' && value !== null && typeof (value as LogStream).write === 'function') {
    return value as LogStream;
  }
  throw optionTypeError(PKG, 'destination', value, accepted);
}

function readLogger(value: unknown): PerfstackLogger {
  if (value === undefined) return consoleLogger;
  const logger = value as PerfstackLogger | null;
  if (
    typeof logger !== 'object' ||
    logger === null ||
    typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function'
  ) {
    throw optionTypeError(PKG, 'logger', value, 'an object with warn() and error() methods');
  }
  return logger;
}

function readObject(option: string, value: unknown, accepted: string): void {
  if (value !== undefined && (typeof value !== 'object' || value === null)) {
    throw optionTypeError(PKG, option, value, accepted);
  }
}

/**
 * Validates `options` and resolves the defaults.
 *
 * @param options what the caller passed (never mutated)
 * @returns the fully-required config
 * @throws {TypeError} on an unknown key or a value of the wrong type
 * @throws {RangeError} on a value of the right type out of range
 */
export function resolveAccessLogConfig(options: AccessLogOptions | undefined): AccessLogConfig {
  const o = checkOptionsObject(PKG, 'accessLog', options, KNOWN_OPTIONS) as Record<string, unknown>;
  readObject('registry', o.registry, 'a prom-client Registry');
  readObject('redis', o.redis, 'a SharedRedis');
  const redactPaths = readList('redact', o.redact, 'an array of non-empty pino redact paths', (p) => p.trim() !== '');
  const extraHeaders = readList('redactHeaders', o.redactHeaders, 'an array of header names', (h) => TOKEN.test(h));
  const extraKeys = readList(
    'sensitiveKeys',
    o.sensitiveKeys,
    'an array of keys with at least one letter or digit',
    (k) => normalizeKey(k) !== '',
  );
  const logEndpoints = readBoolean(PKG, 'logEndpoints', o.logEndpoints, false);
  const ignorePredicate = typeof o.ignore === 'function' ? (o.ignore as IgnorePredicate) : undefined;
  const ignore =
    ignorePredicate !== undefined
      ? []
      : o.ignore === undefined
        ? logEndpoints
          ? []
          : [...DEFAULT_IGNORE]
        : readList('ignore', o.ignore, 'an array of paths starting with "/", or a function (req) => boolean', (p) =>
            p.startsWith('/'),
          );
  const requestIdHeader = readString(PKG, 'requestIdHeader', o.requestIdHeader, 'x-request-id');
  if (!TOKEN.test(requestIdHeader)) {
    throw optionRangeError(PKG, 'requestIdHeader', requestIdHeader, 'a header name (RFC 9110 token)');
  }
  const censor = readString<string>(PKG, 'censor', o.censor, '[REDACTED]');
  if (censor === '') throw optionRangeError(PKG, 'censor', censor, 'a non-empty string');
  return {
    destination: readDestination(o.destination),
    redactPaths,
    redactHeaders: [
      ...new Set(
        [...DEFAULT_REDACTED_HEADERS, ...DEFAULT_REDACTED_RESPONSE_HEADERS, ...extraHeaders].map((h) =>
          h.toLowerCase(),
        ),
      ),
    ],
    sensitiveKeys: [...new Set([...DEFAULT_SENSITIVE_KEYS, ...extraKeys.map(normalizeKey)])],
    ignoreExact: new Set(ignore.filter((p) => !p.endsWith('/*'))),
    ignorePrefixes: ignore.filter((p) => p.endsWith('/*')).map((p) => p.slice(0, -1)),
    ignorePredicate,
    logEndpoints,
    refusalIntervalMs:
      o.refusalInterval === undefined
        ? DEFAULT_REFUSAL_INTERVAL_MS
        : parseDuration(o.refusalInterval, 'refusalInterval', { pkg: PKG }),
    closeTimeoutMs:
      o.closeTimeout === undefined
        ? DEFAULT_CLOSE_TIMEOUT_MS
        : parseDuration(o.closeTimeout, 'closeTimeout', { pkg: PKG }),
    sampleRate: readNumber(PKG, 'sampleRate', o.sampleRate, 1, 0, 1),
    level: readString<AccessLogLevel>(PKG, 'level', o.level, 'info', LOG_LEVELS),
    logBody: readBoolean(PKG, 'logBody', o.logBody, false),
    requestIdHeader: requestIdHeader.toLowerCase(),
    censor,
    headers: readString<HeaderSelection>(PKG, 'headers', o.headers, 'minimal', HEADER_SELECTIONS),
    logger: readLogger(o.logger),
  };
}
