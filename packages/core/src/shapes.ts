/**
 * Stable hidden classes for requests and responses whose prototype the framework swaps.
 *
 * Express replaces the prototype of every request and response
 * (`Object.setPrototypeOf(req, app.request)`). V8 (Node 20) then gives the object a new
 * hidden class for every property added after the swap instead of reusing a cached
 * transition: measured in this repo, adding seven properties to a swapped request costs
 * ~11 µs instead of ~0.08 µs, and every inline cache that later sees these objects (Node's
 * own `setHeader`, `writeHead`, `end` included) goes megamorphic. Express's router adds
 * about eight properties per request, pino-http seven, perfstack's layers a few more.
 *
 * A property that already exists when the prototype is swapped is only stored to later,
 * which costs nothing extra. So on the first request that reaches a perfstack layer with a
 * swapped prototype, {@link warmShapes} prepends one `'request'` listener to the server.
 * It runs before the app and declares, on each new request and response, the properties
 * the first requests of this server were seen to gain after the swap — learnt, not
 * guessed, and only when declaring them changes nothing a reader can see:
 *
 * - a key inherited as a primitive from Node's own prototypes (`statusCode` 200,
 *   `_eventsCount` 0) is declared with that value, so reads are unchanged;
 * - a key absent from the chain is declared `undefined` only if it is a Symbol (private to
 *   its owner) or one of {@link KNOWN_KEYS} (Express and its router, pino-http, the rate limiter,
 *   body parsers, cookie-parser, express-session, passport, multer, and what the app adds with
 *   {@link declareShapeKeys}), read with plain property reads;
 * - a key on an app's prototype (a getter like Express's `req.query`, or a default set on
 *   `app.response`), or behind an accessor or read-only property of the class Node built
 *   the object with, is never declared; every app prototype seen on the server is checked
 *   ({@link declarableValue} has the exact rules);
 * - a key that is already an own property of the object is never touched, and a write that
 *   throws ends the warm-up, never a request.
 *
 * Learning watches the first {@link LEARN_FIRST} requests, then one in
 * {@link LEARN_EVERY}, up to {@link MAX_KEYS} keys per object. Nothing is installed for
 * `node:http` or Koa, whose requests keep their prototype.
 */
import { IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** Requests watched before the learnt set is trusted as it is. */
export const LEARN_FIRST = 32;

/** After the first requests, one request in this many is watched for new keys. */
export const LEARN_EVERY = 1024;

/**
 * Most keys declared per object (request or response). Express 5 with the usual middleware
 * (body parsers, cookie-parser, a session, an authenticated user) and the full stack adds
 * about 27 keys to a request. Measured on Node 20 (`%HasFastProperties` in
 * test/fixtures/shape-maps.mjs): a request stays a fast object with up to about 48 keys
 * declared, and turns into a slow dictionary at about 52 — whether they are declared or
 * added after the swap, it is the count of own properties that decides. 40 leaves that
 * margin: declaring makes an object carry the keys other routes' requests gain too.
 */
export const MAX_KEYS = 40;

/**
 * The string keys the common middleware adds to every request or response, read by their
 * owners only as properties (`if (req.session)`, `req.id || genReqId()`), never with `in`
 * or `hasOwnProperty` — except body-parser 2, whose `'body' in req` only decides whether to
 * set `req.body = undefined`, the value it is declared with. Each is declared `undefined`
 * when seen added and absent from the prototype chain; see {@link declareShapeKeys} for
 * an app's own keys.
 */
const WELL_KNOWN_KEYS = [
  // Express 5 and its router.
  'next',
  'baseUrl',
  'originalUrl',
  '_parsedUrl',
  '_parsedOriginalUrl',
  'params',
  'route',
  'locals',
  // pino-http (and @perfstack/logger over it), express-rate-limit.
  'id',
  'log',
  'allLogs',
  'rateLimit',
  // body-parser (express.json, express.urlencoded): the body, v1's "parsed" flag, and the
  // raw body apps keep with a `verify` callback.
  'body',
  '_body',
  'rawBody',
  // cookie-parser.
  'cookies',
  'signedCookies',
  'secret',
  // express-session.
  'session',
  'sessionID',
  'sessionStore',
  // passport 0.6+ (sets these per request; older versions patch IncomingMessage.prototype
  // instead, and a key found on the prototype chain is never declared).
  'user',
  'authInfo',
  '_passport',
  '_sessionManager',
  '_userProperty',
  'login',
  'logIn',
  'logout',
  'logOut',
  'isAuthenticated',
  'isUnauthenticated',
  // multer.
  'file',
  'files',
  // express-jwt / express-oauth2-jwt-bearer, connect-flash, csurf.
  'auth',
  'flash',
  'csrfToken',
];

const knownKeys = new Set<string>(WELL_KNOWN_KEYS);

/** The string keys declared when seen added (the defaults above plus {@link declareShapeKeys}). */
export const KNOWN_KEYS: ReadonlySet<string> = knownKeys;

/**
 * Lets an app add its own request/response keys to {@link KNOWN_KEYS} (`req.user`,
 * `req.session`, `req.body`), so Express requests keep one hidden class past the app's own
 * middleware too. Only for keys the app and its libraries read as plain properties: once
 * declared, `'user' in req` is true (with the value `undefined`) before anything sets it.
 *
 * @param keys property names
 * @throws {TypeError} when a key is not a non-empty string
 * @example
 * declareShapeKeys('user', 'session'); // passport and express-session set these on every request
 */
export function declareShapeKeys(...keys: string[]): void {
  for (const key of keys) {
    if (typeof key !== 'string' || key.length === 0) {
      throw new TypeError(`@perfstack/core: declareShapeKeys() takes property names, got ${String(key)}`);
    }
  }
  for (const key of keys) knownKeys.add(key);
}

const WARMER = Symbol.for('perfstack.shapeWarmer');

/** Most distinct swapped prototypes (Express apps and sub-apps) one server's warmer checks. */
export const MAX_PROTOTYPES = 16;

type WarmableServer = Server & { [WARMER]?: ShapeWarmer | null };

/** A request or a response, with the prototype Node built it with and the ones apps gave it. */
class KeySet {
  keys: PropertyKey[] = [];
  values: unknown[] = [];
  /** The prototype the objects have when the warmer declares (Node's, or a custom class's). */
  native: object | null | undefined;
  /** The swapped prototypes every key was checked against. */
  readonly swapped: object[] = [];
  /** Every key ever considered, kept after `retain` drops one: a key that conflicted with an app stays out. */
  readonly #known = new Set<PropertyKey>();

  has(key: PropertyKey): boolean {
    return this.#known.has(key);
  }

  add(key: PropertyKey, value: unknown): void {
    if (this.#known.has(key) || this.keys.length >= MAX_KEYS) return;
    this.#known.add(key);
    // New arrays, so a request being declared while learning finishes sees a consistent pair.
    this.keys = [...this.keys, key];
    this.values = [...this.values, value];
  }

  /** Drops keys that are not declarable (with the same value) against `swapped`. */
  retain(swapped: object, target: Record<PropertyKey, unknown>): void {
    const keys: PropertyKey[] = [];
    const values: unknown[] = [];
    for (let i = 0; i < this.keys.length; i++) {
      const key = this.keys[i] as PropertyKey;
      const declarable = declarableValue(swapped, key, this.native ?? null);
      if (declarable !== false && Object.is(declarable.value, this.values[i])) {
        keys.push(key);
        values.push(this.values[i]);
        continue;
      }
      // Declared on this very object before its app's prototype was known: take it back.
      const own = Object.getOwnPropertyDescriptor(target, key);
      if (own !== undefined && Object.is(own.value, this.values[i])) delete target[key];
    }
    this.keys = keys;
    this.values = values;
  }

  declare(target: object): void {
    if (Object.getPrototypeOf(target) !== this.native) return;
    const { keys, values } = this;
    const object = target as Record<PropertyKey, unknown>;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as PropertyKey;
      if (!Object.hasOwn(object, key)) object[key] = values[i];
    }
  }
}

const isPrimitive = (value: unknown): boolean =>
  value === null || (typeof value !== 'object' && typeof value !== 'function');

/** True when `object` is `start` or on its prototype chain. */
function onChain(object: object, start: object | null): boolean {
  for (let o = start; o !== null; o = Object.getPrototypeOf(o)) if (o === object) return true;
  return false;
}

/**
 * What a key added after the swap may be declared with before it, or `false` when it must
 * be left alone. `swapped` is the prototype the object has after the app swapped it,
 * `native` the one it had when the warmer declared (Node's class, or a custom one).
 *
 * - Before the swap, the assignment must make a plain own property: no accessor and no
 *   read-only property on the native chain.
 * - After the swap, every read must give what it gave without the warmer: the key is either
 *   absent from the swapped chain (declared `undefined`, and only Symbols and
 *   {@link KNOWN_KEYS}), or inherited there as a primitive from Node's own prototypes (the
 *   part of the chain the two share). A key on an app's prototype (a getter like Express's
 *   `req.query`, or a default like `app.response.x`) is never declared.
 */
export function declarableValue(
  swapped: object | null,
  key: PropertyKey,
  native: object | null = swapped,
): { value: unknown } | false {
  let onNative = false;
  for (let o = native; o !== null; o = Object.getPrototypeOf(o)) {
    const descriptor = Object.getOwnPropertyDescriptor(o, key);
    if (descriptor === undefined) continue;
    if (!('value' in descriptor) || descriptor.writable !== true) return false;
    onNative = true;
    break;
  }
  for (let o = swapped; o !== null; o = Object.getPrototypeOf(o)) {
    const descriptor = Object.getOwnPropertyDescriptor(o, key);
    if (descriptor === undefined) continue;
    if (!('value' in descriptor) || !onChain(o, native)) return false;
    return isPrimitive(descriptor.value) ? { value: descriptor.value } : false;
  }
  if (onNative) return false;
  return typeof key === 'symbol' || KNOWN_KEYS.has(key as string) ? { value: undefined } : false;
}

/** The server's listener that declares the learnt keys, and the learning behind it. */
export class ShapeWarmer {
  readonly request = new KeySet();
  readonly response = new KeySet();
  #seen = 0;
  #disabled = false;

  /** The `'request'` listener, prepended to the server's. */
  readonly listener = (req: IncomingMessage, res: ServerResponse): void => {
    if (this.#disabled) return;
    try {
      this.request.declare(req);
      this.response.declare(res);
    } catch {
      // A warm-up must never cost a request: an object that refuses a key ends the warm-up.
      this.#disabled = true;
      return;
    }
    this.#seen += 1;
    if (this.#seen <= LEARN_FIRST || this.#seen % LEARN_EVERY === 0) this.#watch(req, res);
  };

  /**
   * Called by {@link warmShapes} after the app swapped the prototypes: the first time a
   * prototype is seen, every learnt key is checked against it, and dropped (and taken back
   * from this request) where declaring it would change a read.
   */
  admit(req: IncomingMessage, res: ServerResponse | undefined): void {
    this.#admitOne(this.request, req);
    if (res !== undefined) this.#admitOne(this.response, res);
  }

  #admitOne(set: KeySet, target: object): void {
    const swapped = Object.getPrototypeOf(target) as object | null;
    if (swapped === null || set.swapped.includes(swapped)) return;
    if (set.swapped.length >= MAX_PROTOTYPES) {
      // More apps on one server than it is worth tracking: declare nothing more.
      this.#disabled = true;
      return;
    }
    set.swapped.push(swapped);
    set.retain(swapped, target as Record<PropertyKey, unknown>);
  }

  #watch(req: IncomingMessage, res: ServerResponse): void {
    this.request.native ??= Object.getPrototypeOf(req) as object | null;
    this.response.native ??= Object.getPrototypeOf(res) as object | null;
    if (Object.getPrototypeOf(req) !== this.request.native || Object.getPrototypeOf(res) !== this.response.native) {
      return;
    }
    const reqBefore = new Set(Reflect.ownKeys(req));
    const resBefore = new Set(Reflect.ownKeys(res));
    res.once('close', () => {
      this.#learn(req, reqBefore, this.request);
      this.#learn(res, resBefore, this.response);
    });
  }

  #learn(target: object, before: ReadonlySet<PropertyKey>, set: KeySet): void {
    if (this.#disabled) return;
    const swapped = Object.getPrototypeOf(target) as object | null;
    // Only objects of an app this warmer checked (its keys were checked against it).
    if (swapped === null || !set.swapped.includes(swapped)) return;
    for (const key of Reflect.ownKeys(target)) {
      if (before.has(key) || set.has(key)) continue;
      // A new key must be declarable, with one value, against every app prototype seen here.
      let value: unknown;
      let first = true;
      let declarable = true;
      for (const proto of set.swapped) {
        const result = declarableValue(proto, key, set.native ?? null);
        if (result === false || (!first && !Object.is(result.value, value))) {
          declarable = false;
          break;
        }
        value = result.value;
        first = false;
      }
      if (declarable && !first) set.add(key, value);
    }
  }
}

/** True when `req` has had its prototype replaced (Express), not built from a class of its own. */
function isSwapped(req: IncomingMessage): boolean {
  if (!(req instanceof IncomingMessage)) return false;
  const proto = Object.getPrototypeOf(req) as object;
  return proto !== IncomingMessage.prototype && !Object.hasOwn(proto, 'constructor');
}

/**
 * Call at the top of a middleware, with the request and response as the app gave them: on
 * the first swapped request of a server, installs the server's {@link ShapeWarmer}; on the
 * first request of each further app (another prototype), checks the learnt keys against it.
 * Costs a few property reads afterwards.
 */
export function warmShapes(req: IncomingMessage, res?: ServerResponse): void {
  const server = (req.socket as { server?: WarmableServer } | null | undefined)?.server;
  if (server === undefined || server === null) return;
  const installed = server[WARMER];
  if (installed === null) return;
  if (installed !== undefined) {
    installed.admit(req, res);
    return;
  }
  if (typeof server.prependListener !== 'function') return;
  if (!isSwapped(req)) {
    // node:http, Koa, HTTP/2, custom request classes: the prototype is kept, nothing to warm.
    server[WARMER] = null;
    return;
  }
  const warmer = new ShapeWarmer();
  server[WARMER] = warmer;
  warmer.admit(req, res);
  server.prependListener('request', warmer.listener);
}

/** The warmer installed on `server`, if any (for tests and diagnostics). */
export function shapeWarmerOf(server: Server): ShapeWarmer | undefined {
  return (server as WarmableServer)[WARMER] ?? undefined;
}
