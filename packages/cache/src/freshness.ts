/**
 * The caching policy of one exchange as pure functions of (request, response, now):
 * may a shared cache store it (RFC 9111 §3, §3.5), for how long is it fresh (§4.2.1,
 * §4.2.2), how old is it already (§4.2.3), which directives apply (RFC 9213 targeted
 * fields first). No I/O, no clock, no Node objects: `test/freshness.test.ts` drives
 * every rule from a table.
 *
 * On top of RFC 9111, the safety rules of ARCHITECTURE.md: a request with `Cookie`, or a
 * response with `Set-Cookie`, is stored only when the response is explicitly shared
 * (`public`, `s-maxage`) or the route says `private: false`.
 */
import {
  type CacheControl,
  DELTA_SECONDS_CAP,
  EMPTY_CACHE_CONTROL,
  formatHttpDate,
  headerString,
  parseCacheControl,
  parseHttpDate,
  parseVary,
} from './http-semantics.js';

/** Statuses RFC 9110 §15.1 calls heuristically cacheable. */
export const HEURISTIC_STATUSES: readonly number[] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/**
 * Statuses whose caching rules this cache implements, for `must-understand` (§5.2.2.3).
 * 206 is left out: partial responses are never stored.
 */
const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([
  200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501,
]);

/** Heuristic freshness (§4.2.2): a fraction of the time since Last-Modified, capped. */
export interface HeuristicPolicy {
  /** Fraction of (Date − Last-Modified). @default 0.1 (the "10%" §4.2.2 mentions) */
  readonly fraction: number;
  /** Longest heuristic lifetime, ms. @default 1 day */
  readonly max: number;
}

/** What the policy needs to know besides the request and response. */
export interface PolicyOptions {
  /** Statuses that may be stored on heuristic freshness, `public` or the route's ttl. */
  readonly statuses: ReadonlySet<number>;
  /** Heuristic freshness, or false for none. */
  readonly heuristic: HeuristicPolicy | false;
  /** Targeted field names (RFC 9213), most specific first, lower case; `cdn-cache-control` last. */
  readonly targeted: readonly string[];
  /** The route opted in: its ttl (ms), the app's default when the response says nothing. */
  readonly routeTtl: number | undefined;
  /** The route's ttl wins over the response's freshness (like nginx `proxy_ignore_headers`). */
  readonly overrideFreshness: boolean;
  /** The route said `private: false`: credentialed responses may be stored and shared. */
  readonly routeShares: boolean;
}

/** The request as the policy sees it (header names lower case, as Node gives them). */
export interface RequestView {
  readonly method: string | undefined;
  readonly headers: Readonly<Record<string, unknown>>;
}

/** The response as the policy sees it (header names lower case, as `getHeaders()` gives them). */
export interface ResponseView {
  readonly status: number;
  readonly headers: Readonly<Record<string, unknown>>;
}

/** Where a freshness lifetime came from. */
export type FreshnessSource = 's-maxage' | 'max-age' | 'expires' | 'heuristic' | 'ttl' | 'none';

/** The verdict on one exchange. */
export type Policy =
  | { readonly storable: false; readonly reason: string }
  | {
      readonly storable: true;
      /** Freshness lifetime, ms (0: stale at once, reused only after revalidation). */
      readonly lifetime: number;
      readonly source: FreshnessSource;
      /** Corrected initial age (§4.2.3), ms. */
      readonly initialAge: number;
      /** May answer requests with `Authorization`/`Cookie`. */
      readonly shared: boolean;
      /** Must be revalidated before every reuse (`no-cache`). */
      readonly noCache: boolean;
      /** Never served stale (`must-revalidate`, `proxy-revalidate`, `no-cache`). */
      readonly mustRevalidate: boolean;
      /**
       * `s-maxage` implies `proxy-revalidate` (§5.2.2.10): the cache's own default stale
       * windows do not apply; the response's explicit RFC 5861 directives still do.
       */
      readonly sMaxAge: boolean;
      /** RFC 5861 windows from the response, seconds (undefined: not given). */
      readonly staleWhileRevalidate: number | undefined;
      readonly staleIfError: number | undefined;
      /** The directives used (the targeted field's when there was a valid one). */
      readonly directives: CacheControl;
    };

// ---------------------------------------------------------------- dates

/** The one HTTP-date parser of the package (strict RFC 9110 §5.6.7) lives in http-semantics.ts. */
export { formatHttpDate, parseHttpDate };

// ---------------------------------------------------------------- age

/**
 * The `Age` value (§5.1) in seconds: the first member of the field that is a valid
 * delta-seconds (list values and repeated lines included); non-numeric, negative and
 * fractional members (`7200.0`) are ignored. 0 when none is valid.
 */
export function ageValue(header: unknown): number {
  if (header === undefined || header === null) return 0;
  if (typeof header === 'number')
    return Number.isInteger(header) && header >= 0 ? Math.min(header, DELTA_SECONDS_CAP) : 0;
  const text = headerString(header);
  if (text === undefined || text.length > 256) return 0;
  for (const member of text.split(',')) {
    const trimmed = member.trim();
    if (!/^\d+$/.test(trimmed)) continue;
    return Math.min(Number(trimmed), DELTA_SECONDS_CAP);
  }
  return 0;
}

/**
 * Corrected initial age (§4.2.3), ms: the larger of the apparent age (response time −
 * Date) and the `Age` value plus the response delay (response time − request time).
 */
export function correctedInitialAge(input: {
  readonly ageSeconds: number;
  readonly date: number | undefined;
  readonly requestTime: number;
  readonly responseTime: number;
}): number {
  const apparent = input.date === undefined ? 0 : Math.max(0, input.responseTime - input.date);
  const delay = Math.max(0, input.responseTime - input.requestTime);
  return Math.max(apparent, input.ageSeconds * 1000 + delay);
}

// ---------------------------------------------------------------- RFC 9213 targeted fields

const SF_KEY = /^[a-z*][a-z0-9_\-.*]*$/;
const SF_INTEGER = /^-?\d{1,15}$/;
const SF_TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/;

/**
 * Parses a targeted cache-control field (RFC 9213 §2.1) as a Structured Fields
 * Dictionary (RFC 8941): lower-case keys, integer/token/string/boolean values, optional
 * parameters. A field that does not parse is invalid (undefined) and the next field in
 * the target list, or Cache-Control, applies. A directive with a value of the wrong type
 * (`max-age="60"`, `max-age=-1`) is ignored, not the whole field.
 */
export function parseTargeted(value: unknown): CacheControl | undefined {
  const text = headerString(value);
  if (text === undefined || text.length > 4096) return undefined;
  if (text.trim() === '') return undefined;
  const members = text.split(',');
  const directives: string[] = [];
  for (const raw of members) {
    const member = raw.trim();
    const semi = member.indexOf(';');
    const item = semi === -1 ? member : member.slice(0, semi);
    const eq = item.indexOf('=');
    const key = eq === -1 ? item : item.slice(0, eq);
    if (!SF_KEY.test(key)) return undefined;
    if (eq === -1) {
      directives.push(key);
      continue;
    }
    const v = item.slice(eq + 1);
    if (SF_INTEGER.test(v)) {
      if (!v.startsWith('-')) directives.push(`${key}=${v}`);
    } else if (v === '?1') {
      directives.push(key);
    } else if (v === '?0' || /^"(?:[^"\\]|\\.)*"$/.test(v) || SF_TOKEN.test(v)) {
      // false, or a string/token where these directives take none: ignored
    } else {
      return undefined;
    }
  }
  return parseCacheControl(directives.join(', ')) ?? EMPTY_CACHE_CONTROL;
}

/**
 * The directives this cache obeys (RFC 9213 §2.2): those of the first targeted field
 * with a valid, non-empty value, else `Cache-Control` (with `Pragma: no-cache` read as
 * `no-cache` when there is no Cache-Control, §5.4). `targeted` says which field won.
 */
export function selectDirectives(
  headers: Readonly<Record<string, unknown>>,
  targeted: readonly string[],
): { readonly cc: CacheControl; readonly targeted: string | undefined } {
  for (const name of targeted) {
    const raw = headers[name];
    if (raw === undefined) continue;
    const cc = parseTargeted(raw);
    if (cc !== undefined) return { cc, targeted: name };
  }
  return { cc: parseCacheControl(headers['cache-control']), targeted: undefined };
}

// ---------------------------------------------------------------- freshness

/**
 * Freshness lifetime (§4.2.1), ms: `s-maxage` > `max-age` > `Expires − Date` >
 * heuristic (§4.2.2) > the route's ttl. An invalid `s-maxage`/`max-age`/`Expires` is a
 * lifetime of 0 (stale), not "absent". With `overrideFreshness`, the route's ttl wins.
 * Targeted fields replace Cache-Control and `Expires` (RFC 9213 §2.2).
 */
function freshnessLifetime(
  res: ResponseView,
  cc: CacheControl,
  usesTargeted: boolean,
  responseTime: number,
  options: Pick<PolicyOptions, 'heuristic' | 'routeTtl' | 'overrideFreshness'> & {
    readonly heuristicAllowed: boolean;
  },
): { readonly lifetime: number; readonly source: FreshnessSource } {
  if (options.overrideFreshness && options.routeTtl !== undefined) return { lifetime: options.routeTtl, source: 'ttl' };
  if (cc.sMaxAge !== undefined) return { lifetime: seconds(cc.sMaxAge), source: 's-maxage' };
  if (cc.maxAge !== undefined) return { lifetime: seconds(cc.maxAge), source: 'max-age' };
  const headers = res.headers;
  if (!usesTargeted && headers.expires !== undefined) {
    const raw = headers.expires;
    // Two Expires lines: "the response should be considered stale" is the safe reading (§4.2.1).
    const expires = Array.isArray(raw) && raw.length > 1 ? undefined : parseHttpDate(raw);
    if (expires === undefined) return { lifetime: 0, source: 'expires' };
    const date = parseHttpDate(headers.date) ?? responseTime;
    return { lifetime: Math.max(0, expires - date), source: 'expires' };
  }
  const heuristic = options.heuristic;
  if (heuristic !== false && options.heuristicAllowed) {
    const lastModified = parseHttpDate(headers['last-modified']);
    if (lastModified !== undefined) {
      const date = parseHttpDate(headers.date) ?? responseTime;
      if (lastModified <= date) {
        const lifetime = Math.min(heuristic.max, Math.floor((date - lastModified) * heuristic.fraction));
        if (lifetime > 0 || options.routeTtl === undefined) return { lifetime, source: 'heuristic' };
      }
    }
  }
  if (options.routeTtl !== undefined) return { lifetime: options.routeTtl, source: 'ttl' };
  return { lifetime: 0, source: 'none' };
}

function seconds(value: number): number {
  return Number.isNaN(value) ? 0 : value * 1000;
}

/** True when the exchange has explicit freshness information (§4.2.1), valid or not. */
function hasExplicitFreshness(res: ResponseView, cc: CacheControl, usesTargeted: boolean): boolean {
  return cc.sMaxAge !== undefined || cc.maxAge !== undefined || (!usesTargeted && res.headers.expires !== undefined);
}

/**
 * May a shared cache store this response to this request, and how (RFC 9111 §3)?
 *
 * `requestTime`/`responseTime` are the clock (ms) when the request came and when the
 * response head went out; `method` is the request's (GET, or POST for §4.4's
 * "Content-Location equals the URL" case, which the caller checks).
 */
export function cachePolicy(
  req: RequestView,
  res: ResponseView,
  requestTime: number,
  responseTime: number,
  options: PolicyOptions,
): Policy {
  const status = res.status;
  const headers = res.headers;
  if (req.method !== 'GET' && req.method !== 'POST') return { storable: false, reason: 'method' };
  if (status < 200 || status === 206 || status === 304 || status > 599) return { storable: false, reason: 'status' };
  const { cc, targeted } = selectDirectives(headers, options.targeted);
  const usesTargeted = targeted !== undefined;
  // must-understand (§5.2.2.3): store only statuses whose rules we implement; then no-store yields to it.
  if (cc.mustUnderstand && !UNDERSTOOD_STATUSES.has(status)) return { storable: false, reason: 'must-understand' };
  if (cc.noStore && !cc.mustUnderstand) return { storable: false, reason: 'no-store' };
  if (cc.private) return { storable: false, reason: 'private' };
  if (parseVary(headers.vary) === '*') return { storable: false, reason: 'vary-star' };
  const explicitShared = cc.public || cc.sMaxAge !== undefined;
  // §3.5: Authorization only with public, s-maxage or must-revalidate (or a route that shares).
  if (req.headers.authorization !== undefined && !(explicitShared || cc.mustRevalidate || options.routeShares)) {
    return { storable: false, reason: 'authorization' };
  }
  // ARCHITECTURE.md: Cookie / Set-Cookie only when the response or the route explicitly shares.
  if (req.headers.cookie !== undefined && !(explicitShared || options.routeShares)) {
    return { storable: false, reason: 'cookie' };
  }
  if (headers['set-cookie'] !== undefined && !(explicitShared || options.routeShares)) {
    return { storable: false, reason: 'set-cookie' };
  }
  const explicit = hasExplicitFreshness(res, cc, usesTargeted);
  const heuristicStatus = options.statuses.has(status);
  // A status outside the heuristic list is stored only with explicit freshness (§3, §4.2.2).
  if (!explicit && !heuristicStatus && !(options.overrideFreshness && options.routeTtl !== undefined)) {
    return { storable: false, reason: 'status' };
  }
  const routeTtl = heuristicStatus ? options.routeTtl : undefined;
  const { lifetime, source } = freshnessLifetime(res, cc, usesTargeted, responseTime, {
    heuristic: options.heuristic,
    heuristicAllowed: heuristicStatus || cc.public,
    routeTtl,
    overrideFreshness: options.overrideFreshness,
  });
  const noCache = cc.noCache && !(options.overrideFreshness && routeTtl !== undefined);
  // Nothing says the response may be reused: not stored (§3 "contains ..." — none of them).
  if (source === 'none' && !cc.public && !noCache) return { storable: false, reason: 'no-freshness' };
  const initialAge = correctedInitialAge({
    ageSeconds: ageValue(headers.age),
    date: parseHttpDate(headers.date),
    requestTime,
    responseTime,
  });
  return {
    storable: true,
    lifetime: noCache ? 0 : lifetime,
    source,
    initialAge,
    shared: explicitShared || cc.mustRevalidate || options.routeShares,
    noCache,
    mustRevalidate: cc.mustRevalidate || cc.proxyRevalidate || noCache,
    sMaxAge: cc.sMaxAge !== undefined,
    staleWhileRevalidate: finite(cc.staleWhileRevalidate),
    staleIfError: finite(cc.staleIfError),
    directives: cc,
  };
}

function finite(value: number | undefined): number | undefined {
  return value === undefined || Number.isNaN(value) ? undefined : value;
}

/** True when an entry with these validators can be revalidated (§4.3.1). */
export function hasValidator(headers: Readonly<Record<string, unknown>>): boolean {
  return typeof headers.etag === 'string' || parseHttpDate(headers['last-modified']) !== undefined;
}
