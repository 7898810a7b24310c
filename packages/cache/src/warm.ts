/**
 * `responses.warm(urls)`: fills response entries on demand by asking the app, as a
 * stale-while-revalidate refresh does (revalidate.ts): a GET to each URL carrying this
 * instance's refresh token, which the cache treats as a forced miss and stores when the
 * response is storable. The URLs are the app's own (`http://127.0.0.1:3000/products`);
 * `headers.host` names the public host when the app is reached on another address, so the
 * entry lands under the key real requests use.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { CacheEngine } from './engine.js';
import { keyOf } from './key.js';
import { PKG } from './options.js';
import { REFRESH_HEADER } from './revalidate.js';

/** One URL to warm: a string, or a URL with request headers (`host`, `accept-language`...). */
export type WarmTarget = string | { readonly url: string; readonly headers?: Readonly<Record<string, string>> };

function parse(target: WarmTarget): { url: URL; headers: Record<string, string> } {
  const raw = typeof target === 'string' ? target : target?.url;
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    throw new TypeError(`${PKG}: warm() takes absolute http(s) URLs, got ${String(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`${PKG}: warm() takes absolute http(s) URLs, got ${url.href}`);
  }
  const headers: Record<string, string> = {};
  if (typeof target === 'object')
    for (const [k, v] of Object.entries(target.headers ?? {})) headers[k.toLowerCase()] = v;
  return { url, headers };
}

/** GETs one URL with the refresh token; resolves when the response has ended (or failed). */
function fetchOne(url: URL, headers: Record<string, string>, timeout: number): Promise<void> {
  return new Promise((resolve) => {
    const send = url.protocol === 'https:' ? https.request : http.request;
    const req = send(url, { method: 'GET', headers, agent: false, timeout }, (res: IncomingMessage) => {
      res.on('end', resolve);
      res.on('error', () => resolve());
      res.on('close', () => resolve());
      res.resume();
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve());
    req.end();
  });
}

/**
 * Asks the app for each URL as a forced miss; resolves with how many of them the cache
 * now holds in memory.
 */
export async function warmUrls(engine: CacheEngine, targets: readonly WarmTarget[], timeout: number): Promise<number> {
  if (!Array.isArray(targets)) throw new TypeError(`${PKG}: warm() takes an array of URLs`);
  const parsed = targets.map(parse);
  const keys = await Promise.all(
    parsed.map(async ({ url, headers }) => {
      const host = headers.host ?? url.host;
      const key = keyOf(`${url.pathname}${url.search}`, `${url.protocol.slice(0, -1)}://${host.toLowerCase()}`);
      await fetchOne(url, { ...headers, host, [REFRESH_HEADER]: `${engine.token} ${key}` }, timeout);
      return key;
    }),
  );
  let held = 0;
  for (const key of keys) if (engine.l1.peek(key) !== undefined) held++;
  return held;
}
