/**
 * May a response be stored, and for how long (RFC 9111 §3, §4.2.1)? Decided once, when
 * the response head goes out, from the status, the response headers, the request's
 * credentials and the route's opt-in. Pure: no side effects on the response.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { storableHeaders } from './entry.js';
import { cachePolicy, type FreshnessSource, formatHttpDate, hasValidator } from './freshness.js';
import { type CacheControl, headerString, parseVary, varyValue } from './http-semantics.js';
import type { CacheConfig, RouteConfig } from './options.js';

/** What a storable response will be stored as. */
export interface Plan {
  readonly key: string;
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  /** Freshness lifetime in ms, corrected initial age already subtracted (may be ≤ 0: stale at once). */
  readonly lifetime: number;
  readonly swr: number;
  readonly sie: number;
  /** Corrected initial age, seconds. */
  readonly initialAge: number;
  readonly shared: boolean;
  readonly varyNames: readonly string[];
  readonly varyValues: readonly string[];
  readonly tags: readonly string[];
  readonly route: string;
  readonly contentLength: number | undefined;
  /** Where the freshness lifetime came from. */
  readonly source: FreshnessSource;
  /** must-revalidate, proxy-revalidate, no-cache or s-maxage in the directives obeyed: never served stale. */
  readonly forbidsStale: boolean;
}

/** What {@link planStorage} needs besides the request and response. */
export interface PlanInput {
  readonly key: string;
  /** Route label for stats. */
  readonly route: string;
  /** The route's opt-in, if it opted in. */
  readonly routeConfig: RouteConfig | undefined;
  /** The app's `Cache-Tag` header (already removed from the response). */
  readonly tagHeader: unknown;
  readonly config: CacheConfig;
  /** Clock (ms) when the request came and when the response head went out (§4.2.3). */
  readonly requestTime: number;
  readonly responseTime: number;
  /** The method the response is stored for, when not the request's (POST stored for GET). */
  readonly method?: string;
  /** Runtime ttl settings (`setTtl`), when any: the route's, then the layer's default. */
  readonly tuned?: TunedTtls;
}

/** Runtime ttl settings of a cache instance (the settings API): ms per route label, and the default. */
export interface TunedTtls {
  readonly routes: ReadonlyMap<string, number>;
  readonly ttl: number | undefined;
}

/** must-revalidate, proxy-revalidate, no-cache, s-maxage: never served stale (§4.2.4, §5.2.2). */
function forbidsStale(cc: CacheControl): boolean {
  return cc.mustRevalidate || cc.proxyRevalidate || cc.noCache || cc.sMaxAge !== undefined;
}

const TAG_TOKEN = /^[\x21-\x7e]{1,128}$/;
const MAX_HEADER_TAGS = 64;

/**
 * Returns how to store the response, or undefined when it must not be stored. The rules
 * are {@link cachePolicy}'s (RFC 9111 §3 and ARCHITECTURE.md's safety rules); this adds what
 * the engine needs: stale windows, vary, tags, the headers to keep.
 */
export function planStorage(
  req: IncomingMessage,
  status: number,
  headers: OutgoingHttpHeaders,
  input: PlanInput,
): Plan | undefined {
  const { routeConfig, config, tagHeader, route } = input;
  const policy = cachePolicy(
    { method: input.method ?? req.method, headers: req.headers },
    { status, headers },
    input.requestTime,
    input.responseTime,
    {
      statuses: config.statuses,
      heuristic: config.heuristic,
      targeted: config.targeted,
      routeTtl:
        routeConfig === undefined
          ? undefined
          : (input.tuned?.routes.get(route) ?? routeConfig.ttl ?? input.tuned?.ttl ?? config.ttl),
      overrideFreshness: routeConfig?.overrideFreshness === true,
      routeShares: routeConfig !== undefined && !routeConfig.private,
    },
  );
  if (!policy.storable) return undefined;
  const vary = parseVary(headers.vary);
  if (vary === '*') return undefined;
  const rawLength = headers['content-length'];
  const contentLength = rawLength === undefined ? undefined : Number(rawLength);
  if (contentLength !== undefined && !(contentLength <= config.maxEntryBytes)) return undefined;
  const lifetime = policy.lifetime - policy.initialAge;
  const ms = (value: number | undefined) => (value === undefined ? undefined : value * 1000);
  // must-revalidate / proxy-revalidate / no-cache forbid serving stale (§4.2.4), stale-if-error included.
  const swr = policy.mustRevalidate
    ? 0
    : (routeConfig?.staleWhileRevalidate ??
      ms(policy.staleWhileRevalidate) ??
      (policy.sMaxAge ? 0 : config.staleWhileRevalidate));
  const sie = policy.mustRevalidate
    ? 0
    : (routeConfig?.staleIfError ?? ms(policy.staleIfError) ?? (policy.sMaxAge ? 0 : config.staleIfError));
  // Stale from the start: only worth storing when it can be revalidated or served stale.
  if (lifetime <= 0 && !hasValidator(headers) && swr <= 0 && sie <= 0) return undefined;
  // The cache picks the coding itself, so an identity body does not vary on Accept-Encoding.
  const appEncoded = headers['content-encoding'] !== undefined;
  const varyNames = appEncoded ? vary : vary.filter((name) => name !== 'accept-encoding');
  const tags = [...(routeConfig?.tags ?? [])];
  if (tagHeader !== undefined) {
    for (const tag of (headerString(tagHeader) ?? '').split(',')) {
      const t = tag.trim();
      if (TAG_TOKEN.test(t) && !tags.includes(t) && tags.length < MAX_HEADER_TAGS) tags.push(t);
    }
  }
  const stored = storableHeaders(headers);
  // The stored Date is served as stored (§4.2.3 computes Age from it); Node writes one at send time.
  if (stored.date === undefined) stored.date = formatHttpDate(input.responseTime);
  if (!config.forwardTargeted) for (const name of config.targeted) delete stored[name];
  return {
    key: input.key,
    status,
    headers: stored,
    lifetime,
    swr,
    sie,
    initialAge: policy.initialAge / 1000,
    shared: policy.shared,
    varyNames,
    varyValues: varyNames.map((name) => varyValue(req.headers, name)),
    tags,
    route,
    contentLength,
    source: policy.source,
    forbidsStale: forbidsStale(policy.directives),
  };
}
