/**
 * Options of `rateLimit()`, and their resolution into a fully-required config, once, at
 * construction (ARCHITECTURE.md rule 2). Option names follow express-rate-limit where it has
 * one (`limit`, `windowMs`, `keyGenerator`, `skip`, `standardHeaders`, `legacyHeaders`,
 * `handler`, `requestPropertyName`, `message`, `ipv6Subnet`, `validate`, `logger`, `store`).
 * Bad values throw a TypeError/RangeError naming the option, the value and the accepted form.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  checkOptionsObject,
  clusterChannel,
  consoleLogger,
  createSharedRedis,
  type NextFunction,
  type PerfstackLogger,
  parseDuration,
  type RedisClient,
  type Registry,
  readBoolean,
  readFunction,
  readInteger,
  readString,
  type SharedRedis,
  type SharedRedisOptions,
} from '@perfstack/core';
import { FIXED_WINDOW, type LimitSpec, SLIDING_WINDOW, TOKEN_BUCKET } from './algorithms.js';
import { compileTrust, type TrustFunction, type TrustProxy } from './client-ip.js';
import type { HeadersDraft } from './headers.js';

export const PKG = '@perfstack/rate-limit';

/** The algorithms. */
export type Algorithm = 'fixed-window' | 'sliding-window' | 'token-bucket';
const ALGORITHMS: readonly Algorithm[] = ['fixed-window', 'sliding-window', 'token-bucket'];
const ALGORITHM_CODE: Readonly<Record<Algorithm, number>> = {
  'fixed-window': FIXED_WINDOW,
  'sliding-window': SLIDING_WINDOW,
  'token-bucket': TOKEN_BUCKET,
};

/** A per-request value computed from the request (may be async). */
export type ValueDeterminingMiddleware<T> = (req: IncomingMessage, res: ServerResponse) => T | Promise<T>;

/** What the limiter knows about a request, on `req[requestPropertyName]` and for `handler`. */
export interface RateLimitInfo {
  /** Name of the limit reported (the one that refused the request, else the most restrictive). */
  readonly name: string;
  readonly limit: number;
  /** Quota used in that limit. */
  readonly used: number;
  readonly remaining: number;
  /** When that limit's quota is whole again. */
  readonly resetTime: Date;
  /** The client key. */
  readonly key: string;
  /** Seconds until a refused request may be retried; 0 when allowed. */
  readonly retryAfter: number;
}

/** Answers a refused request (replaces the default problem+json 429). */
export type RateLimitHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  next: NextFunction,
  info: RateLimitInfo,
) => void;

/** One limit of several (`limits: [...]`). */
export interface LimitOptions {
  /** Policy name in the headers, metric label, key part. @default '<limit>-in-<window>' (express-rate-limit's identifier), 'global-' first for global limits */
  readonly name?: string;
  /** Requests (cost units) per window; the bucket capacity for `token-bucket`. */
  readonly limit: number;
  /** Window in ms or as a duration string. One of `windowMs`/`window`. @default 60000 */
  readonly windowMs?: number | string;
  /** Alias of `windowMs` that reads well with strings (`'1m'`). */
  readonly window?: number | string;
  /** @default the limiter's `algorithm` */
  readonly algorithm?: Algorithm;
  /** `client`: one counter per key; `global`: one counter for everyone. @default 'client' */
  readonly scope?: 'client' | 'global';
  /** After a refusal, refuse this key for this long. @default the limiter's `blockDuration` */
  readonly blockDuration?: number | string;
}

/** Options of `rateLimit()`. Every one is optional. */
export interface RateLimitOptions {
  /** Requests (cost units) per window. @default 100 */
  readonly limit?: number;
  /** Window in ms or as a duration string. @default 60000 */
  readonly windowMs?: number | string;
  /** Alias of `windowMs` (`'1m'`). */
  readonly window?: number | string;
  /** @default 'fixed-window' */
  readonly algorithm?: Algorithm;
  /** Name of the single limit. @default '<limit>-in-<window>' */
  readonly name?: string;
  /** Several limits at once, each its own policy (replaces `limit`/`window`/`name`). */
  readonly limits?: readonly LimitOptions[];
  /** After a refusal, keep refusing the key for this long (0: off). @default 0 */
  readonly blockDuration?: number | string;
  /** The client key. @default the client IP (see `trustProxy`, `ipv6Subnet`) */
  readonly keyGenerator?: ValueDeterminingMiddleware<string>;
  /** `true` for requests that are not limited at all (allowlists, health checks). @default none */
  readonly skip?: ValueDeterminingMiddleware<boolean>;
  /** Cost units a request takes (an integer ≥ 0). @default 1 */
  readonly cost?: number | ValueDeterminingMiddleware<number>;
  /** IPv6 prefix length keys are grouped by (32–64), or `false`. @default 56 */
  readonly ipv6Subnet?: number | false;
  /** Which proxies may set `X-Forwarded-For` (Express's `trust proxy` forms). @default unset: `req.ip` if the framework sets it, else the socket address */
  readonly trustProxy?: TrustProxy;
  /**
   * `'memory'`, `'redis'`, or `'cluster'` (one memory store in the cluster hub — the
   * `node:cluster` primary running `clusterPrimary()` from `perfstack/cluster`, or under PM2
   * cluster mode the hub process — reached over IPC or the hub socket).
   * @default 'redis' when `redis` is given, else 'cluster' in a perfstack cluster worker, else 'memory'
   */
  readonly store?: 'memory' | 'redis' | 'cluster';
  /** The shared Redis connection, or a URL / node-redis client / options to make one. */
  readonly redis?: SharedRedis | string | RedisClient | SharedRedisOptions;
  /** Key prefix after the connection's own prefix. @default 'rl:' */
  readonly prefix?: string;
  /** On Redis trouble: `true` limits locally per instance, `false` answers 503. @default true */
  readonly failOpen?: boolean;
  /** Most client keys the memory store (and the local fallback) keeps. @default 100000 */
  readonly maxKeys?: number;
  /**
   * Most keys kept while over their limit (blocked), on top of `maxKeys`: other clients'
   * traffic never evicts a blocked key (README "Memory store"). @default 100000
   */
  readonly maxHeldKeys?: number;
  /**
   * What the local fallback admits per instance while Redis (or the cluster hub) is
   * unreachable (`failOpen: true`): `'share'` admits `ceil(limit / liveInstances)` (the
   * fleet's live size, from heartbeats in Redis, or the hub's last roster of workers), `'full'`
   * the whole limit on every instance. @default 'share'
   */
  readonly fallbackLimit?: 'share' | 'full';
  /**
   * With `failOpen: false`: how long a request may wait for a stalled Redis before the 503
   * (`0`: answer 503 at once). @default '2s'
   */
  readonly storeWait?: number | string;
  /**
   * Cluster store only (`node:cluster` / PM2, no Redis): leased quota. Once a key is busy and
   * far from its limit, the hub lends a worker a block of this many of the key's tokens, and
   * the worker admits from it without asking (no IPC message); near the limit the hub recalls
   * the blocks and decides alone, so the fleet still admits exactly `limit`. `'auto'`:
   * `floor(smallest limit / (8 × live workers))`, at most 1,000, and no leases when that is
   * under 4; a number: that block size; `false`: every decision in the hub. Per-client
   * fixed-window limits only (others are always decided in the hub). RateLimit-Remaining from a
   * block is low by at most `(workers − 1) × block` (README "Leased quota"). @default 'auto'
   */
  readonly lease?: 'auto' | number | false;
  /** IETF header draft, or `false` for none. @default 'draft-8' */
  readonly headers?: HeadersDraft | boolean;
  /** express-rate-limit's name for `headers` (`true` means draft-8 here). */
  readonly standardHeaders?: HeadersDraft | boolean;
  /** Also send `X-RateLimit-*`. @default false */
  readonly legacyHeaders?: boolean;
  /** Answers refused requests. @default problem+json 429 `RATE_LIMITED` with `Retry-After` */
  readonly handler?: RateLimitHandler;
  /** `detail` of the default 429. @default 'Too many requests, please try again later.' */
  readonly message?: string;
  /** Request property holding the {@link RateLimitInfo}. @default 'rateLimit' */
  readonly requestPropertyName?: string;
  /** Serve-time checks that may log (express-rate-limit's `validate`). @default true */
  readonly validate?: boolean | Readonly<Partial<Record<ValidationName, boolean>>>;
  /** Milliseconds clock, for tests. @default Date.now (Redis: the server's TIME) */
  readonly clock?: () => number;
  /** Metrics registry. @default a private one */
  readonly registry?: Registry;
  /** Serve-time problems. @default console */
  readonly logger?: PerfstackLogger;
}

/** Names of the serve-time checks (express-rate-limit's). */
export type ValidationName =
  | 'default'
  | 'ip'
  | 'trustProxy'
  | 'xForwardedForHeader'
  | 'keyGeneratorIpFallback'
  | 'ipv6SubnetOrKeyGenerator'
  | 'unsharedStore';
const VALIDATIONS: readonly ValidationName[] = [
  'default',
  'ip',
  'trustProxy',
  'xForwardedForHeader',
  'keyGeneratorIpFallback',
  'ipv6SubnetOrKeyGenerator',
  'unsharedStore',
];

export const KNOWN_OPTIONS: readonly (keyof RateLimitOptions)[] = [
  'limit',
  'windowMs',
  'window',
  'algorithm',
  'name',
  'limits',
  'blockDuration',
  'keyGenerator',
  'skip',
  'cost',
  'ipv6Subnet',
  'trustProxy',
  'store',
  'redis',
  'prefix',
  'failOpen',
  'maxKeys',
  'maxHeldKeys',
  'fallbackLimit',
  'storeWait',
  'lease',
  'headers',
  'standardHeaders',
  'legacyHeaders',
  'handler',
  'message',
  'requestPropertyName',
  'validate',
  'clock',
  'registry',
  'logger',
];
const LIMIT_KEYS: readonly (keyof LimitOptions)[] = [
  'name',
  'limit',
  'windowMs',
  'window',
  'algorithm',
  'scope',
  'blockDuration',
];

/** One resolved limit. */
export interface ResolvedLimit {
  readonly name: string;
  readonly algorithm: Algorithm;
  readonly global: boolean;
  readonly spec: LimitSpec;
}

/** The resolved configuration. */
export interface RateLimitConfig {
  readonly limits: readonly ResolvedLimit[];
  readonly keyGenerator: ValueDeterminingMiddleware<string> | undefined;
  readonly skip: ValueDeterminingMiddleware<boolean> | undefined;
  readonly cost: number;
  readonly costFn: ValueDeterminingMiddleware<number> | undefined;
  readonly ipv6Subnet: number | false;
  readonly trust: TrustFunction | undefined;
  readonly trustAll: boolean;
  readonly storeKind: 'memory' | 'redis' | 'cluster';
  readonly redis: SharedRedis | undefined;
  readonly ownsRedis: boolean;
  readonly prefix: string;
  readonly failOpen: boolean;
  readonly maxKeys: number;
  readonly maxHeldKeys: number;
  readonly fallbackLimit: 'share' | 'full';
  readonly storeWait: number;
  /** Leased blocks in the cluster store: `-1` auto, `0` off, else the block size. */
  readonly lease: number;
  readonly draft: HeadersDraft | undefined;
  readonly legacyHeaders: boolean;
  readonly handler: RateLimitHandler | undefined;
  readonly message: string;
  readonly requestPropertyName: string;
  readonly checks: Readonly<Record<ValidationName, boolean>>;
  readonly clock: (() => number) | undefined;
  readonly registry: Registry | undefined;
  readonly logger: PerfstackLogger;
}

const NAME_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const MAX_LIMITS = 16;
const MAX_LIMIT = 1_000_000_000;

/** express-rate-limit's default identifier: `100-in-1min`, `5-in-30sec`, `1000-in-1hr`, `10-in-2days`. */
export function defaultLimitName(limit: number, windowMs: number): string {
  const seconds = windowMs / 1000;
  const minutes = seconds / 60;
  const hours = minutes / 60;
  const days = hours / 24;
  let duration: string;
  if (seconds < 60) duration = `${seconds}sec`;
  else if (minutes < 60) duration = `${minutes}min`;
  else if (hours < 24) duration = `${hours}hr${hours > 1 ? 's' : ''}`;
  else duration = `${days}day${days > 1 ? 's' : ''}`;
  return `${limit}-in-${duration}`;
}

function readWindow(option: string, windowMs: unknown, window: unknown): number {
  if (windowMs !== undefined && window !== undefined) {
    throw new TypeError(`${PKG}: options "${option}windowMs" and "${option}window" are the same thing; pass one`);
  }
  const value = windowMs ?? window;
  if (value === undefined) return 60_000;
  return parseDuration(value, windowMs !== undefined ? `${option}windowMs` : `${option}window`, { pkg: PKG, min: 1 });
}

function readLimit(option: string, value: unknown, fallback: number): number {
  return readInteger(PKG, option, value, fallback, 1, MAX_LIMIT);
}

function readName(option: string, value: unknown, fallback: string): string {
  const name = readString(PKG, option, value, fallback);
  if (!NAME_RE.test(name)) {
    throw new RangeError(
      `${PKG}: option "${option}" must be 1 to 64 letters, digits or "._:-", got ${JSON.stringify(name.slice(0, 80))}`,
    );
  }
  return name;
}

function resolveLimit(
  option: string,
  raw: LimitOptions,
  defaults: { algorithm: Algorithm; blockMs: number },
): ResolvedLimit {
  const limit = readLimit(`${option}limit`, raw.limit, 100);
  const windowMs = readWindow(option, raw.windowMs, raw.window);
  const algorithm = readString(PKG, `${option}algorithm`, raw.algorithm, defaults.algorithm, ALGORITHMS);
  const scope = readString(PKG, `${option}scope`, raw.scope, 'client', ['client', 'global']);
  const blockMs =
    raw.blockDuration === undefined
      ? defaults.blockMs
      : parseDuration(raw.blockDuration, `${option}blockDuration`, { pkg: PKG });
  if (algorithm === 'token-bucket' && limit * windowMs > 2 ** 50) {
    throw new RangeError(
      `${PKG}: option "${option}limit" × window must stay below 2^50 for the token bucket, got ${limit} × ${windowMs}ms`,
    );
  }
  const fallbackName = `${scope === 'global' ? 'global-' : ''}${defaultLimitName(limit, windowMs)}`;
  const name = readName(`${option}name`, raw.name, fallbackName);
  return {
    name,
    algorithm,
    global: scope === 'global',
    spec: { algorithm: ALGORITHM_CODE[algorithm], limit, windowMs, blockMs },
  };
}

function readDraft(option: string, value: unknown): HeadersDraft | undefined {
  if (value === false) return undefined;
  if (value === true || value === undefined) return 'draft-8';
  return readString<HeadersDraft>(PKG, option, value, 'draft-8', ['draft-6', 'draft-7', 'draft-8']);
}

function readValidate(value: unknown): Record<ValidationName, boolean> {
  const all = (on: boolean) => Object.fromEntries(VALIDATIONS.map((v) => [v, on])) as Record<ValidationName, boolean>;
  if (value === undefined || typeof value === 'boolean') return all(value ?? true);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(
      `${PKG}: option "validate" must be a boolean or { ${VALIDATIONS.join(', ')} }, got ${String(value)}`,
    );
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!VALIDATIONS.includes(key as ValidationName)) {
      throw new TypeError(`${PKG}: unknown validation "validate.${key}"; known: ${VALIDATIONS.join(', ')}`);
    }
    readBoolean(PKG, `validate.${key}`, record[key], true);
  }
  const base = all(record.default === undefined ? true : (record.default as boolean));
  for (const key of VALIDATIONS) if (record[key] !== undefined) base[key] = record[key] as boolean;
  return base;
}

function isSharedRedis(value: unknown): value is SharedRedis {
  return (
    typeof value === 'object' &&
    value !== null &&
    'client' in value &&
    'keyPrefix' in value &&
    'commandTimeout' in value &&
    typeof (value as { recordError?: unknown }).recordError === 'function'
  );
}

/**
 * Resolves and validates the options.
 *
 * @throws {TypeError} on an unknown option or a value of the wrong type
 * @throws {RangeError} on a value out of range
 */
export function resolveOptions(options: RateLimitOptions | undefined): RateLimitConfig {
  const o = checkOptionsObject(PKG, 'rateLimit', options, KNOWN_OPTIONS);
  const algorithm = readString(PKG, 'algorithm', o.algorithm, 'fixed-window', ALGORITHMS);
  const blockMs = o.blockDuration === undefined ? 0 : parseDuration(o.blockDuration, 'blockDuration', { pkg: PKG });
  let limits: ResolvedLimit[];
  if (o.limits !== undefined) {
    for (const key of ['limit', 'windowMs', 'window', 'name'] as const) {
      if (o[key] !== undefined)
        throw new TypeError(`${PKG}: option "${key}" cannot be combined with "limits"; put it in each limit`);
    }
    if (!Array.isArray(o.limits) || o.limits.length === 0 || o.limits.length > MAX_LIMITS) {
      throw new TypeError(
        `${PKG}: option "limits" must be an array of 1 to ${MAX_LIMITS} limit objects, got ${String(o.limits)}`,
      );
    }
    limits = o.limits.map((raw, i) => {
      const entry = checkOptionsObject(PKG, `rateLimit limits[${i}]`, raw as LimitOptions, LIMIT_KEYS) as LimitOptions;
      if (entry.limit === undefined) throw new TypeError(`${PKG}: option "limits[${i}].limit" is required`);
      return resolveLimit(`limits[${i}].`, entry, { algorithm, blockMs });
    });
    const names = new Set<string>();
    for (const l of limits) {
      if (names.has(l.name))
        throw new TypeError(`${PKG}: two limits are named "${l.name}"; give each a distinct "name"`);
      names.add(l.name);
    }
  } else {
    limits = [
      resolveLimit(
        '',
        {
          limit: o.limit ?? 100,
          windowMs: o.windowMs,
          window: o.window,
          name: o.name,
          algorithm,
          blockDuration: o.blockDuration,
        },
        { algorithm, blockMs },
      ),
    ];
  }

  const keyGenerator = readFunction<ValueDeterminingMiddleware<string>>(PKG, 'keyGenerator', o.keyGenerator);
  const skip = readFunction<ValueDeterminingMiddleware<boolean>>(PKG, 'skip', o.skip);
  let cost = 1;
  let costFn: ValueDeterminingMiddleware<number> | undefined;
  if (typeof o.cost === 'function') costFn = o.cost;
  else {
    const smallest = Math.min(...limits.map((l) => l.spec.limit));
    cost = readInteger(PKG, 'cost', o.cost, 1, 0, smallest);
  }
  let ipv6Subnet: number | false = 56;
  if (o.ipv6Subnet === false) ipv6Subnet = false;
  else ipv6Subnet = readInteger(PKG, 'ipv6Subnet', o.ipv6Subnet, 56, 32, 64);

  let trust: TrustFunction | undefined;
  const trustValue = o.trustProxy;
  if (trustValue !== undefined) {
    const ok =
      typeof trustValue === 'boolean' ||
      typeof trustValue === 'function' ||
      (typeof trustValue === 'number' && Number.isInteger(trustValue) && trustValue >= 0) ||
      typeof trustValue === 'string' ||
      (Array.isArray(trustValue) && trustValue.every((v) => typeof v === 'string'));
    const accepted =
      'a boolean, a hop count (integer ≥ 0), addresses/CIDRs or "loopback"/"linklocal"/"uniquelocal" (string or array), or a function';
    if (!ok) throw new TypeError(`${PKG}: option "trustProxy" must be ${accepted}, got ${String(trustValue)}`);
    try {
      trust = compileTrust(trustValue);
    } catch (error) {
      throw new TypeError(`${PKG}: option "trustProxy" must be ${accepted}: ${(error as Error).message}`);
    }
  }

  const logger = o.logger ?? consoleLogger;
  if (
    typeof logger !== 'object' ||
    logger === null ||
    typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function'
  ) {
    throw new TypeError(`${PKG}: option "logger" must be { warn(message), error(message) }, got ${String(logger)}`);
  }
  if (
    o.redis !== undefined &&
    !isSharedRedis(o.redis) &&
    (typeof o.redis === 'string' ? !/^rediss?:\/\//.test(o.redis) : typeof o.redis !== 'object' || o.redis === null)
  ) {
    throw new TypeError(
      `${PKG}: option "redis" must be a SharedRedis, a redis:// URL, a node-redis client or options, got ${String(o.redis)}`,
    );
  }
  const storeKind = readString(
    PKG,
    'store',
    o.store,
    o.redis !== undefined ? 'redis' : clusterChannel() !== undefined ? 'cluster' : 'memory',
    ['memory', 'redis', 'cluster'],
  );
  if (storeKind === 'cluster' && clusterChannel() === undefined) {
    throw new TypeError(
      `${PKG}: option "store" is "cluster" but this process is not a perfstack cluster worker (a worker of clusterPrimary() from perfstack/cluster, a PM2 cluster-mode worker, or PERFSTACK_CLUSTER=hub)`,
    );
  }
  if (storeKind === 'redis' && o.redis === undefined) {
    throw new TypeError(`${PKG}: option "store" is "redis" but no "redis" connection was given`);
  }
  const registry = o.registry;
  if (registry !== undefined && typeof (registry as { getSingleMetric?: unknown }).getSingleMetric !== 'function') {
    throw new TypeError(`${PKG}: option "registry" must be a prom-client Registry, got ${String(registry)}`);
  }
  const prefix = readString(PKG, 'prefix', o.prefix, 'rl:');
  if (/[{}]/.test(prefix))
    throw new RangeError(`${PKG}: option "prefix" must not contain "{" or "}", got ${JSON.stringify(prefix)}`);

  if (o.headers !== undefined && o.standardHeaders !== undefined) {
    throw new TypeError(`${PKG}: options "headers" and "standardHeaders" are the same thing; pass one`);
  }
  const draft =
    o.headers !== undefined ? readDraft('headers', o.headers) : readDraft('standardHeaders', o.standardHeaders);
  const requestPropertyName: string = readString(PKG, 'requestPropertyName', o.requestPropertyName, 'rateLimit');
  if (requestPropertyName === '')
    throw new RangeError(`${PKG}: option "requestPropertyName" must be a non-empty string, got ""`);
  const failOpen = readBoolean(PKG, 'failOpen', o.failOpen, true);
  const maxKeys = readInteger(PKG, 'maxKeys', o.maxKeys, 100_000, 1, 100_000_000);
  const maxHeldKeys = readInteger(PKG, 'maxHeldKeys', o.maxHeldKeys, 100_000, 1, 100_000_000);
  const fallbackLimit = readString(PKG, 'fallbackLimit', o.fallbackLimit, 'share', ['share', 'full']) as
    | 'share'
    | 'full';
  const storeWait = o.storeWait === undefined ? 2000 : parseDuration(o.storeWait, 'storeWait', { pkg: PKG });
  const lease =
    o.lease === undefined || o.lease === 'auto'
      ? -1
      : o.lease === false
        ? 0
        : readInteger(PKG, 'lease', o.lease as number, 1, 1, 1_000_000_000);
  const legacyHeaders = readBoolean(PKG, 'legacyHeaders', o.legacyHeaders, false);
  const handler = readFunction<RateLimitHandler>(PKG, 'handler', o.handler);
  const message = readString(PKG, 'message', o.message, 'Too many requests, please try again later.');
  const checks = readValidate(o.validate);
  const clock = readFunction<() => number>(PKG, 'clock', o.clock);
  // Last, once everything else is valid, so that a bad option never leaks a connection.
  let redis: SharedRedis | undefined;
  let ownsRedis = false;
  if (o.redis !== undefined && storeKind === 'redis') {
    if (isSharedRedis(o.redis)) redis = o.redis;
    else {
      redis = createSharedRedis(o.redis as string | RedisClient | SharedRedisOptions);
      ownsRedis = true;
    }
  }
  return {
    limits,
    keyGenerator,
    skip,
    cost,
    costFn,
    ipv6Subnet,
    trust,
    trustAll: trustValue === true,
    storeKind,
    redis,
    ownsRedis,
    prefix,
    failOpen,
    maxKeys,
    maxHeldKeys,
    fallbackLimit,
    storeWait,
    lease,
    draft,
    legacyHeaders,
    handler,
    message,
    requestPropertyName,
    checks,
    clock,
    registry,
    logger,
  };
}
