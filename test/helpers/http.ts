/**
 * Real-HTTP test helpers: servers on 127.0.0.1 port 0, and a client built on
 * `node:http` so tests see exact status, headers (absence too) and bytes, with no
 * automatic decompression or header rewriting.
 */
import http, { type IncomingHttpHeaders, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running test server. */
export interface TestServer {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Starts `listener` (or an Express/Koa callback) on 127.0.0.1, port 0. */
export async function listen(listener: RequestListener | Server): Promise<TestServer> {
  const server = typeof listener === 'function' ? http.createServer(listener) : listener;
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** A response as tests see it. */
export interface TestResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
  json<T = unknown>(): T;
}

/** Request options. */
export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string | string[] | number>>;
  readonly body?: string | Buffer;
  /** Abort after this many ms. @default 10000 */
  readonly timeout?: number;
  /** Use a fresh connection (no keep-alive agent). @default true */
  readonly agent?: http.Agent | false;
  /** Local address to send from (e.g. 127.0.0.2). */
  readonly localAddress?: string;
}

/** Sends one request and reads the whole response. */
export function request(url: string, options: RequestOptions = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: options.method ?? 'GET',
        headers: options.headers as http.OutgoingHttpHeaders,
        agent: options.agent ?? false,
        localAddress: options.localAddress,
        timeout: options.timeout ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            text: body.toString('utf8'),
            json: <T>() => JSON.parse(body.toString('utf8')) as T,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

/** Waits until `check` returns true, polling every `interval` ms, failing after `timeout` ms. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeout = 5000, interval = 20): Promise<void> {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`condition not met within ${timeout}ms`);
}
