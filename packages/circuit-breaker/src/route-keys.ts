/**
 * The fallback route keys for a middleware that runs *before* the app's router.
 *
 * Core resolves the pattern of Express and @koa/router requests before the router runs
 * (`getRoute`). When it cannot (`setRoute` inside a `node:http` handler, the first request
 * into an Express sub-app), the breaker learns the pattern from the finished response (see
 * core's `captureRoute`), compiles it with path-to-regexp (the matcher Express 5 and
 * @koa/router use), and keys later requests by matching their path against what it
 * learned. Both sides are bounded: at most `maxRoutes` patterns, and an LRU (CLOCK) of recent
 * path → pattern answers, so a request for a known path costs one Map lookup.
 */
import type { OnceLogger } from '@perfstack/core';
import { pathToRegexp } from 'path-to-regexp';

/** Recent path → pattern answers kept. */
const PATH_CACHE_SIZE = 1024;

interface CachedAnswer {
  /** The pattern, or `undefined` when no pattern matched. */
  readonly pattern: string | undefined;
  /** The pattern-set generation a negative answer is valid for. */
  readonly generation: number;
  /** Read since it last came round for eviction (CLOCK, an LRU approximation without a Map write per hit). */
  used: boolean;
}

/**
 * Rewrites the Express 4 forms path-to-regexp 8 no longer parses: `/:name?` (optional
 * parameter) becomes `{/:name}` and a bare `*` becomes a named wildcard.
 */
function modernise(pattern: string): string {
  return pattern.replace(/\/:(\w+)\?/g, '{/:$1}').replace(/(^|\/)\*(?=\/|$)/g, '$1*splat');
}

export class RouteMatcher {
  readonly #maxRoutes: number;
  readonly #log: OnceLogger;
  /** Patterns without parameters, by lower-cased path without trailing slash. */
  readonly #static = new Map<string, string>();
  readonly #dynamic: Array<{ readonly pattern: string; readonly regexp: RegExp }> = [];
  readonly #known = new Set<string>();
  readonly #unlearnable = new Set<string>();
  readonly #cache = new Map<string, CachedAnswer>();
  #generation = 0;

  constructor(maxRoutes: number, log: OnceLogger) {
    this.#maxRoutes = maxRoutes;
    this.#log = log;
  }

  /** How many patterns are known. */
  get size(): number {
    return this.#known.size;
  }

  /** True when `pattern` was learned or configured. */
  has(pattern: string): boolean {
    return this.#known.has(pattern);
  }

  /**
   * Learns a pattern. Returns false when it cannot be compiled (a RegExp route) or when
   * `maxRoutes` patterns are already known; both are logged once.
   */
  learn(pattern: string): boolean {
    if (this.#known.has(pattern)) return true;
    if (this.#unlearnable.has(pattern)) return false;
    if (this.#known.size >= this.#maxRoutes) {
      this.#log.warnOnce(
        'CB_TOO_MANY_ROUTES',
        `more than maxRoutes (${this.#maxRoutes}) route patterns; further routes are not guarded`,
        { pattern },
      );
      return false;
    }
    if (!pattern.startsWith('/') || pattern.startsWith('/^')) return this.#reject(pattern);
    if (!/[:*{(]/.test(pattern)) {
      this.#static.set(normalise(pattern), pattern);
    } else {
      let regexp: RegExp;
      try {
        regexp = pathToRegexp(modernise(pattern), { sensitive: false, trailing: true, end: true }).regexp;
      } catch {
        return this.#reject(pattern);
      }
      this.#dynamic.push({ pattern, regexp });
      // More literal text first, so `/users/me` wins over `/users/:id` when both are known.
      this.#dynamic.sort((a, b) => literalLength(b.pattern) - literalLength(a.pattern));
    }
    this.#known.add(pattern);
    this.#generation++;
    return true;
  }

  /** The learned pattern `path` belongs to, or `undefined`. */
  match(path: string): string | undefined {
    const cached = this.#cache.get(path);
    if (cached !== undefined) {
      if (cached.pattern !== undefined) {
        cached.used = true;
        return cached.pattern;
      }
      if (cached.generation === this.#generation) return undefined;
    }
    const pattern = this.#lookup(path);
    if (cached === undefined && this.#cache.size >= PATH_CACHE_SIZE) this.#evict();
    this.#cache.set(path, { pattern, generation: this.#generation, used: false });
    return pattern;
  }

  /**
   * Evicts one answer, CLOCK style: the oldest answer not read since it last came round;
   * read ones get a second chance at the young end.
   */
  #evict(): void {
    for (const [path, answer] of this.#cache) {
      this.#cache.delete(path);
      if (!answer.used) return;
      answer.used = false;
      this.#cache.set(path, answer);
    }
  }

  #lookup(path: string): string | undefined {
    const exact = this.#static.get(normalise(path));
    if (exact !== undefined) return exact;
    for (const entry of this.#dynamic) if (entry.regexp.test(path)) return entry.pattern;
    return undefined;
  }

  #reject(pattern: string): false {
    this.#unlearnable.add(pattern);
    if (this.#unlearnable.size > this.#maxRoutes) this.#unlearnable.clear();
    this.#log.warnOnce(
      'CB_ROUTE_NOT_LEARNABLE',
      'a route pattern cannot be matched against paths (RegExp route?); its requests are not guarded until it is named with `routes` or the per-route middleware',
      { pattern },
    );
    return false;
  }
}

function normalise(path: string): string {
  const lower = path.toLowerCase();
  return lower.length > 1 && lower.endsWith('/') ? lower.slice(0, -1) : lower;
}

function literalLength(pattern: string): number {
  return pattern.replace(/[:*]\w+|[{}()?]/g, '').length;
}
