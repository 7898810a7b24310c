/**
 * Cache keys. The default key is the request target (path and query) as the client
 * sent it, without the Host: two instances behind one load balancer share keys, and a
 * forged Host cannot multiply entries. Keys are bounded: a target longer than
 * {@link MAX_KEY_LENGTH} keeps its first characters (so `prefix` invalidation still
 * works on the path) and replaces the rest with a SHA-1 digest.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Longest key kept as it is. */
export const MAX_KEY_LENGTH = 512;
const KEPT_PREFIX = 200;

/** Bounds a key: short keys as they are, long ones as prefix + digest. */
export function boundKey(raw: string): string {
  if (raw.length <= MAX_KEY_LENGTH) return raw;
  return `${raw.slice(0, KEPT_PREFIX)}#${createHash('sha1').update(raw).digest('base64url')}`;
}

/** The default key of a request: its original target (Express rewrites `req.url` under a mounted router). */
export function defaultKey(req: IncomingMessage): string {
  const original = (req as { originalUrl?: unknown }).originalUrl;
  const target = typeof original === 'string' ? original : (req.url ?? '/');
  return boundKey(target);
}

/** The key of a URL given by `Location`/`Content-Location`, if it is on this origin (RFC 9111 §4.4). */
export function sameOriginKey(location: unknown, host: string | undefined): string | undefined {
  if (typeof location !== 'string' || location === '' || location.length > 8192) return undefined;
  if (location.startsWith('/') && !location.startsWith('//')) return boundKey(location);
  try {
    const url = new URL(location);
    if (host === undefined || url.host !== host) return undefined;
    return boundKey(`${url.pathname}${url.search}`);
  } catch {
    return undefined;
  }
}
