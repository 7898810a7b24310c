/**
 * Stale-if-error for origin failures (RFC 5861 §4): when the app starts a 5xx response
 * (its own, or its framework's error handler) and a stale entry may be used, the 5xx is
 * swallowed at `write`/`end` and the stale entry is written instead. Frameworks set
 * `statusCode` before the first `write`/`end`, so the decision is taken there, before
 * any byte of the error goes out. Once replaced, later writes of the app are dropped
 * (a write after end would otherwise raise an error event).
 */
import type { ServerResponse } from 'node:http';

/**
 * Wraps `res.write`/`res.end`. `replace()` is asked on each call; when it returns true
 * the response was answered from the cache and the app's call is dropped.
 */
export function gateServerErrors(res: ServerResponse, replace: () => boolean): void {
  const write = res.write;
  const end = res.end;
  let passing = false;
  const replaced = (): boolean => {
    if (passing) return false;
    passing = true;
    try {
      return replace();
    } finally {
      passing = false;
    }
  };
  const callbackOf = (args: readonly unknown[]) =>
    args.find((a) => typeof a === 'function') as (() => void) | undefined;
  // biome-ignore lint/suspicious/noExplicitAny: write's overloads cannot be expressed on a replacement.
  res.write = function cacheWrite(this: ServerResponse, ...args: any[]): boolean {
    if (replaced()) {
      const cb = callbackOf(args);
      if (cb) process.nextTick(cb);
      return true;
    }
    // biome-ignore lint/suspicious/noExplicitAny: forwarding the caller's arguments unchanged.
    return (write as any).apply(this, args);
  } as ServerResponse['write'];
  // biome-ignore lint/suspicious/noExplicitAny: end's overloads cannot be expressed on a replacement.
  res.end = function cacheEnd(this: ServerResponse, ...args: any[]): ServerResponse {
    if (replaced()) {
      const cb = callbackOf(args);
      if (cb) process.nextTick(cb);
      return this;
    }
    // biome-ignore lint/suspicious/noExplicitAny: forwarding the caller's arguments unchanged.
    return (end as any).apply(this, args);
  } as ServerResponse['end'];
}
