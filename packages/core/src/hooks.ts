/**
 * Response interception, written once for every layer (ARCHITECTURE.md rule 7).
 *
 * Layers need three things from a response as the app writes it:
 * - a last chance to change headers before they go out (`onBeforeHead`): timing adds
 *   `Server-Timing`, the cache adds `X-Cache` and strips `Cache-Tag`;
 * - the body bytes as they are written (`captureBody`): the cache records a miss;
 * - `Server-Timing` entries from any layer (`addServerTiming`), joined into one header.
 *
 * `ServerResponse.prototype.writeHead`, `write` and `end` are patched once per process, on
 * first use (see {@link install}); per-response state lives under a Symbol. Node's `ServerResponse` sends implicit headers through
 * `this.writeHead(this.statusCode)`, so `res.write`/`res.end` without an explicit
 * `writeHead`, Express's `res.send`, Koa's `respond()`, `res.flushHeaders()` and
 * `res.writeHead(status, headers)` all pass through the same patched method.
 * Headers given to `writeHead` are applied with `setHeader` first, so listeners
 * see every header the response will carry.
 *
 * Listeners run innermost first (reverse order of registration, like `on-headers`),
 * so an outer layer (timing) sees what inner layers (cache) did.
 */
import { type OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Receives the body as the app writes it. */
export interface BodySink {
  /** A chunk, after it was handed to the socket. */
  write(chunk: Buffer): void;
  /** The response ended (`res.end` was called). */
  end(): void;
}

interface ServerTimingEntry {
  readonly name: string;
  readonly dur: number | undefined;
  readonly desc: string | undefined;
}

interface HookState {
  headSent: boolean;
  /** The cache looked the request up and found nothing, and the response may not be stored. */
  uncacheable: boolean;
  readonly beforeHead: Array<(res: ServerResponse) => void>;
  readonly sinks: BodySink[];
  readonly timings: ServerTimingEntry[];
}

const INSTALLED = Symbol.for('perfstack.responseHooks.installed');
const HOOKS = Symbol.for('perfstack.responseHooks');

type HookedResponse = ServerResponse & { [HOOKS]?: HookState };

const proto = ServerResponse.prototype;

/**
 * Per-response state under a global Symbol (shared by every copy of core in the process).
 * A WeakMap was tried: cheaper to write on Express's responses, but its ephemerons made GC
 * cost more than it saved once every layer's state lived in one (full stack on node:http
 * 86 → 123 µs/req in the benchmark harness).
 */
function hookState(res: ServerResponse): HookState {
  const hooked = res as HookedResponse;
  let state = hooked[HOOKS];
  if (state === undefined) {
    install();
    state = { headSent: false, uncacheable: false, beforeHead: [], sinks: [], timings: [] };
    hooked[HOOKS] = state;
  }
  return state;
}

/** Applies the headers argument of `writeHead` (object, flat raw array or array of pairs) with `setHeader`. */
function applyHeaders(res: ServerResponse, headers: OutgoingHttpHeaders | readonly unknown[]): void {
  if (Array.isArray(headers)) {
    const grouped = new Map<string, string[]>();
    const add = (name: unknown, value: unknown) => {
      const key = String(name).toLowerCase();
      let list = grouped.get(key);
      if (list === undefined) {
        list = [];
        grouped.set(key, list);
      }
      if (Array.isArray(value)) for (const v of value) list.push(String(v));
      else list.push(String(value));
    };
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as readonly unknown[][]) add(pair[0], pair[1]);
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i], headers[i + 1]);
    }
    for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? (values[0] as string) : values);
    return;
  }
  for (const name of Object.keys(headers)) {
    const value = (headers as OutgoingHttpHeaders)[name];
    if (value !== undefined) res.setHeader(name, value);
  }
}

/**
 * One `Server-Timing` entry as the header carries it (`cache;dur=0.13;desc=hit`). Exported
 * for answers written without the hooks (perfstack's early cache hits), which must read the same.
 */
export function serverTimingEntry(name: string, dur?: number, desc?: string): string {
  let out = name;
  if (dur !== undefined) out += `;dur=${Math.round(dur * 100) / 100}`;
  if (desc !== undefined) out += `;desc=${desc}`;
  return out;
}

function formatServerTiming(entries: readonly ServerTimingEntry[]): string {
  let out = '';
  for (const entry of entries) {
    if (out !== '') out += ', ';
    out += serverTimingEntry(entry.name, entry.dur, entry.desc);
  }
  return out;
}

function toBuffer(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (chunk === undefined || chunk === null) return undefined;
  if (typeof chunk === 'string') {
    return Buffer.from(chunk, (typeof encoding === 'string' ? encoding : 'utf8') as BufferEncoding);
  }
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return undefined;
}

/**
 * Patches `ServerResponse.prototype.writeHead`, `write` and `end` once per process.
 *
 * Patching each response instead (a closure assigned to `res.writeHead`, as on-headers
 * does) was measured at 10–15 µs per request on Express, whose responses get their
 * prototype swapped per request: own methods shadowing prototype methods on such objects
 * are slow for V8. On the prototype, a response nobody hooked pays one property read.
 * The flag is a global symbol so that two copies of core in one process install once.
 */
function install(): void {
  const target = proto as ServerResponse & { [INSTALLED]?: true };
  if (target[INSTALLED]) return;
  target[INSTALLED] = true;
  const originalWriteHead = proto.writeHead;
  const originalWrite = proto.write;
  const originalEnd = proto.end;

  // Fixed parameters, not rest arguments: these run for every response of the process
  // (hooked or not), and Node's own methods treat an `undefined` argument as an absent one.
  // biome-ignore lint/suspicious/noExplicitAny: writeHead's overloads cannot be expressed on a replacement.
  proto.writeHead = function perfstackWriteHead(this: HookedResponse, statusCode: number, reason?: any, obj?: any) {
    const state = this[HOOKS];
    if (state === undefined || state.headSent || this.headersSent) {
      // biome-ignore lint/suspicious/noExplicitAny: forwarding the caller's arguments unchanged.
      return (originalWriteHead as any).call(this, statusCode, reason, obj);
    }
    state.headSent = true;
    let message: string | undefined;
    let headers: OutgoingHttpHeaders | unknown[] | undefined;
    if (typeof reason === 'string') {
      message = reason;
      headers = obj;
    } else {
      headers = reason;
    }
    if (headers) applyHeaders(this, headers);
    if (this.statusCode !== statusCode) this.statusCode = statusCode;
    for (let i = state.beforeHead.length - 1; i >= 0; i--) (state.beforeHead[i] as (r: ServerResponse) => void)(this);
    if (state.timings.length > 0) {
      const existing = this.getHeader('server-timing');
      const ours = formatServerTiming(state.timings);
      this.setHeader('Server-Timing', existing ? `${String(existing)}, ${ours}` : ours);
    }
    if (message === undefined) return originalWriteHead.call(this, this.statusCode);
    // biome-ignore lint/suspicious/noExplicitAny: the (status, reason) overload.
    return (originalWriteHead as any).call(this, this.statusCode, message);
  } as ServerResponse['writeHead'];

  // Chunks go to the socket first: writing may write the head, whose listeners may attach a
  // sink (the cache does, once it knows the response is storable) that must get this chunk too.
  // biome-ignore lint/suspicious/noExplicitAny: write's overloads cannot be expressed on a replacement.
  proto.write = function perfstackWrite(this: HookedResponse, chunk: any, encoding?: any, callback?: any): boolean {
    const state = this[HOOKS];
    const ended = this.writableEnded;
    // biome-ignore lint/suspicious/noExplicitAny: forwarding the caller's arguments unchanged.
    const result = (originalWrite as any).call(this, chunk, encoding, callback);
    if (state !== undefined && !ended && state.sinks.length > 0) {
      const buffer = toBuffer(chunk, encoding);
      if (buffer !== undefined && buffer.length > 0) for (const sink of state.sinks) sink.write(buffer);
    }
    return result;
  } as ServerResponse['write'];

  // biome-ignore lint/suspicious/noExplicitAny: end's overloads cannot be expressed on a replacement.
  proto.end = function perfstackEnd(this: HookedResponse, chunk?: any, encoding?: any, callback?: any): ServerResponse {
    const state = this[HOOKS];
    const ended = this.writableEnded;
    // biome-ignore lint/suspicious/noExplicitAny: forwarding the caller's arguments unchanged.
    const result = (originalEnd as any).call(this, chunk, encoding, callback);
    if (state !== undefined && !ended && state.sinks.length > 0) {
      const buffer = typeof chunk === 'function' ? undefined : toBuffer(chunk, encoding);
      const sinks = state.sinks.splice(0);
      for (const sink of sinks) {
        if (buffer !== undefined && buffer.length > 0) sink.write(buffer);
        sink.end();
      }
    }
    return result;
  } as ServerResponse['end'];
}

/**
 * Registers `listener` to run once, just before the response head is written. It may
 * read `res.statusCode` and `res.getHeaders()` and set or remove headers.
 * If the head is already sent, the listener is not called.
 */
export function onBeforeHead(res: ServerResponse, listener: (res: ServerResponse) => void): void {
  hookState(res).beforeHead.push(listener);
}

/**
 * Feeds every chunk the app writes to `sink`, then calls `sink.end()` when the app ends
 * the response. Returns a function that detaches the sink (e.g. when a body grows past
 * what the cache may buffer).
 */
export function captureBody(res: ServerResponse, sink: BodySink): () => void {
  const state = hookState(res);
  state.sinks.push(sink);
  return () => {
    const index = state.sinks.indexOf(sink);
    if (index !== -1) state.sinks.splice(index, 1);
  };
}

/**
 * Adds a `Server-Timing` entry (W3C Server Timing) to the response. All entries are
 * joined into one header when the head is written, after every `onBeforeHead` listener.
 *
 * @param name metric name, a token (`cache`, `app`, `total`)
 * @param dur duration in milliseconds, if any
 * @param desc description, a token (`hit`, `miss`)
 */
export function addServerTiming(res: ServerResponse, name: string, dur?: number, desc?: string): void {
  hookState(res).timings.push({ name, dur, desc });
}

/**
 * Marks a response the cache looked up but may not store (a refusal, a 5xx, `private`,
 * `no-store`, a route without `cache()` whose response has no freshness): `X-Cache: MISS` for
 * HTTP (RFC 9211's `fwd=miss` without `stored`), but not a cacheable lookup, so hit ratios
 * leave it out (timing's per-route ratio reads this instead of parsing a header).
 */
export function markUncacheable(res: ServerResponse): void {
  hookState(res).uncacheable = true;
}

/** True when the cache marked `res` with {@link markUncacheable}. */
export function isUncacheable(res: ServerResponse): boolean {
  return (res as HookedResponse)[HOOKS]?.uncacheable === true;
}

/** True when the head of `res` was written through the hooks or directly. */
export function isHeadSent(res: ServerResponse): boolean {
  return res.headersSent || (res as HookedResponse)[HOOKS]?.headSent === true;
}
