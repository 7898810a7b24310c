/**
 * A small real app for the dashboard's tests: Express 5, helmet 8's default CSP on every
 * response, a few traffic routes that feed the fake layers, and the dashboard mounted at
 * `/dashboard`.
 */
import type { Server } from 'node:http';
import { type DashboardOptions, dashboard } from '@perfstack/dashboard';
import express from 'express';
import { fakeSources } from './fakes.js';

/**
 * helmet 8.3.0's default `Content-Security-Policy`, as `helmet()` sends it
 * (node_modules/.pnpm/helmet@8.3.0/node_modules/helmet/index.cjs, getDefaultDirectives).
 */
export const HELMET_CSP =
  "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';" +
  "img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';" +
  "style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests";

/** Builds the app; `options` are passed to `dashboard()` with the fake sources. */
export function buildApp(options: Omit<DashboardOptions, 'sources'> = {}) {
  const sources = fakeSources();
  const board = dashboard({ ...options, sources });
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', HELMET_CSP);
    next();
  });
  app.use('/dashboard', board);
  app.get('/api/items/:id', (req, res) => {
    const started = performance.now();
    const key = req.ip ?? 'unknown';
    if (!sources.rateLimit.hit(key)) {
      res.status(429).json({ code: 'RATE_LIMITED' });
      return;
    }
    const cache = sources.cache.lookup(req.path, ['items']);
    const ms = 5 + (Number(req.params.id) % 40);
    res.json({ id: req.params.id, cache });
    sources.timing.record({
      method: 'GET',
      route: '/api/items/:id',
      status: 200,
      ms: ms + (performance.now() - started),
      cache,
    });
  });
  app.get('/api/flaky', (_req, res) => {
    if (sources.circuitBreaker.isOpen('GET /api/flaky')) {
      res.status(503).json({ code: 'CIRCUIT_OPEN' });
      sources.timing.record({ method: 'GET', route: '/api/flaky', status: 503, ms: 1 });
      return;
    }
    sources.circuitBreaker.result('GET /api/flaky', false);
    res.status(500).json({ error: 'boom' });
    sources.timing.record({ method: 'GET', route: '/api/flaky', status: 500, ms: 120 });
  });
  app.post('/upload', (_req, res) => {
    sources.sizeLimit.rejected.body = (sources.sizeLimit.rejected.body ?? 0) + 1;
    res.status(413).json({ code: 'PAYLOAD_TOO_LARGE' });
  });
  return { app, board, sources };
}

/** Closes a server and the dashboard. */
export async function closeAll(server: { close(): Promise<void> } | undefined, board: { close(): Promise<void> }) {
  await board.close();
  await server?.close();
}

export type { Server };
