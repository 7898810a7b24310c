/**
 * `protectServer(server)`: time bounds for slow clients, which middleware cannot set.
 *
 * A slowloris client opens a connection and sends its headers a byte at a time; a slow-body
 * client does the same with the body. Neither ever reaches a middleware (the headers are not
 * complete) or does so only to trickle, so the bounds live on the `http.Server`: Node's
 * defaults hold such a connection up to 60 s for the headers (`headersTimeout`) and 300 s for
 * the whole request (`requestTimeout`), checked every 30 s (`connectionsCheckingInterval`),
 * i.e. up to 90 s for headers that never end. This helper sets tighter bounds and checks
 * them every second.
 *
 * | option | default | Node's default | bounds |
 * |---|---|---|---|
 * | `headersTimeout` | 10 s | 60 s | time to receive the request's headers |
 * | `requestTimeout` | 30 s | 300 s | time to receive the whole request, body included |
 * | `keepAliveTimeout` | 5 s | 5 s | idle time of a kept-alive connection between requests |
 * | `checkInterval` | 1 s | 30 s | how often the two first are checked |
 *
 * A connection over its bound gets `408 Request Timeout` and is closed, within the bound plus
 * `checkInterval`. Raise `requestTimeout` for routes that take large uploads on slow links;
 * behind a load balancer, set `keepAliveTimeout` above its idle timeout (e.g. 65 s behind an
 * AWS ALB at 60 s) so the balancer never reuses a connection the app just closed.
 */
import type { Server } from 'node:http';
import { checkOptionsObject, parseDuration } from '@perfstack/core';

const PKG = 'perfstack';

/** Options of {@link protectServer}. Durations in ms or as strings (`'10s'`). */
export interface ProtectServerOptions {
  /** Time to receive a request's headers. @default 10000 */
  readonly headersTimeout?: number | string;
  /** Time to receive a whole request, body included (0 turns it off). @default 30000 */
  readonly requestTimeout?: number | string;
  /** Idle time of a kept-alive connection between requests. @default 5000 */
  readonly keepAliveTimeout?: number | string;
  /** How often Node checks the two bounds above. @default 1000 */
  readonly checkInterval?: number | string;
}

/** The bounds `protectServer()` sets by default, in ms. */
export const SERVER_TIMEOUTS = Object.freeze({
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
  checkInterval: 1_000,
});

const KNOWN = ['headersTimeout', 'requestTimeout', 'keepAliveTimeout', 'checkInterval'] as const;

/** Node's timer of the connections check (internal; restarted when the server already listens). */
const CHECK_TIMER = 'http.server.connectionsCheckingInterval';

/**
 * Sets time bounds for slow clients on an `http.Server` (or `https.Server`).
 *
 * Call it on the server before it listens, or right after `app.listen()` returns: the
 * checking interval is read when the server starts listening. On a server already
 * listening, Node's check timer is restarted at the new interval.
 *
 * @param server the server, e.g. `app.listen(3000)` or `http.createServer(app)`
 * @param options bounds to override; see {@link SERVER_TIMEOUTS}
 * @returns the same server
 * @throws {TypeError|RangeError} on a bad option, or `headersTimeout` above a non-zero `requestTimeout`
 * @example
 * const server = protectServer(app.listen(3000));
 */
export function protectServer<S extends Server>(server: S, options?: ProtectServerOptions): S {
  if (typeof server !== 'object' || server === null || typeof (server as Server).listen !== 'function') {
    throw new TypeError(`${PKG}: protectServer() needs an http.Server, got ${typeof server}`);
  }
  const o = checkOptionsObject(PKG, 'protectServer', options, KNOWN) as ProtectServerOptions;
  const read = (name: (typeof KNOWN)[number], min: number): number =>
    o[name] === undefined ? SERVER_TIMEOUTS[name] : parseDuration(o[name], name, { pkg: PKG, min });
  const headersTimeout = read('headersTimeout', 1);
  const requestTimeout = read('requestTimeout', 0);
  const keepAliveTimeout = read('keepAliveTimeout', 0);
  const checkInterval = read('checkInterval', 1);
  if (requestTimeout > 0 && headersTimeout > requestTimeout) {
    throw new RangeError(
      `${PKG}: option "headersTimeout" (${headersTimeout} ms) must not be above "requestTimeout" (${requestTimeout} ms)`,
    );
  }
  server.headersTimeout = headersTimeout;
  server.requestTimeout = requestTimeout;
  server.keepAliveTimeout = keepAliveTimeout;
  (server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = checkInterval;
  if (server.listening) restartCheck(server, checkInterval);
  return server;
}

/** Restarts Node's connection check at `interval` on a server that already listens. */
function restartCheck(server: Server, interval: number): void {
  const symbol = Object.getOwnPropertySymbols(server).find((s) => s.description === CHECK_TIMER);
  if (symbol === undefined) return;
  const record = server as unknown as Record<symbol, (NodeJS.Timeout & { _onTimeout?: () => void }) | undefined>;
  const timer = record[symbol];
  const check = timer?._onTimeout;
  if (timer === undefined || typeof check !== 'function') return;
  clearInterval(timer);
  record[symbol] = setInterval(check, interval).unref();
}
