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
 * - a key inherited as a primitive data property (`statusCode` 200, `_eventsCount` 0) is
 *   declared with the inherited value, so reads are unchanged;
 * - a key absent from the prototype chain is declared `undefined` only if it is a Symbol
 *   (private to its owner) or one of {@link KNOWN_KEYS} (Express's router, pino-http,
 *   the rate limiter, and what the app adds with {@link declareShapeKeys}), whose owners
 *   read them with plain property reads;
 * - a key behind an accessor anywhere on the chain (Express's `req.query`, `req.ip`) is
 *   never declared: an own property would hide the getter;
 * - a key that is already an own property of the object is never touched.
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

/** Most keys declared per object (request or response). */
export const MAX_KEYS = 64;

/**
 * String keys that are declared `undefined` when seen added and absent from the prototype
 * chain: Express 5 and its router, pino-http, express-rate-limit. Their owners only read
 * them as properties (`if (!res.locals)`, `req.id || genReqId()`), never with `in`.
 */
const knownKeys = new Set<string>([
  'next',
  'baseUrl',
  'originalUrl',
  '_parsedUrl',
  '_parsedOriginalUrl',
  'params',
  'route',
  'locals',
  'id',
  'log',
  'allLogs',
  'rateLimit',
]);

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

type WarmableServer = Server & { [WARMER]?: ShapeWarmer | null };

/** The keys one kind of object (request or response) is given before the app runs. */
class KeySet {
  keys: PropertyKey[] = [];
  values: unknown[] = [];
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

  declare(target: object): void {
    const { keys, values } = this;
    const object = target as Record<PropertyKey, unknown>;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as PropertyKey;
      if (!Object.hasOwn(object, key)) object[key] = values[i];
    }
  }
}

/**
 * What a key added after the swap may be declared with, or `false` when it must be left
 * alone. `proto` is the swapped prototype of the object that gained the key.
 */
export function declarableValue(proto: object | null, key: PropertyKey): { value: unknown } | false {
  for (let o = proto; o !== null; o = Object.getPrototypeOf(o)) {
    const descriptor = Object.getOwnPropertyDescriptor(o, key);
    if (descriptor === undefined) continue;
    if (!('value' in descriptor)) return false;
    const value = descriptor.value;
    return value === null || (typeof value !== 'object' && typeof value !== 'function') ? { value } : false;
  }
  return typeof key === 'symbol' || KNOWN_KEYS.has(key as string) ? { value: undefined } : false;
}

/** The server's listener that declares the learnt keys, and the learning behind it. */
export class ShapeWarmer {
  readonly request = new KeySet();
  readonly response = new KeySet();
  #seen = 0;

  /** The `'request'` listener, prepended to the server's. */
  readonly listener = (req: IncomingMessage, res: ServerResponse): void => {
    this.request.declare(req);
    this.response.declare(res);
    this.#seen += 1;
    if (this.#seen <= LEARN_FIRST || this.#seen % LEARN_EVERY === 0) this.#watch(req, res);
  };

  #watch(req: IncomingMessage, res: ServerResponse): void {
    const reqBefore = new Set(Reflect.ownKeys(req));
    const resBefore = new Set(Reflect.ownKeys(res));
    res.once('close', () => {
      this.#learn(req, reqBefore, this.request);
      this.#learn(res, resBefore, this.response);
    });
  }

  #learn(target: object, before: ReadonlySet<PropertyKey>, keys: KeySet): void {
    const proto = Object.getPrototypeOf(target) as object | null;
    for (const key of Reflect.ownKeys(target)) {
      if (before.has(key) || keys.has(key)) continue;
      const declarable = declarableValue(proto, key);
      if (declarable !== false) keys.add(key, declarable.value);
    }
  }
}

/**
 * Call at the top of a middleware: on the first swapped request of a server, installs the
 * server's {@link ShapeWarmer}. Costs three property reads afterwards.
 */
export function warmShapes(req: IncomingMessage): void {
  const server = (req.socket as { server?: WarmableServer } | null | undefined)?.server;
  if (server === undefined || server === null || server[WARMER] !== undefined) return;
  if (typeof server.prependListener !== 'function') return;
  if (Object.getPrototypeOf(req) === IncomingMessage.prototype) {
    // node:http and Koa keep the prototype: nothing to warm on this server.
    server[WARMER] = null;
    return;
  }
  const warmer = new ShapeWarmer();
  server[WARMER] = warmer;
  server.prependListener('request', warmer.listener);
}

/** The warmer installed on `server`, if any (for tests and diagnostics). */
export function shapeWarmerOf(server: Server): ShapeWarmer | undefined {
  return (server as WarmableServer)[WARMER] ?? undefined;
}
