/**
 * The transparency harness: one app built twice — bare, and with `performanceStack()` in
 * front at its defaults — the same exchanges sent to both, in order, and every response
 * compared: status, headers and body, byte for byte, except what the preset documents.
 *
 * The documented differences (packages/perfstack/README.md, "Transparency"):
 * - additions: helmet's security headers, CORS headers (none at the defaults, which allow
 *   no cross-origin access), `RateLimit`/`RateLimit-Policy`, `X-Request-Id`,
 *   `Server-Timing`, and `X-Cache`/`Age` from the response cache. A header the app itself
 *   sets is kept as the app set it, even one of these names;
 * - one removal: `X-Powered-By` (helmet's `hidePoweredBy`);
 * - `Date`, which says when, not what, is not compared.
 *
 * The stack's refusals are not exercised here (the default limits are far above what the
 * suite sends); they have their own tests.
 */
import { createHash } from 'node:crypto';
import http, { type IncomingHttpHeaders, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Headers the preset adds to a response the app did not give them to. */
export const DOCUMENTED_ADDITIONS: ReadonlySet<string> = new Set([
  // helmet
  'content-security-policy',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'origin-agent-cluster',
  'referrer-policy',
  'strict-transport-security',
  'x-content-type-options',
  'x-dns-prefetch-control',
  'x-download-options',
  'x-frame-options',
  'x-permitted-cross-domain-policies',
  'x-xss-protection',
  // rate limit (draft 8)
  'ratelimit',
  'ratelimit-policy',
  // request id, timing, cache
  'x-request-id',
  'server-timing',
  'x-cache',
  'age',
]);

/** Headers the preset removes from what the app sends. */
export const DOCUMENTED_REMOVALS: ReadonlySet<string> = new Set(['x-powered-by']);

/** Not compared: when, not what. */
const NOT_COMPARED: ReadonlySet<string> = new Set(['date']);

/** What a row sends. `headers` may depend on what earlier rows captured (an ETag...). */
export interface Exchange {
  readonly name: string;
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string> | ((captured: Readonly<Record<string, string>>) => Record<string, string>);
  readonly body?: string | Buffer;
  /** Saves a header of the bare response under a name, for later rows. */
  readonly capture?: Readonly<Record<string, string>>;
  /** What the bare app must answer, so a row proves what it claims to exercise. */
  readonly expectStatus: number;
  /**
   * A difference known and reported, not yet fixed: the row must still differ (so the mark
   * is removed the day it is fixed), and its difference is listed in the README.
   */
  readonly knownDeviation?: string;
}

/** One response as received. */
export interface Received {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** A running app. */
export interface RunningApp {
  readonly url: string;
  close(): Promise<void>;
}

/** Starts `listener` on 127.0.0.1, port 0, without keep-alive surprises. */
export async function serve(listener: RequestListener, close?: () => Promise<void>): Promise<RunningApp> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await close?.();
    },
  };
}

/** Sends one exchange on a fresh connection and reads the whole response. */
export function send(base: string, row: Exchange, captured: Record<string, string>): Promise<Received> {
  const headers = typeof row.headers === 'function' ? row.headers(captured) : (row.headers ?? {});
  return new Promise((resolve, reject) => {
    const target = new URL(`${base}${row.path}`);
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: row.method ?? 'GET',
        headers: {
          ...(row.body !== undefined ? { 'content-length': String(Buffer.byteLength(row.body)) } : {}),
          ...headers,
        },
        agent: false,
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${row.name}: timed out`)));
    req.on('error', reject);
    req.end(row.body);
  });
}

const show = (body: Buffer): string =>
  body.length <= 200
    ? JSON.stringify(body.toString('latin1'))
    : `${body.length} bytes sha1 ${createHash('sha1').update(body).digest('hex')}`;

/** The differences between the bare and the stacked response that the preset does not document. */
export function differences(bare: Received, stacked: Received): string[] {
  const out: string[] = [];
  if (bare.status !== stacked.status) out.push(`status ${bare.status} → ${stacked.status}`);
  const names = new Set([...Object.keys(bare.headers), ...Object.keys(stacked.headers)]);
  for (const name of [...names].sort()) {
    if (NOT_COMPARED.has(name)) continue;
    const a = bare.headers[name];
    const b = stacked.headers[name];
    if (a === undefined && DOCUMENTED_ADDITIONS.has(name)) continue;
    if (b === undefined && DOCUMENTED_REMOVALS.has(name)) continue;
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${name}: ${JSON.stringify(a)} → ${JSON.stringify(b)}`);
  }
  if (!bare.body.equals(stacked.body)) out.push(`body ${show(bare.body)} → ${show(stacked.body)}`);
  return out;
}

/**
 * Sends every row to the bare app and to the stacked one, in order, and returns what
 * differs (empty when transparent), plus rows whose bare answer was not the one expected.
 */
export async function compareApps(bare: RunningApp, stacked: RunningApp, rows: readonly Exchange[]): Promise<string[]> {
  const captured: Record<string, string> = {};
  const problems: string[] = [];
  for (const row of rows) {
    const a = await send(bare.url, row, captured);
    const b = await send(stacked.url, row, captured);
    if (a.status !== row.expectStatus)
      problems.push(`${row.name}: the bare app answered ${a.status}, expected ${row.expectStatus}`);
    for (const [name, header] of Object.entries(row.capture ?? {})) {
      const value = a.headers[header];
      if (typeof value === 'string') captured[name] = value;
      else problems.push(`${row.name}: no ${header} to capture`);
    }
    // proof that the preset ran in front of this exchange at all
    if (b.headers['x-request-id'] === undefined) problems.push(`${row.name}: no X-Request-Id, the preset did not run`);
    const found = differences(a, b);
    if (row.knownDeviation !== undefined) {
      if (found.length === 0) problems.push(`${row.name}: now transparent, remove its knownDeviation mark`);
      continue;
    }
    for (const d of found) problems.push(`${row.name} (${row.method ?? 'GET'} ${row.path}): ${d}`);
  }
  return problems;
}
