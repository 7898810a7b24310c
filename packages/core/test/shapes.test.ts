import { spawnSync } from 'node:child_process';
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
    ['an absent app key', 'user', false],
  ] as const)('%s', (_name, key, expected) => {
    expect(declarableValue(proto, key)).toEqual(expected);
  });

  it('knows Express, its router, pino-http and the rate limiter, and nothing an app names', () => {
    for (const key of ['next', 'baseUrl', 'originalUrl', '_parsedUrl', 'params', 'route', 'locals', 'id', 'log']) {
      expect(KNOWN_KEYS.has(key)).toBe(true);
    }
    for (const key of ['user', 'session', 'body', 'query', 'file']) expect(KNOWN_KEYS.has(key)).toBe(false);
  });
});

describe('ShapeWarmer', () => {
  it('declares a learnt key only where the object does not already own it', () => {
    const warmer = new ShapeWarmer();
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
    app.use((req, _res, next) => {
      warmShapes(req);
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

  it('gives requests of one route one hidden class (V8 asked directly; without it, none share one)', () => {
    const run = (warm: string, extra: Record<string, string> = {}) => {
      const child = spawnSync(process.execPath, ['--allow-natives-syntax', fixture], {
        env: { ...process.env, WARM: warm, LEARN: '40', ...extra },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(child.stderr).toBe('');
      return JSON.parse(child.stdout) as { sameReq: boolean; sameRes: boolean };
    };
    expect(run('0')).toEqual({ sameReq: false, sameRes: false });
    expect(run('1')).toEqual({ sameReq: true, sameRes: true });
    // An app's own key is left alone (its requests diverge again) unless the app declares it.
    expect(run('1', { APP_KEY: '1' })).toEqual({ sameReq: false, sameRes: true });
    expect(run('1', { APP_KEY: '1', DECLARE: '1' })).toEqual({ sameReq: true, sameRes: true });
  });

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

describe('warmShapes where nothing swaps the prototype', () => {
  it('installs nothing on a node:http server', async () => {
    server = await listen(
      http.createServer((req, res) => {
        warmShapes(req);
        res.end('ok');
      }),
    );
    for (let i = 0; i < 3; i++) expect((await request(`${server.url}/`)).text).toBe('ok');
    const raw = server.server;
    expect(shapeWarmerOf(raw)).toBeUndefined();
    expect(raw.listenerCount('request')).toBe(1);
  });
});
