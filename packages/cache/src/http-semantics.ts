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

/**
 * Cache-Control directives the cache acts on (RFC 9111 §5.2), request or response.
 *
 * Numeric directives are `undefined` when absent and `NaN` when present but invalid
 * (`max-age=-1`, `max-age="3600"`, `max-age=1.5`, two different values): a response
 * with invalid freshness information is treated as stale (§4.2.1), a request directive
 * that cannot be read is ignored.
 */
export interface CacheControl {
  readonly noStore: boolean;
  readonly noCache: boolean;
  readonly private: boolean;
  readonly public: boolean;
  /** `must-revalidate` (§5.2.2.2). */
  readonly mustRevalidate: boolean;
  /** `proxy-revalidate` (§5.2.2.8): must-revalidate for shared caches. */
  readonly proxyRevalidate: boolean;
  /** `must-understand` (§5.2.2.3). */
  readonly mustUnderstand: boolean;
  /** `only-if-cached` (request, §5.2.1.7). */
  readonly onlyIfCached: boolean;
  /** Seconds. */
  readonly maxAge: number | undefined;
  readonly sMaxAge: number | undefined;
  /** Request `min-fresh` seconds. */
  readonly minFresh: number | undefined;
  /** Request `max-stale`: seconds, `Infinity` without a value. */
  readonly maxStale: number | undefined;
  /** RFC 5861 extensions, seconds. */
  readonly staleWhileRevalidate: number | undefined;
  readonly staleIfError: number | undefined;
}

export const EMPTY_CACHE_CONTROL: CacheControl = Object.freeze({
  noStore: false,
  noCache: false,
  private: false,
  public: false,
  mustRevalidate: false,
  proxyRevalidate: false,
  mustUnderstand: false,
  onlyIfCached: false,
  maxAge: undefined,
  sMaxAge: undefined,
  minFresh: undefined,
  maxStale: undefined,
  staleWhileRevalidate: undefined,
  staleIfError: undefined,
});

/** Joins a header that Node may give as a string, an array or a number. */
export function headerString(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.join(', ');
  return String(value);
}

/** The largest delta-seconds value kept (RFC 9111 §1.2.2: 2^31). */
export const DELTA_SECONDS_CAP = 2_147_483_648;

/**
 * Reads a delta-seconds value (RFC 9111 §1.2.2): 1*DIGIT, leading zeros allowed, values
 * past 2^31 capped at 2^31. Anything else — a sign, a fraction, a quoted value
 * (`"3600"`: §5.2.2.9 forbids the quoted form for these directives), nothing — is
 * `NaN` (invalid), never a number.
 */
export function deltaSeconds(raw: string | undefined): number {
  if (raw === undefined || raw.length === 0) return Number.NaN;
  let value = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 48 || c > 57) return Number.NaN;
    if (value < DELTA_SECONDS_CAP) value = value * 10 + (c - 48);
  }
  return Math.min(value, DELTA_SECONDS_CAP);
}

/** Keeps the first value of a directive; a repeat with another value makes it invalid (§4.2.1). */
function once(current: number | undefined, next: number): number {
  if (current === undefined) return next;
  return current === next || (Number.isNaN(current) && Number.isNaN(next)) ? current : Number.NaN;
}

/**
 * Parses a Cache-Control header (request or response). Directive names are compared
 * case-insensitively, unknown directives (extensions) are ignored, values may be quoted
 * where the grammar allows (`no-cache="Set-Cookie"`); see {@link CacheControl} for
 * invalid numeric values.
 */
export function parseCacheControl(value: unknown): CacheControl {
  const header = headerString(value);
  if (header === undefined || header === '' || header.length > MAX_PARSED_LENGTH) return EMPTY_CACHE_CONTROL;
  let noStore = false;
  let noCache = false;
  let isPrivate = false;
  let isPublic = false;
  let mustRevalidate = false;
  let proxyRevalidate = false;
  let mustUnderstand = false;
  let onlyIfCached = false;
  let maxAge: number | undefined;
  let sMaxAge: number | undefined;
  let minFresh: number | undefined;
  let maxStale: number | undefined;
  let swr: number | undefined;
  let sie: number | undefined;
  for (const part of splitDirectives(header)) {
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
        mustRevalidate = true;
        break;
      case 'proxy-revalidate':
        proxyRevalidate = true;
        break;
      case 'must-understand':
        mustUnderstand = true;
        break;
      case 'only-if-cached':
        onlyIfCached = true;
        break;
      case 'max-age':
        maxAge = once(maxAge, deltaSeconds(arg));
        break;
      case 's-maxage':
        sMaxAge = once(sMaxAge, deltaSeconds(arg));
        break;
      case 'min-fresh':
        minFresh = once(minFresh, deltaSeconds(arg));
        break;
      case 'max-stale':
        maxStale = once(maxStale, arg === undefined ? Number.POSITIVE_INFINITY : deltaSeconds(arg));
        break;
      case 'stale-while-revalidate':
        swr = once(swr, deltaSeconds(arg));
        break;
      case 'stale-if-error':
        sie = once(sie, deltaSeconds(arg));
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
    proxyRevalidate,
    mustUnderstand,
    onlyIfCached,
    maxAge,
    sMaxAge,
    minFresh,
    maxStale,
    staleWhileRevalidate: swr,
    staleIfError: sie,
  };
}

/** Splits a directive list at commas outside quoted strings (`no-cache="a, b"` is one directive). */
function splitDirectives(header: string): string[] {
  if (!header.includes('"')) return header.split(',');
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const c = header.charCodeAt(i);
    if (c === 34 /* " */) quoted = !quoted;
    else if (c === 92 /* \ */ && quoted) i++;
    else if (c === 44 /* , */ && !quoted) {
      out.push(header.slice(start, i));
      start = i + 1;
    }
  }
  out.push(header.slice(start));
  return out;
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
 * The secondary-key value of a header the request does not have: an absent header only
 * matches another request where it is absent too, never an empty one (RFC 9111 §4.1).
 * A control character no header value can contain.
 */
export const VARY_ABSENT = '\u0001';

/**
 * The request's value for one varying header, normalised (RFC 9111 §4.1 allows normalising):
 * list values joined with `, `, surrounding whitespace trimmed, cut at {@link MAX_PARSED_LENGTH}.
 * `name` comes from the response's `Vary` (any token, `constructor` and `__proto__`
 * included), so only the headers object's own properties are read.
 */
export function varyValue(headers: Readonly<Record<string, string | string[] | undefined>>, name: string): string {
  if (!Object.hasOwn(headers, name)) return VARY_ABSENT;
  const value: unknown = headers[name];
  let text: string;
  if (typeof value === 'string') text = value;
  else if (Array.isArray(value)) text = value.join(', ');
  else return VARY_ABSENT;
  // An over-long value is kept as a digest of the whole value, never a prefix: two requests
  // that differ only past the cap must never share a variant (one user's response to another).
  if (text.length > MAX_PARSED_LENGTH) return `#sha256:${createHash('sha256').update(text).digest('base64url')}`;
  return normaliseFieldValue(text);
}

const NEEDS_NORMALISING = /[,;\t"]|\s\s|^\s|\s$/;

/**
 * Normalises a field value for the secondary key (RFC 9111 §4.1 allows it): whitespace
 * around list commas and parameter semicolons removed (`gzip ,br` ≡ `gzip, br`, the same
 * value sent as two lines ≡ one combined line), empty list members dropped; quoted strings
 * are left exactly as they are. Values with nothing to normalise are returned as they are.
 */
export function normaliseFieldValue(text: string): string {
  if (!NEEDS_NORMALISING.test(text)) return text;
  const members: string[] = [];
  let current = '';
  let quoted = false;
  const flush = () => {
    const member = current.trim();
    if (member !== '') members.push(member);
    current = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      current += c;
      if (c === '\\' && i + 1 < text.length) current += text[++i];
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      current += c;
    } else if (c === ',') {
      flush();
    } else if (c === ';') {
      current = `${current.trimEnd()};`;
      while (i + 1 < text.length && (text[i + 1] === ' ' || text[i + 1] === '\t')) i++;
    } else if (c === '\t') {
      current += ' ';
    } else {
      current += c;
    }
  }
  flush();
  return members.join(', ');
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

// ---------------------------------------------------------------- HTTP-date

const MONTHS: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850 =
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

function utc(year: number, month: string, day: number, h: number, m: number, s: number): number | undefined {
  const mon = MONTHS[month];
  if (mon === undefined || day < 1 || day > 31 || h > 23 || m > 59 || s > 60) return undefined;
  return Date.UTC(year, mon, day, h, m, s);
}

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and
 * asctime forms recipients must accept. Anything else (`0`, `-1`, ISO 8601, a date
 * without `GMT`) is undefined: `Date.parse` would read `0` as the year 2000.
 */
export function parseHttpDate(value: unknown): number | undefined {
  const text = headerString(value);
  if (text === undefined || text.length > 64) return undefined;
  const t = text.trim();
  let m = IMF_FIXDATE.exec(t);
  if (m !== null) return utc(Number(m[3]), m[2] as string, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = RFC850.exec(t);
  if (m !== null) {
    // Two-digit years more than 50 years in the future are in the past century (§5.6.7).
    let year = 2000 + Number(m[3]);
    if (year > new Date().getUTCFullYear() + 50) year -= 100;
    return utc(year, m[2] as string, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = ASCTIME.exec(t);
  if (m !== null) {
    return utc(Number(m[6]), m[1] as string, Number((m[2] as string).trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  }
  return undefined;
}

/** Formats a time as an IMF-fixdate (what Node writes in `Date`). */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

// ---------------------------------------------------------------- conditionals

/**
 * True when the stored response was not modified since `If-Modified-Since`
 * (RFC 9110 §13.1.3). A value that is not an HTTP-date ({@link parseHttpDate}: ISO 8601,
 * a numeric zone, `0`...) is ignored (the condition is false), as §13.1.3 requires.
 */
export function notModifiedSince(header: unknown, lastModified: number | undefined): boolean {
  if (lastModified === undefined) return false;
  const value = headerString(header);
  if (value === undefined || value.length > 64) return false;
  const since = parseHttpDate(value);
  return since !== undefined && lastModified <= since;
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
