/** The route matcher behind learned keys: path-to-regexp patterns, Express 4 forms, bounds. */

import type http from 'node:http';
import { circuitBreaker } from '@perfstack/circuit-breaker';
import { OnceLogger, setRoute, withMiddleware } from '@perfstack/core';
import express4 from 'express4';
import { describe, expect, it } from 'vitest';
import { listen, request } from '../../../test/helpers/http.js';
import { RouteMatcher } from '../src/route-keys.js';

function matcher(max = 100) {
  const warnings: string[] = [];
  const log = new OnceLogger({ warn: (m) => warnings.push(m), error: (m) => warnings.push(m) });
  return { m: new RouteMatcher(max, log), warnings };
}

describe('RouteMatcher', () => {
  it('matches parameters, wildcards, optional groups, trailing slashes and case like Express', () => {
    const { m } = matcher();
    for (const p of ['/users/:id', '/users/me', '/files/*path', '/docs{/:page}', '/a/:x/b/:y'])
      expect(m.learn(p)).toBe(true);
    expect(m.match('/users/42')).toBe('/users/:id');
    expect(m.match('/users/me')).toBe('/users/me');
    expect(m.match('/Users/ME/')).toBe('/users/me');
    expect(m.match('/users/42/')).toBe('/users/:id');
    expect(m.match('/files/a/b/c.txt')).toBe('/files/*path');
    expect(m.match('/docs')).toBe('/docs{/:page}');
    expect(m.match('/docs/intro')).toBe('/docs{/:page}');
    expect(m.match('/a/1/b/2')).toBe('/a/:x/b/:y');
    expect(m.match('/users/42/orders')).toBeUndefined();
  });

  it('rewrites Express 4 forms (optional :id?, bare *)', () => {
    const { m } = matcher();
    expect(m.learn('/items/:id?')).toBe(true);
    expect(m.learn('/assets/*')).toBe(true);
    expect(m.match('/items')).toBe('/items/:id?');
    expect(m.match('/items/9')).toBe('/items/:id?');
    expect(m.match('/assets/css/site.css')).toBe('/assets/*');
  });

  it('a negative answer is re-checked once a new pattern is learned', () => {
    const { m } = matcher();
    expect(m.match('/late/1')).toBeUndefined();
    m.learn('/late/:id');
    expect(m.match('/late/1')).toBe('/late/:id');
  });

  it('refuses RegExp routes and patterns over maxRoutes, logging each once', () => {
    const { m, warnings } = matcher(2);
    expect(m.learn('/^\\/re(?:\\/)?$/i')).toBe(false);
    expect(m.learn('/^\\/other$/i')).toBe(false);
    expect(m.learn('/a')).toBe(true);
    expect(m.learn('/b/:id')).toBe(true);
    expect(m.learn('/c')).toBe(false);
    expect(m.size).toBe(2);
    expect(warnings.map((w) => w.split(':')[0])).toEqual(['CB_ROUTE_NOT_LEARNABLE', 'CB_TOO_MANY_ROUTES']);
  });

  it('keeps at most 1024 path answers and still answers after evictions', () => {
    const { m } = matcher();
    m.learn('/p/:id');
    for (let i = 0; i < 5000; i++) expect(m.match(`/p/${i}`)).toBe('/p/:id');
    expect(m.match('/p/1')).toBe('/p/:id');
  });
});

describe('learning over HTTP', () => {
  it('Express 4: keys `:id?` routes by their pattern from the first request', async () => {
    const breaker = circuitBreaker({ failureThreshold: 1, overload: false });
    const app = express4();
    app.use(breaker);
    app.get('/legacy/:id?', (_req, res) => {
      res.status(500).end();
    });
    const server = await listen(app as unknown as http.RequestListener);
    try {
      expect((await request(`${server.url}/legacy/1`)).status).toBe(500);
      expect((await request(`${server.url}/legacy`)).status).toBe(503);
      expect((await request(`${server.url}/legacy/2`)).status).toBe(503);
      expect(
        breaker
          .snapshot()
          .breakers.map((b) => b.name)
          .sort(),
      ).toEqual(['GET /legacy/:id?']);
    } finally {
      await server.close();
      await breaker.close();
    }
  });

  it('still learns a route named late (setRoute in a node:http handler) after a flood of unroutable requests', async () => {
    const breaker = circuitBreaker({ overload: false });
    const server = await listen(
      withMiddleware(breaker, (req, res) => {
        if (req.url?.startsWith('/late/')) {
          setRoute(req, '/late/:id');
          res.end('late');
          return;
        }
        res.statusCode = 404;
        res.end();
      }),
    );
    const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 130; i++) expect((await request(`${server.url}/nothing/${i}`, { agent })).status).toBe(404);
      for (let i = 0; i < 40; i++) await request(`${server.url}/late/${i}`, { agent });
      expect(breaker.snapshot().breakers.map((b) => b.name)).toEqual(['GET /late/:id']);
    } finally {
      agent.destroy();
      await server.close();
      await breaker.close();
    }
  });
});
