/**
 * A stored response ("entry"): status, headers precomputed for writing, body as a
 * Buffer, and the times that decide freshness. An entry is immutable once made; a hit
 * writes `entry.headers` and `entry.body` as they are.
 *
 * Memory: small bodies are copied into shared 64 KB slabs ({@link copyBody}) instead of
 * one ArrayBuffer each, header values that repeat across entries (content type,
 * cache control) are interned, and one URL without `Vary` is one entry object.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { parseCacheControl, parseHttpDate } from './http-semantics.js';

/** Headers as a hit writes them. */
export type StoredHeaders = Readonly<Record<string, string | readonly string[]>>;

/**
 * What entries of one route usually share (windows, vary names, tags, route): one
 * interned object for all of them instead of six fields and three arrays per entry.
 */
export interface EntryPolicy {
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
  readonly shared: boolean;
  readonly varyNames: readonly string[];
  readonly tags: readonly string[];
  readonly route: string;
  /**
   * must-revalidate, proxy-revalidate, no-cache or s-maxage in the directives this cache
   * obeyed: never served stale on a request's `max-stale` (§4.2.4, §5.2.2). Decided once
   * when the entry is made, not per request.
   */
  readonly forbidsStale: boolean;
}

const EMPTY: readonly string[] = Object.freeze([]);
const policies = new Map<string, EntryPolicy>();
const POLICY_LIMIT = 4096;

function policyOf(init: Omit<EntryPolicy, never>): EntryPolicy {
  const id = `${init.staleWhileRevalidate}|${init.staleIfError}|${init.shared}|${init.forbidsStale}|${init.varyNames.join(',')}|${init.tags.join(',')}|${init.route}`;
  const known = policies.get(id);
  if (known !== undefined) return known;
  const policy: EntryPolicy = Object.freeze({
    staleWhileRevalidate: init.staleWhileRevalidate,
    staleIfError: init.staleIfError,
    shared: init.shared,
    varyNames: init.varyNames.length === 0 ? EMPTY : Object.freeze([...init.varyNames]),
    tags: init.tags.length === 0 ? EMPTY : Object.freeze([...init.tags]),
    route: init.route,
    forbidsStale: init.forbidsStale,
  });
  if (policies.size < POLICY_LIMIT) policies.set(id, policy);
  return policy;
}

/**
 * Headers a 304 does not carry: those describing the body it does not have. Every other
 * stored header goes on it, as Express (`send`, `res.send`) and Koa write their own 304s, so
 * a 304 from the cache is the 304 the app would have sent (RFC 9110 §15.4.5 requires
 * `ETag`, `Cache-Control`, `Vary`, `Expires`, `Content-Location`, `Date` among them).
 */
const NOT_ON_A_304: ReadonlySet<string> = new Set([
  'content-type',
  'content-length',
  'content-range',
  'content-encoding',
  'content-language',
  'transfer-encoding',
]);

/** One stored representation of a URL. Immutable. */
export class Entry {
  readonly status: number;
  /** Headers for a client that gets the body as stored (identity, or the app's own coding). */
  readonly headers: StoredHeaders;
  /** Headers for a client that accepts {@link Entry.encoding}, when the cache compressed the body. */
  readonly encodedHeaders: StoredHeaders | undefined;
  /** The body as stored (compressed when `encoding` is set). */
  readonly body: Buffer;
  /** The coding the cache compressed the body with, if it did. */
  readonly encoding: 'br' | 'gzip' | undefined;
  readonly etag: string | undefined;
  /** Last-Modified in ms, if the response had a readable one. */
  readonly lastModified: number | undefined;
  /** When it was stored (ms since epoch). */
  readonly storedAt: number;
  /** When it stops being fresh (ms since epoch). */
  readonly expiresAt: number;
  /** The `Age` the origin response already had, in seconds. */
  readonly initialAge: number;
  /** Values of the request headers in `varyNames` that select this variant. */
  readonly varyValues: readonly string[];
  readonly policy: EntryPolicy;
  /** Bytes it accounts for in L1. */
  readonly size: number;

  constructor(
    fields: Omit<
      Entry,
      | 'staleWhileRevalidate'
      | 'staleIfError'
      | 'shared'
      | 'varyNames'
      | 'tags'
      | 'route'
      | 'forbidsStale'
      | 'notModifiedHeaders'
    >,
  ) {
    this.status = fields.status;
    this.headers = fields.headers;
    this.encodedHeaders = fields.encodedHeaders;
    this.body = fields.body;
    this.encoding = fields.encoding;
    this.etag = fields.etag;
    this.lastModified = fields.lastModified;
    this.storedAt = fields.storedAt;
    this.expiresAt = fields.expiresAt;
    this.initialAge = fields.initialAge;
    this.varyValues = fields.varyValues;
    this.policy = fields.policy;
    this.size = fields.size;
  }

  /** ms after `expiresAt` during which it may be served while a refresh runs. */
  get staleWhileRevalidate(): number {
    return this.policy.staleWhileRevalidate;
  }
  /** ms after `expiresAt` during which it may be served when the origin fails. */
  get staleIfError(): number {
    return this.policy.staleIfError;
  }
  /** True when it may answer requests with `Authorization`/`Cookie`. */
  get shared(): boolean {
    return this.policy.shared;
  }
  /** Request headers that select this variant (lower case). */
  get varyNames(): readonly string[] {
    return this.policy.varyNames;
  }
  get tags(): readonly string[] {
    return this.policy.tags;
  }
  /** Route pattern it was stored under, for per-route stats on hits. */
  get route(): string {
    return this.policy.route;
  }
  /** True when it may never be served stale on a request's `max-stale` (see {@link EntryPolicy.forbidsStale}). */
  get forbidsStale(): boolean {
    return this.policy.forbidsStale;
  }
  /** Headers of a 304 answer (RFC 9110 §15.4.5); made when needed, 304s being rarer than hits. */
  get notModifiedHeaders(): StoredHeaders {
    const out: Record<string, string | readonly string[]> = {};
    const source = this.headers;
    for (const name of Object.keys(source)) {
      const value = source[name];
      if (value !== undefined && !NOT_ON_A_304.has(name)) out[name] = value;
    }
    return out;
  }
}

/** The last moment an entry can be used at all. */
export function deadAt(entry: Entry): number {
  return entry.expiresAt + Math.max(entry.staleWhileRevalidate, entry.staleIfError);
}

const SLAB_SIZE = 64 * 1024;
const SLAB_MAX_BODY = 4096;
let slab: Buffer | undefined;
let slabOffset = 0;

/**
 * Copies a body into memory the entry owns. Bodies up to 4 KB share 64 KB slabs (like
 * Node's own Buffer pool, but holding only cache bodies, so a slab is not pinned by
 * unrelated short-lived buffers); larger ones get their own allocation.
 */
export function copyBody(chunks: readonly Buffer[], length: number): Buffer {
  let target: Buffer;
  if (length === 0) return Buffer.alloc(0);
  if (length > SLAB_MAX_BODY) {
    target = Buffer.allocUnsafeSlow(length);
  } else {
    if (slab === undefined || slabOffset + length > SLAB_SIZE) {
      slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      slabOffset = 0;
    }
    target = slab.subarray(slabOffset, slabOffset + length);
    slabOffset += (length + 7) & ~7;
  }
  let offset = 0;
  for (const chunk of chunks) {
    chunk.copy(target, offset);
    offset += chunk.length;
  }
  return target;
}

const interned = new Map<string, string>();
const INTERN_LIMIT = 2048;

/** Returns one shared copy of a header value that repeats across entries. */
export function intern(value: string): string {
  const known = interned.get(value);
  if (known !== undefined) return known;
  if (interned.size < INTERN_LIMIT && value.length <= 256) interned.set(value, value);
  return value;
}

/** Header names never stored: per-request, hop-by-hop, or regenerated on every answer. */
const NEVER_STORED = new Set([
  'set-cookie',
  'retry-after',
  'x-request-id',
  'server-timing',
  'x-cache',
  'age',
  'cache-tag',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'proxy-connection',
  'upgrade',
  'content-length',
]);

/** True for a header a stored response must not carry (ARCHITECTURE.md interplay rules). */
export function isPerRequestHeader(name: string): boolean {
  return NEVER_STORED.has(name) || name.startsWith('ratelimit') || name.startsWith('x-ratelimit');
}

/** Values that are unique per entry and not worth interning. */
const UNIQUE_VALUES = new Set(['etag', 'last-modified', 'expires', 'location', 'content-location', 'content-md5']);

/** Copies the storable headers of a response, lower-cased, per-request ones removed. */
export function storableHeaders(headers: OutgoingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers)) {
    // `__proto__` is a valid header token; as a plain-object key it would set the prototype
    if (isPerRequestHeader(name) || name === '__proto__') continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) out[name] = value.map(String);
    else out[name] = UNIQUE_VALUES.has(name) ? String(value) : intern(String(value));
  }
  return out;
}

/** What {@link buildEntry} needs. */
export interface EntryInit {
  readonly status: number;
  /** Storable headers, without Content-Length. */
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer;
  /** Length of the identity body (differs from body.length when compressed). */
  readonly identityLength: number;
  readonly encoding: 'br' | 'gzip' | undefined;
  readonly storedAt: number;
  readonly expiresAt: number;
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
  readonly initialAge: number;
  readonly shared: boolean;
  readonly varyNames: readonly string[];
  readonly varyValues: readonly string[];
  readonly tags: readonly string[];
  readonly route: string;
  /**
   * From the directives this cache obeyed (the targeted field's, RFC 9213, when one won):
   * see {@link EntryPolicy.forbidsStale}. Absent: read from the stored `Cache-Control`.
   */
  readonly forbidsStale?: boolean;
}

/** must-revalidate, proxy-revalidate, no-cache, s-maxage in a `Cache-Control` value. */
function forbidsStaleIn(value: unknown): boolean {
  const cc = parseCacheControl(value);
  return cc.mustRevalidate || cc.proxyRevalidate || cc.noCache || cc.sMaxAge !== undefined;
}

/** Per-entry bookkeeping counted in L1 besides body and header bytes. */
const ENTRY_OVERHEAD = 320;

/**
 * Copies headers property by property into a fresh object. (An object made by spread
 * and then given one more property falls into V8's dictionary mode: 4x the memory.)
 */
function copyHeaders(base: Readonly<Record<string, string | string[]>>): Record<string, string | readonly string[]> {
  const out: Record<string, string | readonly string[]> = {};
  for (const name of Object.keys(base)) out[name] = base[name] as string | string[];
  return out;
}

/** Makes an entry, precomputing every header set a hit may write. */
export function buildEntry(init: EntryInit): Entry {
  const base = init.headers;
  const noBody = init.status === 204 || init.status === 304;
  const headers = copyHeaders(base);
  if (!noBody) headers['content-length'] = intern(String(init.identityLength));
  let encodedHeaders: Record<string, string | readonly string[]> | undefined;
  if (init.encoding !== undefined) {
    encodedHeaders = copyHeaders(base);
    encodedHeaders['content-encoding'] = init.encoding;
    encodedHeaders['content-length'] = intern(String(init.body.length));
    const etag = base.etag;
    // A compressed body is another representation: its validator can only be weak (RFC 9110 §8.8.1).
    if (typeof etag === 'string' && !etag.startsWith('W/')) encodedHeaders.etag = `W/${etag}`;
  }
  const etag = typeof base.etag === 'string' ? base.etag : undefined;
  // The strict RFC 9110 §5.6.7 parser: a Last-Modified that is not an HTTP-date is no validator.
  const lastModified = parseHttpDate(base['last-modified']);
  let headerBytes = 0;
  for (const name of Object.keys(base)) {
    const value = base[name];
    headerBytes += name.length + (typeof value === 'string' ? value.length : String(value).length);
  }
  return new Entry({
    status: init.status,
    headers,
    encodedHeaders,
    body: init.body,
    encoding: init.encoding,
    etag,
    lastModified,
    storedAt: init.storedAt,
    expiresAt: init.expiresAt,
    initialAge: init.initialAge,
    varyValues: init.varyValues.length === 0 ? EMPTY : init.varyValues,
    policy: policyOf({ ...init, forbidsStale: init.forbidsStale ?? forbidsStaleIn(base['cache-control']) }),
    size: init.body.length + headerBytes * (encodedHeaders ? 2 : 1) + ENTRY_OVERHEAD,
  });
}

/** The stored form of an entry in L2 (short keys: it is JSON in Redis). */
interface WireEntry {
  s: number;
  h: Record<string, string | string[]>;
  b: string;
  l: number;
  e?: 'br' | 'gzip';
  sa: number;
  ea: number;
  w: number;
  f: number;
  a: number;
  p: boolean;
  vn: readonly string[];
  vv: readonly string[];
  t: readonly string[];
  r: string;
  /** forbidsStale (absent in entries written before it: read from the headers). */
  ns?: boolean;
}

/** Serialises the variants of one URL for L2. */
export function serializeVariants(variants: readonly Entry[]): string {
  const wire: WireEntry[] = variants.map((entry) => {
    const h: Record<string, string | string[]> = {};
    for (const name of Object.keys(entry.headers)) {
      if (name === 'content-length') continue;
      const value = entry.headers[name] as string | readonly string[];
      h[name] = typeof value === 'string' ? value : [...value];
    }
    const identity = entry.headers['content-length'];
    return {
      s: entry.status,
      h,
      b: entry.body.toString('base64'),
      l: typeof identity === 'string' ? Number(identity) : entry.body.length,
      ...(entry.encoding ? { e: entry.encoding } : {}),
      sa: entry.storedAt,
      ea: entry.expiresAt,
      w: entry.staleWhileRevalidate,
      f: entry.staleIfError,
      a: entry.initialAge,
      p: entry.shared,
      vn: entry.varyNames,
      vv: entry.varyValues,
      t: entry.tags,
      r: entry.route,
      ns: entry.forbidsStale,
    };
  });
  return JSON.stringify(wire);
}

/** Reads what {@link serializeVariants} wrote; returns [] for anything malformed. */
export function deserializeVariants(text: unknown): Entry[] {
  if (typeof text !== 'string') return [];
  let wire: unknown;
  try {
    wire = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(wire)) return [];
  const out: Entry[] = [];
  for (const w of wire as WireEntry[]) {
    if (typeof w !== 'object' || w === null || typeof w.s !== 'number' || typeof w.b !== 'string') continue;
    const raw = Buffer.from(w.b, 'base64');
    const headers: Record<string, string | string[]> = {};
    for (const name of Object.keys(w.h ?? {})) {
      const value = w.h[name];
      if (value === undefined || name === '__proto__') continue;
      headers[name] = Array.isArray(value) ? value : UNIQUE_VALUES.has(name) ? value : intern(value);
    }
    out.push(
      buildEntry({
        status: w.s,
        headers,
        body: copyBody([raw], raw.length),
        identityLength: w.l,
        encoding: w.e,
        storedAt: w.sa,
        expiresAt: w.ea,
        staleWhileRevalidate: w.w,
        staleIfError: w.f,
        initialAge: w.a,
        shared: w.p,
        varyNames: w.vn ?? [],
        varyValues: w.vv ?? [],
        tags: w.t ?? [],
        route: w.r ?? 'unmatched',
        ...(typeof w.ns === 'boolean' ? { forbidsStale: w.ns } : {}),
      }),
    );
  }
  return out;
}
