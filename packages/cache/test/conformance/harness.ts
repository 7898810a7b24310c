/**
 * The conformance harness: each case is a sequence of real HTTP exchanges with Express,
 * the cache in front of an origin handler that sets the headers under test. Every step
 * asserts whether the answer came from the cache (`X-Cache`, `Age`), and its exact
 * status, the headers named (`undefined` = absent) and the body; and how many times the
 * origin ran so far. One server and cache per case, on a hand-moved clock.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ResponseCacheOptions, responseCache } from '@perfstack/cache';
import { silentLogger } from '@perfstack/core';
import express from 'express';
import { afterEach, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../../test/helpers/http.js';

export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
export const httpDate = (ms: number) => new Date(ms).toUTCString();

/** One request of a case and what its answer must be. */
export interface Step {
  /** ms to move the clock before the request. */
  readonly advance?: number;
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly expect: {
    readonly status: number;
    /** HIT, MISS, STALE, BYPASS. */
    readonly cache: string;
    /** `Age` (only on HIT/STALE; absent otherwise unless given). */
    readonly age?: string;
    readonly headers?: Record<string, string | string[] | undefined>;
    readonly body?: string;
    /** Origin calls so far (the whole case). */
    readonly calls?: number;
  };
}

/** What the origin handler gets: the request, the response, how many times it ran (1-based) and the clock. */
export type Origin = (req: express.Request, res: express.Response, call: number, now: number) => void;

export interface Case {
  readonly name: string;
  readonly origin: Origin;
  readonly steps: readonly Step[];
  readonly options?: ResponseCacheOptions;
  /** Extra routes on the same app (e.g. the target of an invalidating POST). */
  readonly routes?: (app: express.Express, now: () => number) => void;
  /** The app trusts proxies (`trust proxy`). */
  readonly trustProxy?: boolean;
}

const servers: TestServer[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(closers.splice(0).map((c) => c()));
});

/** Runs one case. */
export async function runCase(c: Case): Promise<void> {
  let now = T0;
  const cache = responseCache({ logger: silentLogger, now: () => now, ...c.options });
  closers.push(() => cache.close());
  const app = express();
  if (c.trustProxy) app.set('trust proxy', true);
  app.use(cache);
  c.routes?.(app, () => now);
  let calls = 0;
  app.all('/{*rest}', (req, res) => {
    calls++;
    c.origin(req, res, calls, now);
  });
  const server = await listen(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);
  servers.push(server);
  for (const [i, step] of c.steps.entries()) {
    now += step.advance ?? 0;
    const res = await request(`${server.url}${step.path ?? '/r'}`, {
      method: step.method ?? 'GET',
      headers: step.headers,
      ...(step.body === undefined ? {} : { body: step.body }),
    });
    const where = `${c.name} — step ${i + 1}`;
    const e = step.expect;
    expect({ step: where, status: res.status }).toEqual({ step: where, status: e.status });
    expect({ step: where, cache: res.headers['x-cache'] }).toEqual({ step: where, cache: e.cache });
    const age = e.age ?? (e.cache === 'HIT' || e.cache === 'STALE' ? expect.any(String) : undefined);
    expect({ step: where, age: res.headers.age }).toEqual({ step: where, age });
    for (const [name, value] of Object.entries(e.headers ?? {})) {
      expect({ step: where, [name]: res.headers[name] }).toEqual({ step: where, [name]: value });
    }
    if (e.body !== undefined) expect({ step: where, body: res.text }).toEqual({ step: where, body: e.body });
    if (e.calls !== undefined) expect({ step: where, calls }).toEqual({ step: where, calls: e.calls });
  }
}

/** Declares one `it` per case. */
export function conformance(cases: readonly Case[]): void {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await runCase(c);
  });
}

/** An origin that answers `body` with these headers (and a counter in `X-Call`). */
export function answer(headers: Record<string, string | string[]>, body = 'hello', status = 200): Origin {
  return (_req, res, call) => {
    res.status(status);
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.setHeader('X-Call', String(call));
    res.send(body);
  };
}
