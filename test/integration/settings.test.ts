/**
 * Runtime settings (issue 20, item 2): `stack.settings` and the dashboard's
 * `GET`/`PATCH /api/settings` and `POST /api/settings/undo`, over real HTTP, with two
 * instances sharing a real Redis: a change made on A reaches B, an undo restores both, a bad
 * value changes nothing anywhere, CSRF and auth guard the writes, and the audit is exact.
 */
import express from 'express';
import { cache, type PerformanceStack, type PerformanceStackOptions, performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../helpers/http.js';
import { cleanPrefix, redisUrl, uniquePrefix } from '../helpers/redis.js';

const quiet = { warn() {}, error() {} };
const SECRET = 'settings-test-csrf-secret-0123456789';
const AUTH = { username: 'ops', password: 'correct horse battery' };
const BASIC = `Basic ${Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64')}`;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Instance {
  readonly stack: PerformanceStack;
  readonly url: string;
  /** The JSON lines the access log wrote. */
  readonly lines: Array<Record<string, unknown>>;
}

/** One instance: Express, the whole stack, a cached route with tags, the dashboard behind Basic auth. */
async function instance(id: string, options: PerformanceStackOptions = {}): Promise<Instance> {
  const lines: Array<Record<string, unknown>> = [];
  const stack = performanceStack({
    env: false,
    log: quiet,
    logger: { destination: { write: (line: string) => lines.push(JSON.parse(line)) } as never },
    rateLimit: { limit: 100, window: '1m' },
    circuitBreaker: { timeout: '10s' },
    dashboard: { auth: AUTH, csrfSecret: SECRET, instanceId: id },
    ...options,
  });
  const app = express();
  app.use(stack);
  app.use('/dashboard', stack.dashboard());
  app.get('/products/:id', cache({ ttl: '30s', tags: ['products'] }), (req, res) => {
    res.json({ id: req.params.id });
  });
  app.get('/ping', (_req, res) => {
    res.end('pong');
  });
  const server: TestServer = await listen(app);
  cleanups.push(async () => {
    await server.close();
    await stack.close();
  });
  return { stack, url: server.url, lines };
}

/** Two instances on one Redis (own key prefix), both subscribed to the settings channel. */
/** The Redis of the last `fleet()`, for instances started later. */
let fleetRedis = { url: '', keyPrefix: '' };
async function fleet(options: PerformanceStackOptions = {}): Promise<[Instance, Instance]> {
  const url = await redisUrl();
  const keyPrefix = uniquePrefix('settings');
  fleetRedis = { url, keyPrefix };
  cleanups.push(() => cleanPrefix(url, keyPrefix));
  const a = await instance('a', { redis: { url, keyPrefix }, ...options });
  const b = await instance('b', { redis: { url, keyPrefix }, ...options });
  await waitFor(() => Boolean(a.stack.redis?.isUp && b.stack.redis?.isUp));
  await waitFor(async () => {
    const reply = (await a.stack.redis?.client.sendCommand(['PUBSUB', 'NUMSUB', `${keyPrefix}settings`])) as [
      string,
      number,
    ];
    return Number(reply[1]) === 2;
  });
  // Each instance has served the cached route once, so it lists its ttl.
  for (const i of [a, b]) expect((await request(`${i.url}/products/1`)).status).toBe(200);
  return [a, b];
}

/** A write as the page's script sends it: same origin, the page's token, JSON, the user's credentials. */
function write(i: Instance, path: string, method: string, body: unknown, headers: Record<string, string> = {}) {
  const host = i.url.slice('http://'.length);
  return request(`${i.url}/dashboard${path}`, {
    method,
    headers: {
      Host: host,
      Origin: i.url,
      'Sec-Fetch-Site': 'same-origin',
      'Content-Type': 'application/json',
      Authorization: BASIC,
      'X-CSRF-Token': pageToken,
      ...headers,
    },
    body: JSON.stringify(body),
  });
}
let pageToken = '';
async function loadToken(i: Instance): Promise<void> {
  const page = await request(`${i.url}/dashboard/`, { headers: { Authorization: BASIC } });
  expect(page.status).toBe(200);
  pageToken = /<meta name="csrf-token" content="([^"]+)">/.exec(page.text)?.[1] ?? '';
  expect(pageToken).not.toBe('');
}

const policyOf = async (i: Instance) => (await request(`${i.url}/ping`)).headers['ratelimit-policy'];
const settingsOf = async (i: Instance) => {
  const res = await request(`${i.url}/dashboard/api/settings`, { headers: { Authorization: BASIC } });
  expect(res.status).toBe(200);
  return res.json<{
    settings: Array<{ path: string; value: unknown; text: string; configured: unknown }>;
    audit: Array<Record<string, unknown>>;
  }>();
};
/** path → value; per-route breaker settings (one set per route served so far) only when `perRoute`. */
const valuesOf = async (i: Instance, perRoute = false) =>
  Object.fromEntries(
    (await settingsOf(i)).settings
      .filter((s) => perRoute || !s.path.startsWith('circuitBreaker.routes.'))
      .map((s) => [s.path, s.value]),
  );

const INITIAL = {
  'cache.ttl': 60_000,
  'cache.routes./products/:id.ttl': 30_000,
  'rateLimit.limit': 100,
  'circuitBreaker.timeout': 10_000,
  'circuitBreaker.failureThreshold': 5,
  'circuitBreaker.resetTimeout': 30_000,
  'circuitBreaker.overload.maxEventLoopDelay': 1000,
  'logger.level': 'info',
  'logger.sampleRate': 1,
};

describe('runtime settings across two instances on Redis', () => {
  it('GET /api/settings lists every tunable setting with its value', async () => {
    const [a] = await fleet();
    const body = await settingsOf(a);
    // Per-route breaker settings for the route served so far (the dashboard's own are exempt).
    expect(Object.fromEntries(body.settings.map((s) => [s.path, s.value]))).toEqual({
      ...INITIAL,
      'circuitBreaker.routes./products/:id.timeout': 10_000,
      'circuitBreaker.routes./products/:id.failureThreshold': 5,
      'circuitBreaker.routes./products/:id.resetTimeout': 30_000,
    });
    const route = body.settings.find((s) => s.path === 'cache.routes./products/:id.ttl');
    expect(route).toMatchObject({ text: '30s', configured: 30_000, kind: 'duration', layer: 'cache' });
    expect(body.audit).toEqual([]);
  });

  it('PATCH on A changes the setting on A and B (live: the next response shows it); undo restores both', async () => {
    const [a, b] = await fleet();
    await loadToken(a);
    expect(await policyOf(b)).toBe('"100-in-1min"; q=100; w=60');
    const res = await write(a, '/api/settings', 'PATCH', {
      'rateLimit.limit': 300,
      'cache.routes./products/:id.ttl': '5m',
    });
    expect(res.status).toBe(200);
    const { entry } = res.json<{ entry: { id: string } }>();
    expect(a.stack.settings.get('rateLimit.limit')).toBe(300);
    await waitFor(() => b.stack.settings.get('rateLimit.limit') === 300);
    expect(b.stack.settings.get('cache.routes./products/:id.ttl')).toBe(300_000);
    expect(await policyOf(a)).toBe('"100-in-1min"; q=300; w=60');
    expect(await policyOf(b)).toBe('"100-in-1min"; q=300; w=60');
    expect(b.stack.cache.ttlOf('/products/:id')).toBe(300_000);

    const undo = await write(a, '/api/settings/undo', 'POST', { id: entry.id });
    expect(undo.status).toBe(200);
    await waitFor(() => b.stack.settings.get('rateLimit.limit') === 100);
    expect(await valuesOf(a)).toEqual(INITIAL);
    expect(await valuesOf(b)).toEqual(INITIAL);
    expect(await policyOf(b)).toBe('"100-in-1min"; q=100; w=60');
  });

  it('an instance started after a PATCH reads the new values; one started after the undo reads the configured ones', async () => {
    const [a] = await fleet();
    await loadToken(a);
    const res = await write(a, '/api/settings', 'PATCH', {
      'rateLimit.limit': 300,
      'cache.routes./products/:id.ttl': '5m',
    });
    expect(res.status).toBe(200);
    const { entry } = res.json<{ entry: { id: string } }>();
    const key = `${fleetRedis.keyPrefix}settings:overrides`;
    const hash = () => a.stack.redis?.client.hGetAll(key) as Promise<Record<string, string>>;
    expect(await hash()).toEqual({ 'rateLimit.limit': '300', 'cache.routes./products/:id.ttl': '300000' });

    // C starts after the change: it applies the stored overrides at start.
    const c = await instance('c', { redis: fleetRedis });
    await waitFor(() => c.stack.settings.get('rateLimit.limit') === 300);
    expect(c.stack.settings.get('cache.routes./products/:id.ttl')).toBe(300_000);
    expect(await policyOf(c)).toBe('"100-in-1min"; q=300; w=60');
    expect(c.stack.cache.ttlOf('/products/:id')).toBe(300_000);
    expect(c.stack.settings.audit()).toEqual([]);

    const undo = await write(a, '/api/settings/undo', 'POST', { id: entry.id });
    expect(undo.status).toBe(200);
    // Back to the configured values: nothing is stored any more.
    expect(await hash()).toEqual({});
    await waitFor(() => c.stack.settings.get('rateLimit.limit') === 100);

    // D starts after the undo. A bad stored value and an unknown path are logged and skipped;
    // a good one (logger.level) applies.
    await a.stack.redis?.client.hSet(key, {
      'rateLimit.limit': '"lots"',
      'no.such.setting': '1',
      'logger.level': '"warn"',
    });
    const errors: Array<[string, unknown]> = [];
    const d = await instance('d', {
      redis: fleetRedis,
      log: { warn() {}, error: (message, details) => errors.push([message, details]) },
    });
    await waitFor(() => d.stack.settings.get('logger.level') === 'warn');
    // D has not served /products/:id yet, so it does not list that route's ttl.
    const { 'cache.routes./products/:id.ttl': _route, ...configured } = INITIAL;
    expect(await valuesOf(d)).toEqual({ ...configured, 'logger.level': 'warn' });
    expect(await policyOf(d)).toBe('"100-in-1min"; q=100; w=60');
    expect(errors.map(([message, details]) => [message, (details as { path: string }).path])).toEqual([
      ['perfstack settings: a stored setting could not be applied; skipped', 'rateLimit.limit'],
      ['perfstack settings: a stored setting could not be applied; skipped', 'no.such.setting'],
    ]);
    expect(errors[0]?.[1]).toMatchObject({ error: expect.stringContaining('@perfstack/rate-limit: option "limit"') });
    expect(errors[1]?.[1]).toMatchObject({ error: 'not a tunable setting here' });
  });

  it('the audit is exact on both instances and in both logs: who, when, where, before/after, and the undo', async () => {
    const [a, b] = await fleet();
    await loadToken(a);
    const before = Date.now();
    const res = await write(a, '/api/settings', 'PATCH', { 'rateLimit.limit': 300, 'logger.sampleRate': 0.5 });
    const { entry } = res.json<{ entry: Record<string, unknown> & { id: string; at: number } }>();
    expect(entry).toEqual({
      id: entry.id,
      at: entry.at,
      actor: 'ops',
      instance: 'a',
      changes: [
        { path: 'rateLimit.limit', before: 100, after: 300 },
        { path: 'logger.sampleRate', before: 1, after: 0.5 },
      ],
    });
    expect(entry.at).toBeGreaterThanOrEqual(before);
    expect(entry.at).toBeLessThanOrEqual(Date.now());
    await waitFor(() => b.stack.settings.audit().length === 1);
    expect(b.stack.settings.audit()).toEqual([entry]);
    expect((await settingsOf(b)).audit).toEqual([entry]);
    const undo = (await write(a, '/api/settings/undo', 'POST', { id: entry.id })).json<{
      entry: Record<string, unknown> & { id: string; at: number };
    }>().entry;
    expect(undo).toEqual({
      id: undo.id,
      at: undo.at,
      actor: 'ops',
      instance: 'a',
      changes: [
        { path: 'rateLimit.limit', before: 300, after: 100 },
        { path: 'logger.sampleRate', before: 0.5, after: 1 },
      ],
      undoOf: entry.id,
      reason: `undo of ${entry.id}`,
    });
    await waitFor(() => b.stack.settings.audit().length === 2);
    // Newest first on the page.
    expect((await settingsOf(b)).audit).toEqual([undo, entry]);
    for (const i of [a, b]) {
      const logged = i.lines.filter((l) => l.event === 'settings');
      expect(logged.map((l) => ({ id: l.id, actor: l.actor, instance: l.instance, changes: l.changes }))).toEqual([
        { id: entry.id, actor: 'ops', instance: 'a', changes: entry.changes },
        { id: undo.id, actor: 'ops', instance: 'a', changes: undo.changes },
      ]);
      expect(logged.map((l) => l.msg)).toEqual(['perfstack settings changed', 'perfstack settings changed']);
    }
  });

  it('bad input: 400 problem+json naming the path, and nothing changes on either instance', async () => {
    const [a, b] = await fleet();
    await loadToken(a);
    const cases: Array<[unknown, string, string]> = [
      [{ 'rateLimit.limit': 300, 'cache.routes./products/:id.ttl': 'soon' }, 'cache.routes./products/:id.ttl', 'ttl'],
      [{ 'rateLimit.limit': 0 }, 'rateLimit.limit', 'an integer from 1'],
      [{ 'rateLimit.limit': '300' }, 'rateLimit.limit', 'an integer from 1'],
      [{ 'rateLimit.limit': 300, 'cache.routes./nope.ttl': '5m' }, 'cache.routes./nope.ttl', 'not a tunable setting'],
      [{ 'rateLimit.windowMs': 1000 }, 'rateLimit.windowMs', 'not a tunable setting'],
      [{ 'logger.level': 'loud' }, 'logger.level', 'must be one of'],
      [{ 'logger.sampleRate': 2 }, 'logger.sampleRate', 'sampleRate'],
      [{ 'circuitBreaker.failureThreshold': -1 }, 'circuitBreaker.failureThreshold', 'failureThreshold'],
      [{}, '', 'at least one'],
      [[1], '', 'JSON object'],
    ];
    for (const [body, path, words] of cases) {
      const res = await write(a, '/api/settings', 'PATCH', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      const problem = res.json<Record<string, unknown>>();
      expect(problem).toMatchObject({ status: 400, code: 'BAD_REQUEST', path });
      expect(String(problem.detail)).toContain(words);
    }
    const unknown = await write(a, '/api/settings/undo', 'POST', { id: 'no-such-entry' });
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'NOT_FOUND' });
    expect(await valuesOf(a)).toEqual(INITIAL);
    expect(await valuesOf(b)).toEqual(INITIAL);
    expect(a.stack.settings.audit()).toEqual([]);
    expect(b.stack.settings.audit()).toEqual([]);
    expect(await policyOf(a)).toBe('"100-in-1min"; q=100; w=60');
  });

  it('CSRF and auth guard the writes exactly like the other actions', async () => {
    const [a] = await fleet();
    await loadToken(a);
    const patch = { 'rateLimit.limit': 300 };
    const noAuth = await write(a, '/api/settings', 'PATCH', patch, { Authorization: '' });
    expect(noAuth.status).toBe(401);
    const noToken = await write(a, '/api/settings', 'PATCH', patch, { 'X-CSRF-Token': '' });
    expect(noToken.status).toBe(403);
    expect(noToken.json()).toMatchObject({ code: 'FORBIDDEN', reason: 'csrf' });
    const badToken = await write(a, '/api/settings', 'PATCH', patch, { 'X-CSRF-Token': 'x'.repeat(43) });
    expect(badToken.status).toBe(403);
    const crossSite = await write(a, '/api/settings', 'PATCH', patch, { 'Sec-Fetch-Site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const form = await write(a, '/api/settings', 'PATCH', patch, {
      'Content-Type': 'application/x-www-form-urlencoded',
    });
    expect(form.status).toBe(403);
    const undoNoToken = await write(a, '/api/settings/undo', 'POST', { id: 'x' }, { 'X-CSRF-Token': '' });
    expect(undoNoToken.status).toBe(403);
    const readNoAuth = await request(`${a.url}/dashboard/api/settings`);
    expect(readNoAuth.status).toBe(401);
    const put = await write(a, '/api/settings', 'PUT', patch);
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe('GET, HEAD, PATCH');
    expect(a.stack.settings.get('rateLimit.limit')).toBe(100);
    expect(a.stack.settings.audit()).toEqual([]);
  });
});

describe('each layer reads its tunables live', () => {
  it('logger.level and circuitBreaker.timeout take effect on the next request', async () => {
    const a = await instance('solo', { redis: false });
    let release: (() => void) | undefined;
    const app = express();
    app.use(a.stack);
    app.get('/hang', (_req, res) => {
      release = () => res.end('late');
    });
    const server = await listen(app);
    cleanups.push(() => server.close());
    expect((await request(`${a.url}/ping`)).status).toBe(200);
    const before = a.lines.filter((l) => l.msg === 'request completed').length;
    await a.stack.settings.set({ 'logger.level': 'warn', 'circuitBreaker.timeout': 50 }, { actor: 'test' });
    expect((await request(`${a.url}/ping`)).status).toBe(200);
    expect(a.lines.filter((l) => l.msg === 'request completed').length).toBe(before);
    const hung = await request(`${server.url}/hang`);
    expect(hung.status).toBe(504);
    expect(hung.json()).toMatchObject({ code: 'TIMEOUT' });
    release?.();
  });
});

describe('each layer reads its tunables live (more)', () => {
  it('a route ttl raise applies to entries stored from then on (the cache clock moved by hand)', async () => {
    const clock = { now: 1_000_000 };
    const a = await instance('ttl', { redis: false, cache: { now: () => clock.now } });
    expect((await request(`${a.url}/products/1`)).headers['x-cache']).toBe('MISS');
    await a.stack.settings.set({ 'cache.routes./products/:id.ttl': '5m' });
    expect((await request(`${a.url}/products/2`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${a.url}/products/2`)).headers['x-cache']).toBe('HIT');
    clock.now += 60_000;
    // Stored under the old 30 s: expired. Stored under the new 5 min: still fresh.
    expect((await request(`${a.url}/products/1`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${a.url}/products/2`)).headers['x-cache']).toBe('HIT');
  });

  it('circuitBreaker.failureThreshold applies to a breaker already made; logger.sampleRate 0 drops success lines', async () => {
    const a = await instance('breaker', { redis: false });
    const app = express();
    app.use(a.stack);
    app.get('/flaky', (_req, res) => {
      res.status(500).end('no');
    });
    app.get('/ok', (_req, res) => {
      res.end('ok');
    });
    const server = await listen(app);
    cleanups.push(() => server.close());
    // Threshold 5: two failures leave the breaker closed (the app answers both).
    expect((await request(`${server.url}/flaky`)).status).toBe(500);
    expect((await request(`${server.url}/flaky`)).status).toBe(500);
    await a.stack.settings.set({ 'circuitBreaker.failureThreshold': 3, 'logger.sampleRate': 0 });
    expect((await request(`${server.url}/flaky`)).status).toBe(500);
    const open = await request(`${server.url}/flaky`);
    expect(open.status).toBe(503);
    expect(open.json()).toMatchObject({ code: 'CIRCUIT_OPEN' });
    const before = a.lines.filter((l) => l.msg === 'request completed').length;
    expect((await request(`${server.url}/ok`)).status).toBe(200);
    expect(a.lines.filter((l) => l.msg === 'request completed').length).toBe(before);
  });
});

describe('per-route breaker settings', () => {
  it("PATCH a route's breaker timeout: that route answers 504 at it, another keeps the default; the report proposes the change", async () => {
    const a = await instance('routes', { redis: false });
    const app = express();
    app.use(a.stack);
    app.use('/dashboard', a.stack.dashboard());
    // Both routes answer after 150 ms: well inside the default 10 s budget.
    const late = (_req: express.Request, res: express.Response) => {
      setTimeout(() => res.end('late'), 150);
    };
    app.get('/slow/:id', late);
    app.get('/other', late);
    const server = await listen(app);
    cleanups.push(() => server.close());
    const i = { ...a, url: server.url };
    expect((await request(`${server.url}/slow/1`)).status).toBe(200);
    expect((await request(`${server.url}/other`)).status).toBe(200);
    await loadToken(i);
    const res = await write(i, '/api/settings', 'PATCH', {
      'circuitBreaker.routes./slow/:id.timeout': '50ms',
      'circuitBreaker.routes./slow/:id.failureThreshold': 1,
    });
    expect(res.status).toBe(200);
    expect(res.json<{ entry: { changes: unknown } }>().entry.changes).toEqual([
      { path: 'circuitBreaker.routes./slow/:id.timeout', before: 10_000, after: 50 },
      { path: 'circuitBreaker.routes./slow/:id.failureThreshold', before: 5, after: 1 },
    ]);
    const timedOut = await request(`${server.url}/slow/2`);
    expect(timedOut.status).toBe(504);
    expect(timedOut.json()).toMatchObject({ code: 'TIMEOUT' });
    expect((await request(`${server.url}/other`)).status).toBe(200);
    const values = await valuesOf(i, true);
    expect(values).toMatchObject({
      'circuitBreaker.timeout': 10_000,
      'circuitBreaker.routes./slow/:id.timeout': 50,
      'circuitBreaker.routes./other.timeout': 10_000,
      'circuitBreaker.routes./other.failureThreshold': 5,
    });
    // The one failure opened the route's breaker: the report's recommendation carries the change.
    const report = await request(`${server.url}/dashboard/api/report`, { headers: { Authorization: BASIC } });
    expect(report.status).toBe(200);
    const rec = report
      .json<{ recommendations: Array<{ rule: string; route: string; change?: unknown }> }>()
      .recommendations.find((r) => r.rule === 'breakers');
    expect(rec).toMatchObject({
      route: 'GET /slow/:id',
      change: {
        path: 'circuitBreaker.routes./slow/:id.timeout',
        from: 50,
        to: 100,
        text: 'circuitBreaker.routes./slow/:id.timeout: 50ms → 100ms',
      },
    });
    // A bad value names the path; an unknown route is not tunable until it is served.
    const bad = await write(i, '/api/settings', 'PATCH', { 'circuitBreaker.routes./other.timeout': 'soon' });
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ path: 'circuitBreaker.routes./other.timeout' });
    const unknown = await write(i, '/api/settings', 'PATCH', { 'circuitBreaker.routes./never.timeout': '1s' });
    expect(unknown.status).toBe(400);
  });
});

describe('autoTune: detect → apply → validate, with a controllable clock', () => {
  /** An instance with autoTune looking only when the test says (`tick()`), on the test's clock. */
  async function tuned(
    routes: (app: express.Express) => void,
    tune: { maxP99?: string; minLatencyDelta?: string } = {},
  ) {
    const clock = { now: 1_000_000 };
    const lines: Array<Record<string, unknown>> = [];
    const stack = performanceStack({
      env: false,
      log: quiet,
      redis: false,
      logger: { destination: { write: (line: string) => lines.push(JSON.parse(line)) } as never },
      rateLimit: { limit: 20, window: '1m', keyGenerator: (req) => String(req.headers['x-client'] ?? 'anon') },
      // The breaker would open on the injected errors; this test is about autoTune's own rollback.
      circuitBreaker: false,
      autoTune: { interval: '1h', window: '5m', maxP99: '10s', ...tune, now: () => clock.now },
    });
    const app = express();
    app.use(stack);
    app.use('/dashboard', stack.dashboard());
    routes(app);
    const server = await listen(app);
    cleanups.push(async () => {
      await server.close();
      await stack.close();
    });
    return { stack, url: server.url, clock, lines, tune: stack.autoTune as NonNullable<PerformanceStack['autoTune']> };
  }

  it('raises the limit while routes are healthy, then rolls it back when the route starts failing', async () => {
    let failing = false;
    // The regression here is the error rate: a p99 rise of a few ms on a loaded machine is not
    // what this test is about (the p99 rollback has its own test below).
    const t = await tuned(
      (app) => {
        app.get('/api/items', (_req, res) => {
          res.status(failing ? 500 : 200).json({ ok: !failing });
        });
      },
      { minLatencyDelta: '5s' },
    );
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      statuses.push((await request(`${t.url}/api/items`, { headers: { 'x-client': 'x' } })).status);
    }
    expect(statuses.filter((s) => s === 429)).toHaveLength(20);
    const applied = await t.tune.tick();
    expect(applied).toMatchObject({ action: 'apply', path: 'rateLimit.limit' });
    expect(applied?.reason).toContain('20 → 30');
    expect(t.stack.settings.get('rateLimit.limit')).toBe(30);
    // Nothing worsened yet, and the window is not over: nothing to decide.
    expect(await t.tune.tick()).toBeUndefined();
    // After the raise, the route starts failing (the backend cannot take the extra load).
    failing = true;
    for (let i = 0; i < 20; i++) {
      expect((await request(`${t.url}/api/items`, { headers: { 'x-client': 'y' } })).status).toBe(500);
    }
    const rolledBack = await t.tune.tick();
    expect(rolledBack).toMatchObject({ action: 'rollback', path: 'rateLimit.limit' });
    expect(rolledBack?.reason).toContain('GET /api/items error rate');
    expect(t.stack.settings.get('rateLimit.limit')).toBe(20);
    const [apply, undo] = t.stack.settings.audit();
    expect(apply).toMatchObject({ actor: 'autoTune', changes: [{ path: 'rateLimit.limit', before: 20, after: 30 }] });
    expect(undo).toMatchObject({
      actor: 'autoTune',
      undoOf: apply?.id,
      changes: [{ path: 'rateLimit.limit', before: 30, after: 20 }],
    });
    expect(rolledBack?.entry).toBe(undo?.id);
    // On the page's data and in the log.
    const page = (await request(`${t.url}/dashboard/api/settings`)).json<{
      autoTune: { enabled: boolean; decisions: Array<{ action: string; path: string }> };
    }>();
    expect(page.autoTune.enabled).toBe(true);
    expect(page.autoTune.decisions.map((d) => [d.action, d.path])).toEqual([
      ['apply', 'rateLimit.limit'],
      ['rollback', 'rateLimit.limit'],
    ]);
    expect(t.lines.filter((l) => l.event === 'autoTune').map((l) => l.action)).toEqual(['apply', 'rollback']);
  });

  it('rolls the limit raise back when the route gets slow after it: the reason names the p99', async () => {
    let slow = false;
    const t = await tuned(
      (app) => {
        app.get('/api/items', (_req, res) => {
          // After the raise the backend slows down (it cannot take the extra load): 600 ms a request.
          if (slow) setTimeout(() => res.json({ ok: true }), 600);
          else res.json({ ok: true });
        });
        // A first request warms the process up on a route autoTune does not judge (under minRequests).
        app.get('/warm', (_req, res) => {
          res.end('warm');
        });
      },
      { maxP99: '200ms' },
    );
    expect((await request(`${t.url}/warm`)).status).toBe(200);
    for (let i = 0; i < 40; i++) await request(`${t.url}/api/items`, { headers: { 'x-client': 'x' } });
    const applied = await t.tune.tick();
    expect(applied).toMatchObject({ action: 'apply', path: 'rateLimit.limit' });
    expect(t.stack.settings.get('rateLimit.limit')).toBe(30);
    expect(await t.tune.tick()).toBeUndefined();
    slow = true;
    // Twenty slow requests at once (one client, under the raised limit of 30): every answer 200.
    const statuses = await Promise.all(
      Array.from(
        { length: 20 },
        async () => (await request(`${t.url}/api/items`, { headers: { 'x-client': 'y' } })).status,
      ),
    );
    expect(statuses).toEqual(Array(20).fill(200));
    const rolledBack = await t.tune.tick();
    expect(rolledBack).toMatchObject({ action: 'rollback', path: 'rateLimit.limit' });
    expect(rolledBack?.reason).toMatch(/^GET \/api\/items p99 \d+\.\d ms against \d+\.\d ms before the change$/);
    expect(t.stack.settings.get('rateLimit.limit')).toBe(20);
    const [apply, undo] = t.stack.settings.audit();
    expect(undo).toMatchObject({
      actor: 'autoTune',
      undoOf: apply?.id,
      reason: `rollback: ${rolledBack?.reason}`,
      changes: [{ path: 'rateLimit.limit', before: 30, after: 20 }],
    });
  });

  it('raises the ttl of a tagged route only, and keeps it once the window passes without a regression', async () => {
    const t = await tuned((app) => {
      app.get('/products/:id', cache({ ttl: '30s', tags: ['products'] }), (req, res) => {
        res.json({ id: req.params.id });
      });
      app.get('/untagged/:id', cache({ ttl: '30s' }), (req, res) => {
        res.json({ id: req.params.id });
      });
    });
    for (let i = 0; i < 25; i++) {
      expect((await request(`${t.url}/untagged/${i}`, { headers: { 'x-client': `u${i}` } })).status).toBe(200);
      expect((await request(`${t.url}/products/${i}`, { headers: { 'x-client': `p${i}` } })).status).toBe(200);
    }
    const applied = await t.tune.tick();
    expect(applied).toMatchObject({ action: 'apply', path: 'cache.routes./products/:id.ttl' });
    expect(t.stack.cache.ttlOf('/products/:id')).toBe(60_000);
    expect(t.stack.cache.ttlOf('/untagged/:id')).toBe(30_000);
    expect(await t.tune.tick()).toBeUndefined();
    t.clock.now += 300_000;
    expect(await t.tune.tick()).toMatchObject({ action: 'keep', path: 'cache.routes./products/:id.ttl' });
    // The untagged route is never a candidate; the tagged one saw no lookups since: nothing to do.
    expect(await t.tune.tick()).toBeUndefined();
    expect(t.stack.cache.ttlOf('/untagged/:id')).toBe(30_000);
    expect(t.stack.settings.audit()).toHaveLength(1);
  });

  it('is off unless asked for, and its options are validated like the others', () => {
    const stack = performanceStack({ env: false, log: quiet, redis: false, logger: false });
    cleanups.push(() => stack.close());
    expect(stack.autoTune).toBeUndefined();
    expect(() => performanceStack({ env: false, log: quiet, redis: false, autoTune: { window: 'soon' } })).toThrow(
      'autoTune.window',
    );
    expect(() =>
      performanceStack({ env: false, log: quiet, redis: false, autoTune: { errorTolerance: 2 } as never }),
    ).toThrow('autoTune.errorTolerance');
    expect(() => performanceStack({ env: false, log: quiet, redis: false, autoTune: { bogus: 1 } as never })).toThrow(
      'bogus',
    );
  });
});
