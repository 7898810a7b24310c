/**
 * May a response be stored, and for how long (RFC 9111 §3, §4.2.1)? Decided once, when
 * the response head goes out, from the status, the response headers, the request's
 * credentials and the route's opt-in. Pure: no side effects on the response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { storableHeaders } from './entry.js';
import { headerString, parseCacheControl, parseVary, varyValue } from './http-semantics.js';
import type { CacheConfig, RouteConfig } from './options.js';

/** What a storable response will be stored as. */
export interface Plan {
  readonly key: string;
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  /** Freshness lifetime in ms, upstream Age already subtracted. */
  readonly lifetime: number;
  readonly swr: number;
  readonly sie: number;
  readonly initialAge: number;
  readonly shared: boolean;
  readonly varyNames: readonly string[];
  readonly varyValues: readonly string[];
  readonly tags: readonly string[];
  readonly route: string;
  readonly contentLength: number | undefined;
}

/** What {@link planStorage} needs besides the request and response. */
export interface PlanInput {
  readonly key: string;
  /** Route label for stats. */
  readonly route: string;
  /** The route's opt-in, if it opted in. */
  readonly routeConfig: RouteConfig | undefined;
  /** The request carried `Authorization` or `Cookie`. */
  readonly credentialed: boolean;
  /** The app's `Cache-Tag` header (already removed from the response). */
  readonly tagHeader: unknown;
  readonly config: CacheConfig;
}

const TAG_TOKEN = /^[\x21-\x7e]{1,128}$/;
const MAX_HEADER_TAGS = 64;

/** Returns how to store the response, or undefined when it must not be stored. */
export function planStorage(req: IncomingMessage, res: ServerResponse, input: PlanInput): Plan | undefined {
  const { routeConfig, config, tagHeader, route } = input;
  const ccHeader = res.getHeader('cache-control');
  if (routeConfig === undefined && ccHeader === undefined) return undefined;
  if (req.method !== 'GET' || !config.statuses.has(res.statusCode)) return undefined;
  if (res.getHeader('set-cookie') !== undefined) return undefined;
  const cc = parseCacheControl(ccHeader);
  if (cc.noStore || cc.private || cc.noCache) return undefined;
  const explicitlyShared = cc.public || cc.sMaxAge !== undefined || cc.mustRevalidate;
  const shared = explicitlyShared || (routeConfig !== undefined && !routeConfig.private);
  if (input.credentialed && !shared) return undefined;
  let lifetime: number | undefined;
  if (cc.sMaxAge !== undefined) lifetime = cc.sMaxAge * 1000;
  else if (cc.maxAge !== undefined && (routeConfig !== undefined || cc.public)) lifetime = cc.maxAge * 1000;
  else if (routeConfig !== undefined) lifetime = routeConfig.ttl ?? config.ttl;
  if (lifetime === undefined || lifetime <= 0) return undefined;
  const vary = parseVary(res.getHeader('vary'));
  if (vary === '*') return undefined;
  const rawLength = res.getHeader('content-length');
  const contentLength = rawLength === undefined ? undefined : Number(rawLength);
  if (contentLength !== undefined && !(contentLength <= config.maxEntryBytes)) return undefined;
  const ageHeader = Number(res.getHeader('age'));
  const initialAge = Number.isInteger(ageHeader) && ageHeader > 0 ? ageHeader : 0;
  lifetime -= initialAge * 1000;
  if (lifetime <= 0) return undefined;
  // The cache picks the coding itself, so an identity body does not vary on Accept-Encoding.
  const appEncoded = res.getHeader('content-encoding') !== undefined;
  const varyNames = appEncoded ? vary : vary.filter((name) => name !== 'accept-encoding');
  const tags = [...(routeConfig?.tags ?? [])];
  if (tagHeader !== undefined) {
    for (const tag of (headerString(tagHeader) ?? '').split(',')) {
      const t = tag.trim();
      if (TAG_TOKEN.test(t) && !tags.includes(t) && tags.length < MAX_HEADER_TAGS) tags.push(t);
    }
  }
  const seconds = (value: number | undefined) => (value === undefined ? undefined : value * 1000);
  return {
    key: input.key,
    status: res.statusCode,
    headers: storableHeaders(res.getHeaders()),
    lifetime,
    swr: routeConfig?.staleWhileRevalidate ?? seconds(cc.staleWhileRevalidate) ?? config.staleWhileRevalidate,
    sie: routeConfig?.staleIfError ?? seconds(cc.staleIfError) ?? config.staleIfError,
    initialAge,
    shared,
    varyNames,
    varyValues: varyNames.map((name) => varyValue(req.headers, name)),
    tags,
    route,
    contentLength,
  };
}
