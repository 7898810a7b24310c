/**
 * Memoization on the data cache: `memoize(fn, options)` for functions and `@Memoize(options)`
 * for methods. Each call goes through `cache.wrap()`, so it gets the data cache's stampede
 * protection, tags, Redis sharing, stale-while-revalidate and refresh-ahead.
 *
 * `@Memoize` is a TypeScript 5 standard method decorator (no `experimentalDecorators`). It
 * also accepts the legacy `(target, name, descriptor)` call, which is how a project compiled
 * with `experimentalDecorators` (NestJS) calls every decorator, so it works on Nest
 * providers too.
 *
 * Which cache: `options.cache`, else the default one — `stack.data` of the last preset
 * built (until it is closed), else a memory-only cache made on first use. It is looked up
 * at call time, so a decorator evaluated before the stack exists uses the stack's cache.
 */
import { PKG } from '../options.js';
import { createCache, type DataCache } from './data-cache.js';
import type { WrapOptions } from './options.js';

/** Options of {@link memoize} and {@link Memoize}. */
export interface MemoizeOptions<Args extends readonly unknown[] = readonly unknown[]> extends WrapOptions {
  /**
   * The cache key of a call, from its arguments (e.g. `(id) => \`user:${id}\``).
   * @default `<name>:<JSON of the arguments>`
   */
  readonly key?: (...args: Args) => string;
  /**
   * The function's name in default keys (keys must be the same in every process, so a
   * function without a name needs one). @default `fn.name`; for methods `Class.method`
   */
  readonly name?: string;
  /** The data cache (or namespace) to use. @default the default data cache (see the module comment) */
  readonly cache?: DataCache;
}

let defaultCache: DataCache | undefined;
let fallback: DataCache | undefined;

/**
 * Sets the data cache `memoize`/`@Memoize` use when none is given (the preset sets
 * `stack.data`); `undefined` goes back to a memory-only cache.
 */
export function setDefaultDataCache(cache: DataCache | undefined): void {
  defaultCache = cache;
}

/** The data cache `memoize`/`@Memoize` use when none is given. */
export function defaultDataCache(): DataCache {
  if (defaultCache !== undefined && !defaultCache.engine.closed) return defaultCache;
  fallback ??= createCache({ namespace: 'memoize' });
  return fallback;
}

function checkOptions(options: MemoizeOptions<never> | undefined, where: string): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null)
    throw new TypeError(`${PKG}: ${where} options must be an object`);
  if (options.key !== undefined && typeof options.key !== 'function') {
    throw new TypeError(`${PKG}: ${where} option "key" must be a function of the arguments`);
  }
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
    throw new TypeError(`${PKG}: ${where} option "name" must be a non-empty string`);
  }
}

function keyMaker<Args extends readonly unknown[]>(
  name: string,
  key: ((...args: Args) => string) | undefined,
): (args: Args) => string {
  if (key !== undefined) return (args) => key(...args);
  return (args) => `${name}:${JSON.stringify(args)}`;
}

/** A memoized function: the original's arguments, a promise of its result. */
export type Memoized<Args extends readonly unknown[], R> = (...args: Args) => Promise<Awaited<R>>;

/**
 * Caches `fn`'s results in the data cache, keyed by its arguments.
 *
 * @param fn the function (sync or async)
 * @param options `key` (from the arguments), `ttl`, `tags`, `staleWhileRevalidate`, `name`, `cache`
 * @returns a function with the same arguments that resolves to the (cached) result
 * @throws {TypeError} when `fn` is not a function, has no name and no `name`/`key` is given, or an option is bad
 * @example
 * const getUser = memoize((id: string) => db.users.find(id), { key: (id) => `user:${id}`, ttl: '10m', tags: ['users'] });
 */
export function memoize<Args extends readonly unknown[], R>(
  fn: (...args: Args) => R,
  options?: MemoizeOptions<Args>,
): Memoized<Args, R> {
  if (typeof fn !== 'function') throw new TypeError(`${PKG}: memoize() takes a function`);
  checkOptions(options as MemoizeOptions<never> | undefined, 'memoize()');
  const name = options?.name ?? fn.name;
  if (name === '' && options?.key === undefined) {
    throw new TypeError(`${PKG}: memoize() needs a "name" or a "key" option for an anonymous function`);
  }
  const makeKey = keyMaker(name, options?.key);
  const wrapOptions = wrapOptionsOf(options);
  return function memoized(this: unknown, ...args: Args): Promise<Awaited<R>> {
    const cache = options?.cache ?? defaultDataCache();
    return cache.wrap(
      makeKey(args),
      () => fn.apply(this, args as unknown as Args & unknown[]) as Awaited<R> | Promise<Awaited<R>>,
      wrapOptions,
    );
  };
}

function wrapOptionsOf(options: MemoizeOptions<never> | MemoizeOptions | undefined): WrapOptions | undefined {
  if (options === undefined) return undefined;
  const { ttl, tags, staleWhileRevalidate } = options;
  return { ttl, tags, staleWhileRevalidate };
}

/** A method `@Memoize` can decorate: it must return a promise (the cached result is always async). */
export type MemoizableMethod<This, Args extends unknown[], R> = (this: This, ...args: Args) => Promise<R>;

/**
 * What `@Memoize()` returns: a TypeScript 5 standard method decorator, and the legacy
 * `(target, name, descriptor)` form for projects compiled with `experimentalDecorators`.
 */
export interface MemoizeDecorator<Args extends unknown[]> {
  <This, A extends Args, R>(
    target: MemoizableMethod<This, A, R>,
    context: ClassMethodDecoratorContext<This, MemoizableMethod<This, A, R>>,
  ): MemoizableMethod<This, A, R>;
  <A extends Args, R>(
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<(...args: A) => Promise<R>>,
  ): TypedPropertyDescriptor<(...args: A) => Promise<R>>;
}

/**
 * Method decorator: caches the method's results in the data cache, keyed by its arguments
 * (`Class.method:<JSON of the arguments>` unless `key` is given). The method must return
 * a promise. A TypeScript 5 standard decorator; also works where `experimentalDecorators`
 * is on (NestJS providers).
 *
 * @example
 * class Users {
 *   @Memoize({ key: (id: string) => `user:${id}`, ttl: '5m', tags: ['users'] })
 *   async find(id: string): Promise<User> { ... }
 * }
 */
export function Memoize<Args extends unknown[] = unknown[]>(options?: MemoizeOptions<Args>): MemoizeDecorator<Args> {
  checkOptions(options as MemoizeOptions<never> | undefined, '@Memoize()');
  const wrapOptions = wrapOptionsOf(options);
  const decorate = (original: (...args: unknown[]) => unknown, methodName: string, isStatic: boolean) => {
    let makeKey: ((args: unknown[]) => string) | undefined;
    return function memoizedMethod(this: unknown, ...args: unknown[]): Promise<unknown> {
      if (makeKey === undefined) {
        const owner = isStatic ? (this as { name?: string }).name : (this as object)?.constructor?.name;
        makeKey = keyMaker(options?.name ?? `${owner ?? 'anonymous'}.${methodName}`, options?.key as never);
      }
      const cache = options?.cache ?? defaultDataCache();
      return cache.wrap(makeKey(args), () => original.apply(this, args), wrapOptions);
    };
  };
  // biome-ignore lint/suspicious/noExplicitAny: one function serves the standard and the legacy decorator calls
  return function memoizeDecorator(target: any, context: any, descriptor?: PropertyDescriptor): any {
    if (typeof context === 'object' && context !== null && 'kind' in context) {
      if (context.kind !== 'method') throw new TypeError(`${PKG}: @Memoize() decorates methods only`);
      return decorate(target, String(context.name), context.static === true);
    }
    // experimentalDecorators: (prototype or class, name, descriptor)
    if (descriptor === undefined || typeof descriptor.value !== 'function') {
      throw new TypeError(`${PKG}: @Memoize() decorates methods only`);
    }
    descriptor.value = decorate(descriptor.value, String(context), typeof target === 'function');
    return descriptor;
  } as never;
}
