import { execFile } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import {
  declarableValue,
  declareShapeKeys,
  KNOWN_KEYS,
  LEARN_FIRST,
  MAX_KEYS,
  ShapeWarmer,
  shapeWarmerOf,
  warmShapes,
} from '@perfstack/core';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const fixture = fileURLToPath(new URL('./fixtures/shape-maps.mjs', import.meta.url));

interface ShapeRun {
  sameReq: boolean;
  sameRes: boolean;
  fast: boolean;
}
/** Runs the fixture in its own V8 (natives syntax on) with `env`; the runs of a test go in parallel. */
function shapeRun(env: Record<string, string>): Promise<ShapeRun> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--allow-natives-syntax', fixture],
      { env: { ...process.env, LEARN: '40', ...env }, encoding: 'utf8', timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(error);
        else if (stderr !== '') reject(new Error(stderr));
        else resolve(JSON.parse(stdout) as ShapeRun);
      },
    );
  });
}

describe('declarableValue', () => {
  class Base {
    get computed(): number {
      return 1;
    }
  }
  Object.assign(Base.prototype, { statusCode: 200, method: () => 1, shared: { a: 1 }, nothing: null });
  const proto = Object.create(Base.prototype) as object;
  const own = Symbol('own');

  it.each([
    ['an accessor on the chain', 'computed', false],
    ['an inherited primitive', 'statusCode', { value: 200 }],
    ['an inherited null', 'nothing', { value: null }],
    ['an inherited function', 'method', false],
    ['an inherited object', 'shared', false],
    ['an absent Symbol', own, { value: undefined }],
    ['an absent known key', 'baseUrl', { value: undefined }],
    ['an absent well-known middleware key', 'user', { value: undefined }],
    ['an absent app key', 'tenant', false],
  ] as const)('%s', (_name, key, expected) => {
    expect(declarableValue(proto, key)).toEqual(expected);
  });

  it('knows Express, its router, pino-http, the rate limiter and the common middleware, and nothing an app names', () => {
    for (const key of ['next', 'baseUrl', 'originalUrl', '_parsedUrl', 'params', 'route', 'locals', 'id', 'log']) {
      expect(KNOWN_KEYS.has(key)).toBe(true);
    }
    const middleware = {
      'body-parser': ['body', '_body'],
      'cookie-parser': ['cookies', 'signedCookies', 'secret'],
      'express-session': ['session', 'sessionID', 'sessionStore'],
      passport: ['user', '_passport', 'login', 'logIn', 'logout', 'logOut', 'isAuthenticated', 'isUnauthenticated'],
      multer: ['file', 'files'],
    };
    for (const keys of Object.values(middleware)) for (const key of keys) expect(KNOWN_KEYS.has(key)).toBe(true);
    // `query` is a getter on Express's prototype; the rest are an app's own names.
    for (const key of ['query', 'tenant', 'appUser', 'account']) expect(KNOWN_KEYS.has(key)).toBe(false);
  });
});

describe('ShapeWarmer', () => {
  it('declares a learnt key only where the object does not already own it', () => {
    const warmer = new ShapeWarmer();
    warmer.request.native = Object.prototype;
    warmer.request.add('id', undefined);
    warmer.request.add('_eventsCount', 0);
    const mine = { _eventsCount: 3 };
    warmer.request.declare(mine);
    expect(mine).toEqual({ _eventsCount: 3, id: undefined });
  });

  it(`keeps at most ${MAX_KEYS} keys per object`, () => {
    const warmer = new ShapeWarmer();
    for (let i = 0; i < MAX_KEYS + 10; i++) warmer.response.add(Symbol(String(i)), undefined);
    expect(warmer.response.keys).toHaveLength(MAX_KEYS);
  });
});

describe('warmShapes on Express 5', () => {
  it('learns what Express and the app add, never hides a getter, and changes no answer', async () => {
    const app = express();
    app.use((req, res, next) => {
      warmShapes(req, res);
      next();
    });
    app.get('/items/:id', (req, res) => {
      res.status(req.params.id === 'new' ? 201 : 200).json({
        id: req.params.id,
        query: req.query,
        ip: req.ip,
        route: req.route?.path,
        baseUrl: req.baseUrl,
        originalUrl: req.originalUrl,
        locals: typeof res.locals,
        ownQuery: Object.hasOwn(req, 'query'),
      });
    });
    server = await listen(http.createServer(app));
    const expected = (id: string, x: string) => ({
      id,
      query: { x },
      ip: '127.0.0.1',
      route: '/items/:id',
      baseUrl: '',
      originalUrl: `/items/${id}?x=${x}`,
      locals: 'object',
      ownQuery: false,
    });
    // The first request installs the warmer; the next LEARN_FIRST are watched; the rest are declared.
    for (let i = 0; i < LEARN_FIRST + 8; i++) {
      const res = await request(`${server.url}/items/${i}?x=${i}`);
      expect(res.status).toBe(200);
      expect(res.json()).toEqual(expected(String(i), String(i)));
    }
    const created = await request(`${server.url}/items/new?x=1`);
    expect(created.status).toBe(201);
    expect(created.json()).toEqual(expected('new', '1'));
    const missing = await request(`${server.url}/nowhere`);
    expect(missing.status).toBe(404);
    expect(missing.headers['content-type']).toBe('text/html; charset=utf-8');

    const raw = server.server;
    const warmer = shapeWarmerOf(raw) as ShapeWarmer;
    expect(raw.listeners('request')[0]).toBe(warmer.listener);
    expect(raw.listenerCount('request')).toBe(2);
    expect(warmer.request.keys).toEqual(expect.arrayContaining(['next', 'baseUrl', 'originalUrl', 'params', 'route']));
    expect(warmer.request.keys).not.toContain('query');
    expect(warmer.request.keys).not.toContain('res');
    const statusAt = warmer.response.keys.indexOf('statusCode');
    expect(statusAt).toBeGreaterThanOrEqual(0);
    expect(warmer.response.values[statusAt]).toBe(200);
    expect(warmer.response.keys).toContain('locals');
  });

  it('gives requests of one route one hidden class (V8 asked directly; without it, none share one)', async () => {
    const [off, on, appKey, declared] = await Promise.all([
      shapeRun({ WARM: '0' }),
      shapeRun({ WARM: '1' }),
      // An app's own key is left alone (its requests diverge again) unless the app declares it.
      shapeRun({ WARM: '1', APP_KEY: '1' }),
      shapeRun({ WARM: '1', APP_KEY: '1', DECLARE: '1' }),
    ]);
    expect(off).toEqual({ sameReq: false, sameRes: false, fast: true });
    expect(on).toEqual({ sameReq: true, sameRes: true, fast: true });
    expect(appKey).toEqual({ sameReq: false, sameRes: true, fast: true });
    expect(declared).toEqual({ sameReq: true, sameRes: true, fast: true });
  }, 90_000);

  it('keeps one hidden class with the middleware real apps run (body parsers, cookies, session, user)', async () => {
    // express.json, express.urlencoded, cookie-parser, express-session's and passport's keys:
    // all well known, so declared without the app saying anything. The third run adds 20
    // declared keys of the app's own: about 36 keys on the request, under MAX_KEYS (the old
    // cap of 24 lost the class here), and still a fast object.
    const [off, on, extra] = await Promise.all([
      shapeRun({ REAL: '1', WARM: '0' }),
      shapeRun({ REAL: '1', WARM: '1' }),
      shapeRun({ REAL: '1', WARM: '1', EXTRA: '20' }),
    ]);
    expect(off).toEqual({ sameReq: false, sameRes: false, fast: true });
    expect(on).toEqual({ sameReq: true, sameRes: true, fast: true });
    expect(MAX_KEYS).toBe(40);
    expect(extra).toEqual({ sameReq: true, sameRes: true, fast: true });
  }, 90_000);

  it('declareShapeKeys adds an app key to the known ones, and refuses what is not a name', () => {
    expect(declarableValue(null, 'tenantOfThisTest')).toBe(false);
    declareShapeKeys('tenantOfThisTest');
    expect(KNOWN_KEYS.has('tenantOfThisTest')).toBe(true);
    expect(declarableValue(null, 'tenantOfThisTest')).toEqual({ value: undefined });
    expect(() => declareShapeKeys('')).toThrow(
      new TypeError('@perfstack/core: declareShapeKeys() takes property names, got '),
    );
    expect(() => declareShapeKeys(42 as never)).toThrow(
      new TypeError('@perfstack/core: declareShapeKeys() takes property names, got 42'),
    );
  });
});

describe('warmShapes changes no read, whatever the app and the server', () => {
  /** Express middleware that calls warmShapes, as every perfstack layer does first. */
  const warm: express.RequestHandler = (req, res, next) => {
    warmShapes(req, res);
    next();
  };

  it('never writes over a custom request class: a getter-only `id` there is left alone', async () => {
    class TracedRequest extends http.IncomingMessage {
      // \`string\` to match the \`id\` that pino-http declares on IncomingMessage; unset without an x-trace header.
      override get id(): string {
        return this.headers['x-trace'] as string;
      }
    }
    const app = express();
    app.use(warm);
    app.use((req, _res, next) => {
      // What pino-http does after the swap (Express's prototype has no `id`, so this is allowed).
      (req as unknown as { id: string }).id = 'assigned';
      next();
    });
    app.get('/x', (req, res) => {
      res.json({ id: (req as unknown as { id: string }).id });
    });
    server = await listen(http.createServer({ IncomingMessage: TracedRequest }, app));
    for (let i = 0; i < LEARN_FIRST + 8; i++) {
      const res = await request(`${server.url}/x`);
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ id: 'assigned' });
    }
    const warmer = shapeWarmerOf(server.server) as ShapeWarmer;
    expect(warmer.request.native).toBe(TracedRequest.prototype);
    expect(warmer.request.keys).not.toContain('id');
    expect(warmer.request.keys).toContain('baseUrl');
  });

  it("keeps each app's own prototype values and getters when two apps share one server", async () => {
    const a = express();
    Object.defineProperty(a.request, 'id', {
      configurable: true,
      get(this: http.IncomingMessage) {
        return this.headers['x-id'];
      },
    });
    Object.assign(a.response, { tier: 'gold' });
    a.use(warm);
    a.get('/a', (req, res) => {
      res.json({ id: (req as unknown as { id: unknown }).id, tier: (res as unknown as { tier: unknown }).tier });
    });
    const b = express();
    Object.assign(b.response, { tier: 'free' });
    b.use(warm);
    b.use((req, res, next) => {
      (req as unknown as { id: string }).id = 'b-id';
      (res as unknown as { tier: string }).tier = 'set-by-b';
      next();
    });
    b.get('/b', (req, res) => {
      res.json({ id: (req as unknown as { id: unknown }).id, tier: (res as unknown as { tier: unknown }).tier });
    });
    server = await listen(http.createServer((req, res) => (req.url?.startsWith('/b') ? b(req, res) : a(req, res))));
    for (let i = 0; i < LEARN_FIRST + 8; i++) {
      const fromA = await request(`${server.url}/a`, { headers: { 'x-id': `a-${i}` } });
      expect(fromA.json()).toEqual({ id: `a-${i}`, tier: 'gold' });
      const fromB = await request(`${server.url}/b`);
      expect(fromB.json()).toEqual({ id: 'b-id', tier: 'set-by-b' });
    }
    const warmer = shapeWarmerOf(server.server) as ShapeWarmer;
    expect(warmer.request.swapped).toEqual([a.request, b.request]);
    expect(warmer.request.keys).not.toContain('id');
    expect(warmer.response.keys).not.toContain('tier');
    expect(warmer.request.keys).toContain('baseUrl');
  });

  it("a sub-app's response default never reaches the main app's requests", async () => {
    const app = express();
    const sub = express();
    Object.assign(app.response, { tier: 'main' });
    Object.assign(sub.response, { tier: 'sub' });
    app.use(warm);
    sub.use(warm);
    sub.get('/s', (_req, res) => {
      (res as unknown as { tier: string }).tier = 'changed-in-sub';
      res.json({ tier: (res as unknown as { tier: unknown }).tier });
    });
    app.use('/sub', sub);
    app.get('/m', (_req, res) => {
      res.json({ tier: (res as unknown as { tier: unknown }).tier });
    });
    server = await listen(app);
    for (let i = 0; i < LEARN_FIRST + 8; i++) {
      expect((await request(`${server.url}/sub/s`)).json()).toEqual({ tier: 'changed-in-sub' });
      expect((await request(`${server.url}/m`)).json()).toEqual({ tier: 'main' });
    }
  });

  it('installs nothing for a custom request class that nothing swaps', async () => {
    class MyRequest extends http.IncomingMessage {}
    server = await listen(
      http.createServer({ IncomingMessage: MyRequest }, (req, res) => {
        warmShapes(req, res);
        res.end('ok');
      }),
    );
    expect((await request(`${server.url}/`)).text).toBe('ok');
    expect(shapeWarmerOf(server.server)).toBeUndefined();
    expect(server.server.listenerCount('request')).toBe(1);
  });
});

describe('warmShapes where nothing swaps the prototype', () => {
  it('installs nothing on a node:http server', async () => {
    server = await listen(
      http.createServer((req, res) => {
        warmShapes(req, res);
        res.end('ok');
      }),
    );
    for (let i = 0; i < 3; i++) expect((await request(`${server.url}/`)).text).toBe('ok');
    const raw = server.server;
    expect(shapeWarmerOf(raw)).toBeUndefined();
    expect(raw.listenerCount('request')).toBe(1);
  });
});
