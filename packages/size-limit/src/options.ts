/**
 * Options of `sizeLimit()` and `sizeLimit.route()`, resolved once into a config
 * (ARCHITECTURE.md rule 2): every check of a bad value happens here, at construction.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  checkOptionsObject,
  OnceLogger,
  optionTypeError,
  type PerfstackLogger,
  parseBytes,
  parseDuration,
  type Registry,
  readBoolean,
  readFunction,
  readInteger,
  type SharedContext,
} from '@perfstack/core';
import { readLimits } from './content-type.js';
import type { SizeLimitError } from './errors.js';

export const PKG = '@perfstack/size-limit';

/** Answers a rejected request. The default sends the error as problem+json. */
export type RejectHandler = (error: SizeLimitError, req: IncomingMessage, res: ServerResponse) => void;

/** Options of {@link sizeLimit}. Sizes take bytes or `'100kb'`-style strings; durations ms or `'30s'`. */
export interface SizeLimitOptions extends SharedContext {
  /** Largest request body, counted on the wire (and decoded, with `decompress`). @default '1mb' */
  readonly limit?: number | string;
  /** Limits by media type, overriding `limit`: `{ 'application/json': '100kb', 'multipart/*': '20mb' }`. @default {} */
  readonly limits?: Readonly<Record<string, number | string>>;
  /** Longest request target (path and query) in characters; longer gets 414. @default 8192 */
  readonly maxUrlLength?: number;
  /** Most header fields (repeated names count each time); more gets 431. @default 100 */
  readonly maxHeaderCount?: number;
  /** Most bytes of header fields (`name: value\r\n` each); more gets 431. @default '16kb' */
  readonly maxHeaderBytes?: number | string;
  /** Time the whole body may take to arrive once the app starts reading it; then 408. `0` turns it off. @default '30s' */
  readonly bodyTimeout?: number | string;
  /** Answer 411 to a body sent without `Content-Length` (chunked). @default false */
  readonly requireContentLength?: boolean;
  /** Decode `Content-Encoding: gzip | deflate | br` bodies here and limit the decoded size too. @default false */
  readonly decompress?: boolean;
  /** Time a refused connection keeps draining what the client still sends before it is destroyed. @default '2s' */
  readonly lingerTimeout?: number | string;
  /** Requests for which this returns true are not checked at all. @default undefined */
  readonly skip?: (req: IncomingMessage) => boolean;
  /** Answers a rejected request instead of the default problem+json. @default sendProblem */
  readonly onReject?: RejectHandler;
  /**
   * Let perfstack's early refusals answer 413 before the app runs to a request whose declared
   * `Content-Length` is over every body limit a route may have (the stack's, raised by any
   * `sizeLimit.route()` limit of this process), also on a route that never reads its body.
   * `false` keeps the 413 to the moment a reader starts. @default true
   */
  readonly early?: boolean;
}

/** Options of {@link sizeLimit.route}: what one route changes; the rest comes from the stack's limiter. */
export interface RouteSizeLimitOptions {
  /** This route's body limit. @default the stack's limit (or '1mb' alone) */
  readonly limit?: number | string;
  /** This route's limits by media type; they win over `limit`. @default {} */
  readonly limits?: Readonly<Record<string, number | string>>;
  /** This route's body timeout. @default the stack's bodyTimeout (or '30s' alone) */
  readonly bodyTimeout?: number | string;
  /** Metrics registry, used when the route runs without a stack limiter. @default none */
  readonly registry?: Registry;
  /** Logger, used when the route runs without a stack limiter. @default consoleLogger */
  readonly logger?: PerfstackLogger;
}

/** The resolved configuration of a limiter. */
export interface SizeLimitConfig {
  readonly limit: number;
  readonly limits: ReadonlyMap<string, number>;
  readonly maxUrlLength: number;
  /** `2 * maxHeaderCount`: compared with `rawHeaders.length` directly. */
  readonly maxRawHeaders: number;
  readonly maxHeaderCount: number;
  readonly maxHeaderBytes: number;
  readonly bodyTimeout: number;
  readonly requireContentLength: boolean;
  readonly decompress: boolean;
  readonly lingerTimeout: number;
  readonly skip: ((req: IncomingMessage) => boolean) | undefined;
  readonly onReject: RejectHandler | undefined;
  readonly early: boolean;
  readonly registry: Registry | undefined;
  readonly logger: OnceLogger;
}

/** The resolved configuration of a route override; `undefined` means "keep the stack's". */
export interface RouteSizeLimitConfig {
  readonly limit: number | undefined;
  readonly limits: ReadonlyMap<string, number>;
  readonly bodyTimeout: number | undefined;
}

const KNOWN = [
  'limit',
  'limits',
  'maxUrlLength',
  'maxHeaderCount',
  'maxHeaderBytes',
  'bodyTimeout',
  'requireContentLength',
  'decompress',
  'lingerTimeout',
  'skip',
  'onReject',
  'early',
  'registry',
  'redis',
  'logger',
] as const;

const ROUTE_KNOWN = ['limit', 'limits', 'bodyTimeout', 'registry', 'logger'] as const;

export const DEFAULT_LIMIT = 1024 * 1024;
export const DEFAULT_BODY_TIMEOUT = 30_000;

function readRegistry(value: unknown): Registry | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { registerMetric?: unknown }).registerMetric !== 'function' ||
    typeof (value as { getSingleMetric?: unknown }).getSingleMetric !== 'function'
  ) {
    throw optionTypeError(PKG, 'registry', value, 'a prom-client Registry');
  }
  return value as Registry;
}

function readLogger(value: unknown): OnceLogger {
  if (value === undefined) return new OnceLogger();
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { warn?: unknown }).warn !== 'function' ||
    typeof (value as { error?: unknown }).error !== 'function'
  ) {
    throw optionTypeError(PKG, 'logger', value, 'an object with warn(message, details) and error(message, details)');
  }
  return new OnceLogger(value as PerfstackLogger);
}

/**
 * Resolves and validates `sizeLimit()` options.
 *
 * @throws {TypeError} on an unknown key or a value of the wrong type
 * @throws {RangeError} on a value out of range
 */
export function resolveOptions(options: SizeLimitOptions | undefined): SizeLimitConfig {
  const o = checkOptionsObject(PKG, 'sizeLimit', options, KNOWN) as Partial<Record<(typeof KNOWN)[number], unknown>>;
  const maxHeaderCount = readInteger(PKG, 'maxHeaderCount', o.maxHeaderCount, 100, 1, 100_000);
  return {
    limit: o.limit === undefined ? DEFAULT_LIMIT : parseBytes(o.limit, 'limit', { pkg: PKG }),
    limits: readLimits(PKG, 'limits', o.limits),
    maxUrlLength: readInteger(PKG, 'maxUrlLength', o.maxUrlLength, 8192, 1, 1_048_576),
    maxHeaderCount,
    maxRawHeaders: maxHeaderCount * 2,
    maxHeaderBytes:
      o.maxHeaderBytes === undefined
        ? 16 * 1024
        : parseBytes(o.maxHeaderBytes, 'maxHeaderBytes', { pkg: PKG, min: 1, max: 16 * 1024 * 1024 }),
    bodyTimeout:
      o.bodyTimeout === undefined ? DEFAULT_BODY_TIMEOUT : parseDuration(o.bodyTimeout, 'bodyTimeout', { pkg: PKG }),
    requireContentLength: readBoolean(PKG, 'requireContentLength', o.requireContentLength, false),
    decompress: readBoolean(PKG, 'decompress', o.decompress, false),
    lingerTimeout:
      o.lingerTimeout === undefined ? 2000 : parseDuration(o.lingerTimeout, 'lingerTimeout', { pkg: PKG, max: 60_000 }),
    skip: readFunction<(req: IncomingMessage) => boolean>(PKG, 'skip', o.skip),
    onReject: readFunction<RejectHandler>(PKG, 'onReject', o.onReject),
    early: readBoolean(PKG, 'early', o.early, true),
    registry: readRegistry(o.registry),
    logger: readLogger(o.logger),
  };
}

/**
 * Resolves and validates `sizeLimit.route()` options.
 *
 * @throws {TypeError} on an unknown key or a value of the wrong type
 * @throws {RangeError} on a value out of range
 */
export function resolveRouteOptions(options: RouteSizeLimitOptions | undefined): {
  readonly route: RouteSizeLimitConfig;
  readonly registry: Registry | undefined;
  readonly logger: OnceLogger;
} {
  const o = checkOptionsObject(PKG, 'sizeLimit.route', options, ROUTE_KNOWN) as Partial<
    Record<(typeof ROUTE_KNOWN)[number], unknown>
  >;
  return {
    route: {
      limit: o.limit === undefined ? undefined : parseBytes(o.limit, 'limit', { pkg: PKG }),
      limits: readLimits(PKG, 'limits', o.limits),
      bodyTimeout: o.bodyTimeout === undefined ? undefined : parseDuration(o.bodyTimeout, 'bodyTimeout', { pkg: PKG }),
    },
    registry: readRegistry(o.registry),
    logger: readLogger(o.logger),
  };
}
