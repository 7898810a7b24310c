/**
 * Per-request cache state, kept on the request under Symbol keys (ARCHITECTURE.md rule 6),
 * shared by every stage of the engine: request → lookup/collapse → serve → record → invalidate.
 */
import type { IncomingMessage } from 'node:http';
import type { CacheEngine } from './engine.js';
import type { Entry } from './entry.js';
import type { CacheControl } from './http-semantics.js';
import type { RouteConfig } from './options.js';

/** Set on the request by the global layer: the instance, for `cache()` routes. */
export const INSTANCE = Symbol.for('perfstack.cache.instance');
/** Set on the request while the cache handles it. */
export const STATE = Symbol.for('perfstack.cache.state');
/** Set when the global layer skipped the request: `cache()` routes leave it alone too. */
export const SKIPPED = Symbol.for('perfstack.cache.skipped');

/** A fetch other requests for the same key and variant can wait for. */
export interface Flight {
  /** The key, plus the variant once the key's responses are known to vary (fleet.ts). */
  readonly id: string;
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

/** What the cache knows about one request. */
export interface RequestState {
  readonly engine: CacheEngine;
  key: string;
  readonly start: number;
  route: RouteConfig | undefined;
  /** A stale entry usable if the origin fails (stale-if-error). */
  stale: Entry | undefined;
  /** Answered from the cache (hit, stale, fallback). */
  served: boolean;
  /** A forced miss (background refresh, or request no-cache when honoured). */
  readonly refresh: boolean;
  readonly credentialed: boolean;
  /** The flight this request leads, if any. */
  leader: Flight | undefined;
  lockHeld: boolean;
  /** The fleet lock this request holds or waits on: its flight id (per variant, fleet.ts). */
  lockName: string;
  /** The origin's 5xx was swallowed and replaced by the stale entry. */
  replaced: boolean;
  /** The key was marked hit-for-pass when the request came. */
  passed: boolean;
  /** Clock (ms) when the request went to the origin (§4.2.3 request_time). */
  requestTime: number;
  /** The stored entry being revalidated with a conditional request (§4.3), if any. */
  validating: Entry | undefined;
  /** The client's own `If-None-Match`/`If-Modified-Since`, set aside while the cache validates. */
  clientConditionals: Readonly<Record<string, string | string[] | undefined>> | undefined;
  /** The request's own Cache-Control (max-age, min-fresh, max-stale), when `requestCacheControl` is on. */
  directives: CacheControl | undefined;
  /** After a 304 from the app: the body to send instead of the app's (null: none). */
  answerBody: Buffer | null | undefined;
}

export type StateRequest = IncomingMessage & {
  [STATE]?: RequestState;
  [INSTANCE]?: CacheEngine;
  [SKIPPED]?: true;
};

/** The cache state of a request, if a cache handles it. */
export function requestState(req: IncomingMessage): RequestState | undefined {
  return (req as StateRequest)[STATE];
}

/** The global instance that saw the request, and whether it skipped it. */
export function requestInstance(req: IncomingMessage): { engine: CacheEngine | undefined; skipped: boolean } {
  const r = req as StateRequest;
  return { engine: r[INSTANCE], skipped: r[SKIPPED] === true };
}

/** A fresh state for a request the cache handles. */
export function createState(
  engine: CacheEngine,
  key: string,
  start: number,
  route: RouteConfig | undefined,
  refresh: boolean,
  credentialed: boolean,
  directives: CacheControl | undefined,
): RequestState {
  return {
    engine,
    key,
    start,
    route,
    stale: undefined,
    served: false,
    refresh,
    credentialed,
    leader: undefined,
    lockHeld: false,
    lockName: key,
    replaced: false,
    passed: false,
    requestTime: 0,
    validating: undefined,
    clientConditionals: undefined,
    directives,
    answerBody: undefined,
  };
}
