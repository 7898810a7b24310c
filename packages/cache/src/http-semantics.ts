/**
 * The parts of HTTP caching (RFC 9111) and conditional requests (RFC 9110 §13) the
 * cache needs, written as small pure functions over header values.
 *
 * Every parser here takes untrusted input: it never throws, bounds the work it does by
 * the header length, and treats anything it cannot read as absent.
 */
import { createHash } from 'node:crypto';

/** Longest request header value the parsers look at; longer values are ignored. */
const MAX_PARSED_LENGTH = 4096;

/** Cache-Control directives the cache acts on (RFC 9111 §5.2). */
export interface CacheControl {
  readonly noStore: boolean;
  readonly noCache: boolean;
  readonly private: boolean;
  readonly public: boolean;
  readonly mustRevalidate: boolean;
  /** Seconds, or undefined when absent or unreadable. */
  readonly maxAge: number | undefined;
  readonly sMaxAge: number | undefined;
  /** RFC 5861 extensions, seconds. */
  readonly staleWhileRevalidate: number | undefined;
  readonly staleIfError: number | undefined;
}

const EMPTY_CACHE_CONTROL: CacheControl = {
  noStore: false,
  noCache: false,
  private: false,
  public: false,
  mustRevalidate: false,
  maxAge: undefined,
  sMaxAge: undefined,
  staleWhileRevalidate: undefined,
  staleIfError: undefined,
};

/** Joins a header that Node may give as a string, an array or a number. */
export function headerString(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.join(', ');
  return String(value);
}

/** Reads a delta-seconds value (RFC 9111 §1.2.2): digits only, capped at 2^31 s. */
function deltaSeconds(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2 ? raw.slice(1, -1) : raw;
  if (!/^\d{1,12}$/.test(value)) return undefined;
  return Math.min(Number(value), 2_147_483_648);
}

/**
 * Parses a Cache-Control header (request or response). Unknown directives and
 * malformed values are ignored; a directive repeated keeps its first value.
 */
export function parseCacheControl(value: unknown): CacheControl {
  const header = headerString(value);
  if (header === undefined || header === '' || header.length > MAX_PARSED_LENGTH) return EMPTY_CACHE_CONTROL;
  let noStore = false;
  let noCache = false;
  let isPrivate = false;
  let isPublic = false;
  let mustRevalidate = false;
  let maxAge: number | undefined;
  let sMaxAge: number | undefined;
  let swr: number | undefined;
  let sie: number | undefined;
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    const arg = eq === -1 ? undefined : part.slice(eq + 1).trim();
    switch (name) {
      case 'no-store':
        noStore = true;
        break;
      case 'no-cache':
        noCache = true;
        break;
      case 'private':
        isPrivate = true;
        break;
      case 'public':
        isPublic = true;
        break;
      case 'must-revalidate':
      case 'proxy-revalidate':
        mustRevalidate = true;
        break;
      case 'max-age':
        maxAge ??= deltaSeconds(arg);
        break;
      case 's-maxage':
        sMaxAge ??= deltaSeconds(arg);
        break;
      case 'stale-while-revalidate':
        swr ??= deltaSeconds(arg);
        break;
      case 'stale-if-error':
        sie ??= deltaSeconds(arg);
        break;
      default:
        break;
    }
  }
  return {
    noStore,
    noCache,
    private: isPrivate,
    public: isPublic,
    mustRevalidate,
    maxAge,
    sMaxAge,
    staleWhileRevalidate: swr,
    staleIfError: sie,
  };
}

/**
 * The header names a `Vary` value lists, lower-cased and de-duplicated, or `'*'`
 * (RFC 9110 §12.5.5: the response varies on something outside the request headers).
 */
export function parseVary(value: unknown): readonly string[] | '*' {
  const header = headerString(value);
  if (header === undefined || header === '') return [];
  const names: string[] = [];
  for (const part of header.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '') continue;
    if (name === '*') return '*';
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** Adds header names to a `Vary` value, keeping what is there. */
export function mergeVary(existing: unknown, add: readonly string[]): string {
  const current = headerString(existing) ?? '';
  const have = parseVary(current);
  if (have === '*') return '*';
  const missing = add.filter((name) => !have.includes(name.toLowerCase()));
  if (missing.length === 0) return current;
  return current === '' ? missing.join(', ') : `${current}, ${missing.join(', ')}`;
}

/**
 * The request's value for one varying header, normalised (RFC 9111 §4.1 allows normalising):
 * list values joined with `, `, surrounding whitespace trimmed, cut at {@link MAX_PARSED_LENGTH}.
 * `name` comes from the response's `Vary` (any token, `constructor` and `__proto__`
 * included), so only the headers object's own properties are read.
 */
export function varyValue(headers: Readonly<Record<string, string | string[] | undefined>>, name: string): string {
  if (!Object.hasOwn(headers, name)) return '';
  const value: unknown = headers[name];
  let text: string;
  if (typeof value === 'string') text = value;
  else if (Array.isArray(value)) text = value.join(', ');
  else return '';
  // An over-long value is kept as a digest of the whole value, never a prefix: two requests
  // that differ only past the cap must never share a variant (one user's response to another).
  if (text.length > MAX_PARSED_LENGTH) return `#sha256:${createHash('sha256').update(text).digest('base64url')}`;
  return text.trim();
}

/** Removes `W/` from an entity tag: weak comparison (RFC 9110 §8.8.3.2). */
function opaqueTag(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/**
 * True when `If-None-Match` matches the stored response (RFC 9110 §13.1.2): `*` matches
 * any current representation (with or without an ETag); a list matches the stored ETag
 * by weak comparison. Garbage and over-long values never match.
 */
export function ifNoneMatchMatches(header: unknown, etag: string | undefined): boolean {
  const value = headerString(header);
  if (value === undefined || value.length > MAX_PARSED_LENGTH) return false;
  const trimmed = value.trim();
  if (trimmed === '*') return true;
  if (etag === undefined) return false;
  const ours = opaqueTag(etag);
  for (const part of trimmed.split(',')) {
    if (opaqueTag(part.trim()) === ours) return true;
  }
  return false;
}

/**
 * True when the stored response was not modified since `If-Modified-Since`
 * (RFC 9110 §13.1.3). Unreadable dates are ignored (the condition is false).
 */
export function notModifiedSince(header: unknown, lastModified: number | undefined): boolean {
  if (lastModified === undefined) return false;
  const value = headerString(header);
  if (value === undefined || value.length > 64) return false;
  const since = Date.parse(value);
  if (Number.isNaN(since)) return false;
  return lastModified <= since;
}

/**
 * True when `Accept-Encoding` accepts `coding` (RFC 9110 §12.5.3): listed (or `*`) with
 * a q-value above 0. A missing header accepts nothing but identity for our purposes.
 */
export function acceptsEncoding(header: unknown, coding: string): boolean {
  const value = headerString(header);
  if (value === undefined || value === '' || value.length > 1024) return false;
  let wildcard = false;
  for (const part of value.split(',')) {
    const semi = part.indexOf(';');
    const token = (semi === -1 ? part : part.slice(0, semi)).trim().toLowerCase();
    if (token !== coding && token !== '*') continue;
    let accepted = true;
    if (semi !== -1) {
      const q = /q\s*=\s*([0-9.]+)/i.exec(part.slice(semi + 1));
      if (q !== null && Number(q[1]) === 0) accepted = false;
    }
    if (token === coding) return accepted;
    wildcard = accepted;
  }
  return wildcard;
}

/** True for media types worth compressing (text, JSON, JS, XML, SVG). */
export function isCompressibleType(contentType: unknown): boolean {
  const value = headerString(contentType);
  if (value === undefined) return false;
  return /^(text\/|application\/(?:[\w.+-]*\+)?(?:json|javascript|xml|x-www-form-urlencoded)|image\/svg\+xml)/i.test(
    value.trim(),
  );
}
