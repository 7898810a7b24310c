/**
 * Cache keys (RFC 9111 §4.1, and cache-poisoning safety).
 *
 * The primary key of a request is its target (path and query, exactly as the client sent
 * it: `/a`, `/a/`, `/%61` and `/A` are four keys, nothing is normalised into a collision)
 * followed by its origin, `scheme://authority`, computed the way the framework computes
 * `req.protocol`/`req.host`: `X-Forwarded-Host`/`X-Forwarded-Proto` count only when the
 * app trusts the proxy that sent them (Express `trust proxy`, Koa `app.proxy`), else the
 * `Host` header and the socket. A response that reflects the host (an absolute redirect,
 * a canonical link) is therefore only ever served to requests for that host.
 *
 * Key format: `<target> <scheme>://<authority>` — target first, so prefix invalidation by
 * path (`/products`) reaches every host; a space never occurs in a valid authority.
 * Keys are bounded: a target longer than {@link MAX_KEY_LENGTH} keeps its first
 * characters and replaces the rest with a SHA-1 digest.
 *
 * Requests the cache refuses to key (not looked up, not stored): a syntactically invalid
 * or missing authority, a GET/HEAD with a body, and requests carrying headers some
 * frameworks and proxies use to rewrite the URL or the method ({@link REWRITE_HEADERS}).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** Longest target kept as it is. */
export const MAX_KEY_LENGTH = 512;
const KEPT_PREFIX = 200;

/** Request headers that rewrite the URL or the method somewhere behind the cache: such requests are not cached. */
export const REWRITE_HEADERS: readonly string[] = [
  'x-original-url',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];

/** Bounds a key: short keys as they are, long ones as prefix + digest. */
export function boundKey(raw: string): string {
  if (raw.length <= MAX_KEY_LENGTH) return raw;
  return `${raw.slice(0, KEPT_PREFIX)}#${createHash('sha1').update(raw).digest('base64url')}`;
}

/** The request target as the client sent it (Express rewrites `req.url` under a mounted router). */
export function requestTarget(req: IncomingMessage): string {
  const original = (req as { originalUrl?: unknown }).originalUrl;
  return typeof original === 'string' ? original : (req.url ?? '/');
}

/** RFC 3986 `host [":" port]`: IP-literal, IPv4 or reg-name; no userinfo, no path. */
const AUTHORITY = /^(?:\[[0-9a-f:.]+\]|(?:[a-z0-9\-._~!$&'()*+,;=]|%[0-9a-f]{2})+)(?::\d{0,5})?$/i;
let lastAuthority = '';

/** True for a syntactically valid authority (memoises the last one: most requests repeat it). */
export function isValidAuthority(value: string): boolean {
  if (value === lastAuthority) return true;
  if (value.length === 0 || value.length > 261 || !AUTHORITY.test(value)) return false;
  lastAuthority = value;
  return true;
}

const KOA_CONTEXT = Symbol.for('perfstack.koaContext');

type FrameworkRequest = IncomingMessage & {
  app?: { get?: (setting: string) => unknown };
  [KOA_CONTEXT]?: { app?: { proxy?: unknown } };
};

/** Does the app trust the proxy this request came through (Express `trust proxy`, Koa `app.proxy`)? */
function trustsProxy(req: FrameworkRequest): boolean {
  const app = req.app;
  if (app !== undefined && typeof app.get === 'function') {
    const trust = app.get('trust proxy fn');
    return typeof trust === 'function' && trust(req.socket?.remoteAddress, 0) === true;
  }
  return req[KOA_CONTEXT]?.app?.proxy === true;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  const comma = text.indexOf(',');
  return (comma === -1 ? text : text.slice(0, comma)).trim();
}

/**
 * The request's origin, `scheme://authority` lower-cased, as the framework computes it;
 * undefined when the authority is missing or invalid (the request is then not cached).
 */
export function requestOrigin(req: IncomingMessage): string | undefined {
  const headers = req.headers;
  let host = headers.host;
  let scheme = (req.socket as TLSSocket | undefined)?.encrypted === true ? 'https' : 'http';
  if (
    (headers['x-forwarded-host'] !== undefined || headers['x-forwarded-proto'] !== undefined) &&
    trustsProxy(req as FrameworkRequest)
  ) {
    const forwardedHost = firstValue(headers['x-forwarded-host']);
    if (forwardedHost !== undefined && forwardedHost !== '') host = forwardedHost;
    const koa = (req as FrameworkRequest)[KOA_CONTEXT] !== undefined;
    const proto = firstValue(headers['x-forwarded-proto']);
    if (proto !== undefined && proto !== '' && !(koa && scheme === 'https')) scheme = proto.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return undefined;
  }
  if (host === undefined) return undefined;
  // Most requests repeat the last origin: hand back the same string (no allocation per hit).
  if (host === lastHost && scheme === lastScheme) return lastOrigin;
  if (!isValidAuthority(host)) return undefined;
  lastHost = host;
  lastScheme = scheme;
  lastOrigin = `${scheme}://${host.toLowerCase()}`;
  return lastOrigin;
}

let lastHost = '';
let lastScheme = '';
let lastOrigin = '';

/** True when the request must not be looked up or stored (see the module header). */
export function isUnkeyable(req: IncomingMessage): boolean {
  const headers = req.headers;
  for (let i = 0; i < REWRITE_HEADERS.length; i++) {
    if (headers[REWRITE_HEADERS[i] as string] !== undefined) return true;
  }
  // A GET with a body: whatever the app makes of the body is not in the key.
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The primary key of a target on an origin. */
export function keyOf(target: string, origin: string): string {
  // Repeated requests for one URL (the hot case) reuse the last key string.
  if (target === lastKeyTarget && origin === lastKeyOrigin) return lastKey;
  lastKeyTarget = target;
  lastKeyOrigin = origin;
  lastKey = `${boundKey(target)} ${origin}`;
  return lastKey;
}

let lastKeyTarget = '';
let lastKeyOrigin = '';
let lastKey = '';

/** The default key of a request, or undefined when the request cannot be keyed safely. */
export function defaultKey(req: IncomingMessage): string | undefined {
  if (isUnkeyable(req)) return undefined;
  const origin = requestOrigin(req);
  return origin === undefined ? undefined : keyOf(requestTarget(req), origin);
}

/**
 * The key of a URL given by `Location`/`Content-Location`, if it is on the request's
 * origin (RFC 9111 §4.4: same host only), resolved against it.
 */
export function sameOriginKey(location: unknown, origin: string | undefined, target: string): string | undefined {
  if (origin === undefined || typeof location !== 'string' || location === '' || location.length > 8192) {
    return undefined;
  }
  try {
    const url = new URL(location, `${origin}${target.startsWith('/') ? target : '/'}`);
    const base = new URL(origin);
    if (url.host !== base.host) return undefined;
    return keyOf(`${url.pathname}${url.search}`, `${url.protocol.slice(0, -1)}://${url.host}`);
  } catch {
    return undefined;
  }
}

/**
 * What `invalidate({ key })` removes: a full URL (`https://shop.example/p?x`) is one
 * key; a path (`/p?x`) is that target on every origin (a prefix `"/p?x "`); anything
 * else is a custom key (`cache({ key })`) as it is.
 */
export function invalidationTargets(key: string): { readonly keys: string[]; readonly prefix: string | undefined } {
  if (/^https?:\/\//i.test(key)) {
    try {
      const url = new URL(key);
      return {
        keys: [keyOf(`${url.pathname}${url.search}`, `${url.protocol.slice(0, -1)}://${url.host}`)],
        prefix: undefined,
      };
    } catch {
      return { keys: [boundKey(key)], prefix: undefined };
    }
  }
  if (key.startsWith('/')) return { keys: [boundKey(key)], prefix: `${boundKey(key)} ` };
  return { keys: [boundKey(key)], prefix: undefined };
}
