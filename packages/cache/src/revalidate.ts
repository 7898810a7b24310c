/**
 * Background refresh for `stale-while-revalidate` (RFC 5861 §3): the stale entry is
 * served at once, and the cache asks its own server for a fresh copy with a loopback
 * request, as a reverse proxy would ask its origin.
 *
 * Why a loopback request: a middleware has no handle on "the app" to call, and a fake
 * request/response pair would skip or confuse the layers around the cache (routing,
 * CORS, helmet...). A real request through the same server takes the same path as a
 * client's. It carries a random per-instance token in {@link REFRESH_HEADER} so that
 * the cache treats it as a forced miss; a client cannot forge the token.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';

/** The header that marks a refresh request. */
export const REFRESH_HEADER = 'x-perfstack-cache-refresh';

/** Request headers not copied into the refresh: conditionals, hop-by-hop, body framing. */
const DROPPED = new Set([
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'upgrade',
  'expect',
  REFRESH_HEADER,
]);

/**
 * Sends the refresh request for `req`'s URL to the server that received `req`.
 * Calls `done` once, whatever happens. Returns false when it could not be sent.
 */
export function sendRefresh(req: IncomingMessage, token: string, timeout: number, done: () => void): boolean {
  const socket = req.socket;
  const port = socket.localPort;
  const host = socket.localAddress;
  if (port === undefined || host === undefined) return false;
  const headers: OutgoingHttpHeaders = {};
  for (const name of Object.keys(req.headers)) {
    if (!DROPPED.has(name)) headers[name] = req.headers[name];
  }
  headers[REFRESH_HEADER] = token;
  const original = (req as { originalUrl?: unknown }).originalUrl;
  const path = typeof original === 'string' ? original : (req.url ?? '/');
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    done();
  };
  const encrypted = (socket as TLSSocket).encrypted === true;
  const options = { host, port, path, method: 'GET', headers, agent: false as const, timeout };
  const outgoing = encrypted
    ? https.request({ ...options, rejectUnauthorized: false, servername: undefined }, onResponse)
    : http.request(options, onResponse);
  function onResponse(response: IncomingMessage) {
    response.on('end', finish);
    response.on('error', finish);
    response.on('close', finish);
    response.resume();
  }
  outgoing.on('timeout', () => outgoing.destroy());
  outgoing.on('error', finish);
  outgoing.on('close', finish);
  outgoing.end();
  return true;
}
