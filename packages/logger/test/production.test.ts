/**
 * What makes the access log safe to keep on in production: refusals aggregated (one line
 * per reason per client per interval, the count of lines left out carried on), no stand-in
 * stack on a 5xx no error caused and the real stack of one that an error caused, headers
 * censored for what they are (not for a word in their name), and `close()` waiting for the
 * requests in flight so that no served request loses its line.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sendProblem } from '@perfstack/core';
import { accessLog } from '@perfstack/logger';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, waitFor } from '../../../test/helpers/http.js';
import { RefusalAggregator } from '../src/refusals.js';
import { Capture } from './capture.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(
  options: Parameters<typeof accessLog>[0],
  routes: (app: express.Express, log: ReturnType<typeof accessLog>) => void,
) {
  const out = new Capture();
  const log = accessLog({ destination: out, ...options });
  const app = express();
  app.use(log);
  routes(app, log);
  const server = await listen(app);
  cleanups.push(async () => {
    await server.close();
    await log.close();
  });
  return { server, out, log };
}

describe('refusal aggregation', () => {
  const refuse = (app: express.Express) => {
    app.get('/limited', (req, res) => {
      sendProblem(res, { code: 'RATE_LIMITED', detail: 'slow down', headers: { 'Retry-After': 60 } }, req.method);
    });
    app.get('/big', (req, res) => {
      sendProblem(res, { code: 'PAYLOAD_TOO_LARGE', detail: 'too big' }, req.method);
    });
    app.get('/teapot', (_req, res) => {
      res.status(429).json({ app: 'its own 429' });
    });
  };

  it('writes one line per reason per client per interval, and the count left out on close', async () => {
    const { server, out, log } = await start({ refusalInterval: '1h' }, refuse);
    for (let i = 0; i < 40; i++) expect((await request(`${server.url}/limited`)).status).toBe(429);
    for (let i = 0; i < 5; i++) expect((await request(`${server.url}/big`)).status).toBe(413);
    const lines = await out.waitForAccessLines(2);
    expect(lines.map((l) => [l.res?.statusCode, l.refused, l.level, l.suppressed])).toEqual([
      [429, 'RATE_LIMITED', 40, undefined],
      [413, 'PAYLOAD_TOO_LARGE', 40, undefined],
    ]);
    await log.close();
    const summaries = out.lines().filter((l) => l.msg === 'refusals suppressed');
    expect(summaries.map((l) => [l.refused, l.client, l.suppressed, l.level])).toEqual([
      ['RATE_LIMITED', '127.0.0.1', 39, 40],
      ['PAYLOAD_TOO_LARGE', '127.0.0.1', 4, 40],
    ]);
    expect(out.accessLines()).toHaveLength(2);
  });

  it("leaves an app's own 429 alone: only the stack's refusals are aggregated", async () => {
    const { server, out } = await start({ refusalInterval: '1h' }, refuse);
    for (let i = 0; i < 5; i++) await request(`${server.url}/teapot`);
    const lines = await out.waitForAccessLines(5);
    expect(lines.every((l) => l.refused === undefined && l.res?.statusCode === 429)).toBe(true);
  });

  it('refusalInterval: 0 writes every refusal', async () => {
    const { server, out } = await start({ refusalInterval: 0 }, refuse);
    for (let i = 0; i < 6; i++) await request(`${server.url}/limited`);
    const lines = await out.waitForAccessLines(6);
    expect(lines.map((l) => l.refused)).toEqual(Array(6).fill('RATE_LIMITED'));
  });

  it('carries the count left out on the next line of the pair, per client, on an injected clock', () => {
    let now = 0;
    const summaries: unknown[] = [];
    const agg = new RefusalAggregator(
      1000,
      (s) => summaries.push(s),
      () => now,
    );
    expect(agg.admit('RATE_LIMITED', 'a')).toBe(0);
    expect(agg.admit('RATE_LIMITED', 'a')).toBe(-1);
    expect(agg.admit('RATE_LIMITED', 'b')).toBe(0);
    expect(agg.admit('OVERLOADED', 'a')).toBe(0);
    now = 999;
    expect(agg.admit('RATE_LIMITED', 'a')).toBe(-1);
    now = 1000;
    expect(agg.admit('RATE_LIMITED', 'a')).toBe(2);
    expect(agg.admit('RATE_LIMITED', 'a')).toBe(-1);
    now = 1900;
    expect(agg.admit('OVERLOADED', 'a')).toBe(0); // a new interval for OVERLOADED/a, nothing left out before it
    now = 1950;
    agg.sweep();
    expect(summaries).toEqual([]); // RATE_LIMITED/a was refused 950 ms ago: still active, keeps its count
    now = 2500;
    agg.sweep();
    expect(summaries).toEqual([{ refused: 'RATE_LIMITED', client: 'a', suppressed: 1 }]);
    // the pair was forgotten: its next refusal starts afresh
    expect(agg.admit('RATE_LIMITED', 'a')).toBe(0);
    agg.close();
  });
});

describe('errors on the line', () => {
  it('logs a 5xx that no error caused without err, and an error passed to next(err) with its own stack, redacted', async () => {
    const { server, out } = await start({}, (app, log) => {
      app.get('/unavailable', (_req, res) => {
        res.status(503).send('maintenance');
      });
      app.get('/broken', (_req, _res, next) => {
        next(new Error('db refused password=hunter2'));
      });
      app.get('/thrown', () => {
        throw new TypeError('bad token=abc.def');
      });
      app.use(log.errorHandler);
      app.use((_error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        res.status(500).json({ error: 'internal' });
      });
    });
    await request(`${server.url}/unavailable`);
    await request(`${server.url}/broken`);
    await request(`${server.url}/thrown`);
    const lines = await out.waitForAccessLines(3);
    const byUrl = Object.fromEntries(lines.map((l) => [l.req?.url, l]));
    expect(byUrl['/unavailable']?.err).toBeUndefined();
    expect(byUrl['/unavailable']?.level).toBe(50);
    const broken = byUrl['/broken']?.err;
    expect(broken?.type).toBe('Error');
    expect(broken?.message).toBe('db refused password=[REDACTED]');
    // the error's own stack: its first frame is the route that made it
    expect(broken?.stack.split('\n')[1]).toContain('production.test.ts');
    expect(broken?.stack).not.toContain('hunter2');
    expect(out.raw).not.toContain('failed with status code');
    const thrown = byUrl['/thrown']?.err;
    expect(thrown?.type).toBe('TypeError');
    expect(thrown?.stack).toContain('production.test.ts');
    expect(out.raw).not.toContain('hunter2');
    expect(out.raw).not.toContain('abc.def');
  });
});

describe('header redaction keyed on what is secret', () => {
  it('keeps access-control-allow-credentials visible, censors credentials', async () => {
    const { server, out } = await start({ headers: 'all' }, (app) => {
      app.get('/cors', (_req, res) => {
        res.set('Access-Control-Allow-Credentials', 'true');
        res.set('Access-Control-Allow-Origin', 'https://app.example');
        res.set('X-Auth-Token', 'tok-1');
        res.json({});
      });
    });
    await request(`${server.url}/cors`, {
      headers: { authorization: 'Bearer x', 'x-csrf-token': 'c', 'access-control-request-method': 'GET' },
    });
    const [line] = await out.waitForAccessLines(1);
    expect(line?.res?.headers['access-control-allow-credentials']).toBe('true');
    expect(line?.res?.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(line?.res?.headers['x-auth-token']).toBe('[REDACTED]');
    expect(line?.req?.headers.authorization).toBe('[REDACTED]');
    expect(line?.req?.headers['x-csrf-token']).toBe('[REDACTED]');
    expect(line?.req?.headers['access-control-request-method']).toBe('GET');
  });

  it('with the minimal header set, does not list access-control-allow-credentials as a censored header', async () => {
    const { server, out } = await start({}, (app) => {
      app.get('/cors', (_req, res) => {
        res.set('Access-Control-Allow-Credentials', 'true');
        res.json({});
      });
    });
    await request(`${server.url}/cors`);
    const [line] = await out.waitForAccessLines(1);
    expect(line?.res?.headers).toEqual({ 'content-type': 'application/json; charset=utf-8', 'content-length': '2' });
  });
});

describe('close() and requests in flight', () => {
  it('waits for every request in flight, so each one served has its line in the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'perfstack-logger-close-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'access.log');
    const log = accessLog({ destination: file });
    let arrived = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const app = express();
    app.use(log);
    app.get('/slow/:n', async (req, res) => {
      arrived++;
      await gate;
      res.json({ n: req.params.n });
    });
    const server = await listen(app);
    cleanups.push(() => server.close());
    const N = 25;
    const responses = Array.from({ length: N }, (_, i) => request(`${server.url}/slow/${i}`));
    await waitFor(() => arrived === N, 10_000);
    const closed = log.close();
    let done = false;
    void closed.then(() => {
      done = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(done).toBe(false); // still waiting for the requests in flight
    release();
    const statuses = (await Promise.all(responses)).map((r) => r.status);
    expect(statuses).toEqual(Array(N).fill(200));
    await closed;
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(N);
    expect(new Set(lines.map((l) => l.req.url))).toEqual(new Set(Array.from({ length: N }, (_, i) => `/slow/${i}`)));
  });

  it('gives up after closeTimeout on a request that never ends', async () => {
    let reached = false;
    const { server, log } = await start({ closeTimeout: 200 }, (app) => {
      app.get('/hang', () => {
        reached = true;
      });
    });
    const hanging = request(`${server.url}/hang`).catch(() => undefined);
    // The request must be in flight through the logger, not merely connected: on a loaded
    // machine a connection can be open before its request reaches the middleware.
    await waitFor(async () => reached);
    const started = Date.now();
    await log.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(5000);
    server.server.closeAllConnections();
    await hanging;
  });
});
