/**
 * Access-line behaviour over real HTTP: request ids, levels by status, the ignore list,
 * sampling, the route pattern, body logging, destinations and `close()`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { accessLog } from '@perfstack/logger';
import express from 'express';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { Capture, type LogLine } from './capture.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An Express app behind `accessLog(options)`, logging into a capture. */
async function start(
  options: Parameters<typeof accessLog>[0] = {},
  routes?: (app: express.Express) => void,
): Promise<{ server: TestServer; out: Capture; log: ReturnType<typeof accessLog> }> {
  const out = new Capture();
  const log = accessLog({ destination: out, ...options });
  const app = express();
  app.use(log);
  app.use(express.json());
  if (routes) routes(app);
  else {
    app.get('/users/:id', (req, res) => {
      req.log.info('looking up');
      res.json({ id: req.params.id });
    });
    app.get('/status/:code', (req, res) => {
      res.status(Number(req.params.code)).end();
    });
    app.get('/health', (_req, res) => res.send('ok'));
    app.get('/metrics', (_req, res) => res.send('# metrics'));
    app.get('/dashboard/api/stream', (_req, res) => res.send('data'));
    app.get('/internal/ping', (_req, res) => res.send('pong'));
  }
  const server = await listen(app);
  cleanups.push(async () => {
    await server.close();
    await log.close();
  });
  return { server, out, log };
}

describe('request id', () => {
  it('generates one when absent, echoes it, and puts it on the access line and every req.log line', async () => {
    const { server, out } = await start();
    const res = await request(`${server.url}/users/7`);
    expect(res.status).toBe(200);
    const id = res.headers['x-request-id'];
    expect(id).toMatch(UUID);
    const [access] = await out.waitForAccessLines(1);
    expect(access?.reqId).toBe(id);
    const appLine = out.lines().find((l) => l.msg === 'looking up');
    expect(appLine?.reqId).toBe(id);
    expect(appLine?.req?.url).toBe('/users/7');
  });

  it('keeps a valid incoming id', async () => {
    const { server, out } = await start();
    const res = await request(`${server.url}/users/7`, { headers: { 'x-request-id': 'abc-123.trace:9' } });
    expect(res.headers['x-request-id']).toBe('abc-123.trace:9');
    const [access] = await out.waitForAccessLines(1);
    expect(access?.reqId).toBe('abc-123.trace:9');
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['unsafe characters', 'id with spaces'],
    ['a quote', 'abc"def'],
  ])('replaces an incoming id that is %s', async (_name, incoming) => {
    const { server, out } = await start();
    const res = await request(`${server.url}/users/7`, { headers: { 'x-request-id': incoming } });
    expect(res.headers['x-request-id']).toMatch(UUID);
    const [access] = await out.waitForAccessLines(1);
    expect(access?.reqId).toBe(res.headers['x-request-id']);
    expect(out.raw).not.toContain(`"reqId":"${incoming}"`);
  });

  it('censors an incoming id that is itself a secret, in the log only', async () => {
    const { server, out } = await start();
    const res = await request(`${server.url}/users/7`, { headers: { 'x-request-id': '4111111111111111' } });
    expect(res.headers['x-request-id']).toBe('4111111111111111');
    const [access] = await out.waitForAccessLines(1);
    expect(access?.reqId).toBe('[REDACTED]');
    expect(out.raw).not.toContain('4111111111111111');
  });

  it('uses requestIdHeader', async () => {
    const { server, out } = await start({ requestIdHeader: 'X-Correlation-Id' });
    const res = await request(`${server.url}/users/7`, { headers: { 'x-correlation-id': 'corr-1' } });
    expect(res.headers['x-correlation-id']).toBe('corr-1');
    expect(res.headers['x-request-id']).toBeUndefined();
    const [access] = await out.waitForAccessLines(1);
    expect(access?.reqId).toBe('corr-1');
  });
});

describe('the access line', () => {
  it('has the fields documented in the README', async () => {
    const { server, out } = await start();
    await request(`${server.url}/users/7?expand=1`, { headers: { accept: 'application/json' } });
    const [line] = await out.waitForAccessLines(1);
    expect(Object.keys(line ?? {})).toEqual([
      'level',
      'time',
      'pid',
      'hostname',
      'reqId',
      'req',
      'res',
      'responseTime',
      'route',
      'msg',
    ]);
    expect(line?.level).toBe(30);
    expect(line?.msg).toBe('request completed');
    // headers: 'minimal' (the default) leaves out accept, host and connection.
    expect(line?.req).toEqual({
      method: 'GET',
      url: '/users/7?expand=1',
      headers: {},
      remoteAddress: '127.0.0.1',
      remotePort: expect.any(Number),
    });
    expect(line?.res?.statusCode).toBe(200);
    expect(line?.res?.headers).toEqual({ 'content-type': 'application/json; charset=utf-8', 'content-length': '10' });
    expect(typeof line?.responseTime).toBe('number');
    expect(line?.responseTime).toBeGreaterThanOrEqual(0);
    expect(line?.route).toBe('/users/:id');
    expect(line?.body).toBeUndefined();
  });

  it.each([
    [200, 30, 'request completed'],
    [204, 30, 'request completed'],
    [302, 30, 'request completed'],
    [400, 40, 'request completed'],
    [404, 40, 'request completed'],
    [429, 40, 'request completed'],
    [500, 50, 'request completed with status 500'],
    [503, 50, 'request completed with status 503'],
  ])('status %i is logged at level %i', async (status, level, msg) => {
    const { server, out } = await start();
    const res = await request(`${server.url}/status/${status}`);
    expect(res.status).toBe(status);
    const [line] = await out.waitForAccessLines(1);
    expect(line?.level).toBe(level);
    expect(line?.msg).toBe(msg);
    expect(line?.res?.statusCode).toBe(status);
    // A status the app chose is not an error: no stand-in error, no stack from inside pino-http.
    expect(line?.err).toBeUndefined();
    expect(out.raw).not.toContain('pino-http');
  });

  it('logs the route pattern of a mounted router, and "unmatched" for a 404', async () => {
    const { server, out } = await start({}, (app) => {
      const router = express.Router();
      router.get('/items/:itemId', (_req, res) => {
        res.json({});
      });
      app.use('/api/v1', router);
    });
    await request(`${server.url}/api/v1/items/99`);
    await request(`${server.url}/nowhere/at/all`);
    const lines = await out.waitForAccessLines(2);
    const byUrl = Object.fromEntries(lines.map((l) => [l.req?.url, l.route]));
    expect(byUrl).toEqual({ '/api/v1/items/99': '/api/v1/items/:itemId', '/nowhere/at/all': 'unmatched' });
  });

  it('honours level', async () => {
    const { server, out } = await start({ level: 'warn' });
    await request(`${server.url}/users/7`);
    await request(`${server.url}/status/404`);
    await out.waitForAccessLines(1);
    expect(out.lines().map((l: LogLine) => [l.level, l.res?.statusCode])).toEqual([[40, 404]]);
  });

  it('logs the parsed JSON body when logBody is on, and nothing for a non-JSON body', async () => {
    const { server, out } = await start({ logBody: true }, (app) => {
      app.post('/echo', (_req, res) => {
        res.status(201).end();
      });
    });
    await request(`${server.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ann', tags: ['a', 'b'], password: 'x' }),
    });
    await request(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    const lines = await out.waitForAccessLines(2);
    expect(lines[0]?.body).toEqual({ name: 'ann', tags: ['a', 'b'], password: '[REDACTED]' });
    expect(lines[1]?.body).toBeUndefined();
  });
});

describe('ignore list', () => {
  it('skips /health, /metrics and the dashboard stream by default, but still sets a request id', async () => {
    const { server, out } = await start();
    for (const path of ['/health', '/metrics', '/dashboard/api/stream', '/health?verbose=1']) {
      const res = await request(`${server.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers['x-request-id']).toMatch(UUID);
    }
    await request(`${server.url}/users/1`);
    const lines = await out.waitForAccessLines(1);
    expect(lines.map((l) => l.req?.url)).toEqual(['/users/1']);
  });

  it('replaces the defaults when given; an entry ending in /* matches the paths under it', async () => {
    const { server, out } = await start({ ignore: ['/internal/*'] });
    await request(`${server.url}/internal/ping`);
    await request(`${server.url}/health`);
    const lines = await out.waitForAccessLines(1);
    await request(`${server.url}/users/2`);
    await out.waitForAccessLines(2);
    expect(out.accessLines().map((l) => l.req?.url)).toEqual(['/health', '/users/2']);
    expect(lines.length).toBe(1);
  });
});

describe('headers', () => {
  const routes = (app: express.Express) => {
    app.get('/h', (_req, res) => {
      res.setHeader('x-frame-options', 'DENY');
      res.setHeader('x-cache', 'HIT');
      res.setHeader('set-cookie', ['sid=abc123secret; HttpOnly']);
      res.setHeader('x-session-token', 'tok-value-1');
      res.type('text/plain').send('hello');
    });
  };
  const sent = {
    'user-agent': 'client/2.0',
    referer: 'https://example.test/from?token=ref-secret-1',
    accept: 'text/plain',
    'x-trace': 'trace-1',
    authorization: 'Bearer abcdefghijklmnop',
    'x-auth-token': 'tok-2',
  };

  it("'minimal' (the default) keeps the chosen headers and shows each censored one as the censor", async () => {
    const { server, out } = await start({}, routes);
    await request(`${server.url}/h`, { headers: sent });
    const [line] = await out.waitForAccessLines(1);
    expect(line?.req?.headers).toEqual({
      'user-agent': 'client/2.0',
      referer: 'https://example.test/from?token=[REDACTED]',
      authorization: '[REDACTED]',
      'x-auth-token': '[REDACTED]',
    });
    expect(line?.res?.headers).toEqual({
      'content-type': 'text/plain; charset=utf-8',
      'content-length': '5',
      'x-cache': 'HIT',
      'set-cookie': '[REDACTED]',
      'x-session-token': '[REDACTED]',
    });
  });

  it("'all' logs every header, redacted", async () => {
    const { server, out, log } = await start({ headers: 'all' }, routes);
    const res = await request(`${server.url}/h`, { headers: sent });
    const [line] = await out.waitForAccessLines(1);
    expect(line?.req?.headers).toEqual({
      ...sent,
      referer: 'https://example.test/from?token=[REDACTED]',
      authorization: '[REDACTED]',
      'x-auth-token': '[REDACTED]',
      host: server.url.slice('http://'.length),
      connection: 'close',
    });
    expect(line?.res?.headers).toMatchObject({
      'x-powered-by': 'Express',
      'x-request-id': res.headers['x-request-id'],
      'x-frame-options': 'DENY',
      'x-cache': 'HIT',
      'set-cookie': '[REDACTED]',
      'x-session-token': '[REDACTED]',
      'content-type': 'text/plain; charset=utf-8',
      'content-length': '5',
    });
    expect(out.raw).not.toContain('abc123secret');
    expect(log.logger).toBeDefined();
  });
});

describe('redaction options', () => {
  it('applies extra pino redact paths and a custom censor', async () => {
    const { server, out } = await start(
      { redact: ['res.headers["x-internal"]'], censor: '<hidden>', headers: 'all' },
      (app) => {
        app.get('/r', (_req, res) => {
          res.setHeader('x-internal', 'internal-value');
          res.send('ok');
        });
      },
    );
    await request(`${server.url}/r?token=abcdef`, { headers: { cookie: 'a=b' } });
    const [line] = await out.waitForAccessLines(1);
    expect(line?.res?.headers['x-internal']).toBe('<hidden>');
    expect(line?.req?.headers.cookie).toBe('<hidden>');
    expect(line?.req?.url).toBe('/r?token=<hidden>');
    expect(out.raw).not.toContain('internal-value');
  });

  it('keeps req.log on ignored paths', async () => {
    const { server, out } = await start({}, (app) => {
      app.get('/health', (req, res) => {
        req.log.warn('health check slow');
        res.send('ok');
      });
    });
    const res = await request(`${server.url}/health`);
    expect(res.status).toBe(200);
    await waitFor(() => out.lines().length === 1);
    expect(out.lines()[0]).toMatchObject({ level: 40, msg: 'health check slow', reqId: res.headers['x-request-id'] });
    expect(out.accessLines()).toEqual([]);
  });
});

describe('sampling', () => {
  it('sampleRate 0 logs no success, but every 4xx and 5xx', async () => {
    const { server, out } = await start({ sampleRate: 0 });
    await request(`${server.url}/users/1`);
    await request(`${server.url}/status/201`);
    await request(`${server.url}/status/404`);
    await request(`${server.url}/status/500`);
    const lines = await out.waitForAccessLines(2);
    expect(lines.map((l) => l.res?.statusCode)).toEqual([404, 500]);
  });

  it('sampleRate 0.25 logs a success when the draw is below it', async () => {
    const draws = [0.1, 0.3, 0.24, 0.9];
    vi.spyOn(Math, 'random').mockImplementation(() => draws.shift() ?? 0.99);
    const { server, out } = await start({ sampleRate: 0.25 }, (app) => {
      app.get('/n/:n', (_req, res) => {
        res.send('ok');
      });
    });
    for (let n = 1; n <= 4; n++) await request(`${server.url}/n/${n}`);
    await waitFor(() => draws.length === 0);
    await request(`${server.url}/n/not-found`, { method: 'DELETE' });
    await out.waitForAccessLines(3);
    expect(out.accessLines().map((l) => l.req?.url)).toEqual(['/n/1', '/n/3', '/n/not-found']);
  });
});

describe('destinations and close()', () => {
  it('writes to a file path asynchronously; close() flushes and later lines are dropped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'perfstack-logger-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'nested', 'access.log');
    const log = accessLog({ destination: file });
    const server = await listen((req, res) => log(req, res, () => res.end('ok')));
    cleanups.push(() => server.close());
    for (let i = 0; i < 20; i++) await request(`${server.url}/file/${i}`);
    await log.close();
    await log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(20);
    expect(lines.map((l) => (JSON.parse(l) as LogLine).req?.url)).toEqual(
      Array.from({ length: 20 }, (_, i) => `/file/${i}`),
    );
    const after = await request(`${server.url}/after-close`);
    expect(after.status).toBe(200);
    expect(after.headers['x-request-id']).toMatch(UUID);
    expect(readFileSync(file, 'utf8').trimEnd().split('\n')).toHaveLength(20);
  });

  it('writes what is waiting on the periodic flush without close(), then later lines in order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'perfstack-logger-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'periodic.log');
    const log = accessLog({ destination: file });
    cleanups.push(() => log.close());
    const server = await listen((req, res) => log(req, res, () => res.end('ok')));
    cleanups.push(() => server.close());
    const read = () => (existsSync(file) ? readFileSync(file, 'utf8') : '');
    await request(`${server.url}/one`);
    // One line (far below 4 KB) waits for the periodic flush, and is written by it.
    await waitFor(() => read().includes('"/one"'), 3000);
    // Past 4 KB, lines are handed on in batches; the last ones on close().
    for (let i = 0; i < 12; i++) await request(`${server.url}/batch/${i}/${'x'.repeat(400)}`);
    await waitFor(() => read().includes('/batch/0/'), 3000);
    await log.close();
    const urls = read()
      .trimEnd()
      .split('\n')
      .map((l) => (JSON.parse(l) as LogLine).req?.url);
    expect(urls).toEqual(['/one', ...Array.from({ length: 12 }, (_, i) => `/batch/${i}/${'x'.repeat(400)}`)]);
  });

  it('writes the lines still waiting when the process exits without close()', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'perfstack-logger-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'exit.log');
    const script = [
      "import { accessLog } from '@perfstack/logger';",
      `const log = accessLog({ destination: ${JSON.stringify(file)} });`,
      // Once the file is open (as in a server that has run a while): three lines, then exit.
      'setTimeout(() => {',
      "  for (let i = 0; i < 3; i++) log.logger.info({ n: i }, 'before exit');",
      '  process.exit(0);',
      '}, 300);',
    ].join('\n');
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { n: number }).n)).toEqual([0, 1, 2]);
  });

  it('writes to a file descriptor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'perfstack-logger-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'fd.log');
    const { openSync } = await import('node:fs');
    const fd = openSync(file, 'a');
    const log = accessLog({ destination: fd });
    const server = await listen((req, res) => log(req, res, () => res.end('ok')));
    cleanups.push(() => server.close());
    await request(`${server.url}/fd`);
    await log.close();
    const [line] = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect((JSON.parse(line ?? '{}') as LogLine).req?.url).toBe('/fd');
  });

  it('does not end a stream it was given', async () => {
    const out = new Capture();
    const log = accessLog({ destination: out });
    await log.close();
    expect(out.writableEnded).toBe(false);
    expect(out.destroyed).toBe(false);
  });

  it('exposes the pino logger', async () => {
    const out = new Capture();
    const log = accessLog({ destination: out });
    cleanups.push(() => log.close());
    log.logger.info({ apiKey: 'k-123456789' }, 'from the root logger');
    expect(out.lines()).toEqual([
      expect.objectContaining({ level: 30, apiKey: '[REDACTED]', msg: 'from the root logger' }),
    ]);
  });
});
