/**
 * The peer libraries, configured as their READMEs show, for the hand-assembled Express
 * stack and the one-peer-alone scenarios. Every limit matches lib/fixture.js.
 */
import apicache from 'apicache';
import cors from 'cors';
import express from 'express';
import promBundle from 'express-prom-bundle';
import { rateLimit } from 'express-rate-limit';
import helmet from 'helmet';
import CircuitBreaker from 'opossum';
import pino from 'pino';
import { pinoHttp } from 'pino-http';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { BODY_LIMIT, CACHED_PATH, logFile, RATE_LIMIT, RATE_WINDOW_MS, redisPrefix, redisUrl } from './fixture.js';

/** express-prom-bundle: request duration histogram with method and path labels, /metrics. */
export function promMiddleware() {
  return promBundle({ includeMethod: true, includePath: true, includeStatusCode: true, metricsPath: '/metrics' });
}

/**
 * apicache as the global layer of the stack: every response is wrapped, only
 * GET /api/cached is stored (the toggle), so /api/products is the uncached route.
 */
export function apicacheGlobal() {
  const cache = apicache.newInstance({ defaultDuration: '5 minutes' });
  return cache.middleware('5 minutes', (req) => req.path === CACHED_PATH);
}

/** apicache on one route, as its README shows. */
export function apicacheRoute() {
  const cache = apicache.newInstance({ defaultDuration: '5 minutes' });
  return cache.middleware('5 minutes');
}

/** express.json with the shared limit (413 above it). */
export function jsonParser() {
  return express.json({ limit: BODY_LIMIT });
}

/** pino-http with redaction of the two credential headers, to a file (sonic-boom, async). */
export function pinoHttpMiddleware() {
  const logger = pino(
    { level: 'info', redact: ['req.headers.authorization', 'req.headers.cookie'] },
    pino.destination({ dest: logFile(), sync: false }),
  );
  return pinoHttp({ logger });
}

export const helmetMiddleware = () => helmet();
export const corsMiddleware = () => cors();

/**
 * express-rate-limit, IETF draft-8 headers, in memory or with rate-limit-redis over a
 * node-redis client (`sendCommand`, as rate-limit-redis's README shows).
 */
export async function expressRateLimit({ redis = false } = {}) {
  const options = {
    windowMs: RATE_WINDOW_MS,
    limit: RATE_LIMIT,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
  };
  if (redis) {
    const [{ RedisStore }, { createClient }] = await Promise.all([import('rate-limit-redis'), import('redis')]);
    const client = createClient({ url: redisUrl() });
    client.on('error', (error) => process.stderr.write(`redis: ${error.message}\n`));
    await client.connect();
    options.store = new RedisStore({
      sendCommand: (...args) => client.sendCommand(args),
      prefix: `${redisPrefix()}erl:`,
    });
  }
  return rateLimit(options);
}

/** rate-limiter-flexible in memory, as the middleware in its README (429 on reject). */
export function rateLimiterFlexible() {
  const limiter = new RateLimiterMemory({ points: RATE_LIMIT, duration: RATE_WINDOW_MS / 1000 });
  return function rateLimiterFlexibleMiddleware(req, res, next) {
    limiter.consume(req.ip).then(
      () => next(),
      (rejection) => {
        res.set('Retry-After', String(Math.ceil((rejection?.msBeforeNext ?? 1000) / 1000)));
        res.status(429).send('Too Many Requests');
      },
    );
  };
}

/**
 * opossum guarding the rest of the chain: one breaker whose action runs `next()` and
 * settles when the response finishes (a 5xx counts as a failure), with a 3 s timeout.
 */
export function opossumMiddleware() {
  const action = (_req, res, next) =>
    new Promise((resolve, reject) => {
      res.once('finish', () => (res.statusCode >= 500 ? reject(new Error(`status ${res.statusCode}`)) : resolve()));
      next();
    });
  const breaker = new CircuitBreaker(action, { timeout: 3000, errorThresholdPercentage: 50, resetTimeout: 30_000 });
  return function opossumGuard(req, res, next) {
    breaker.fire(req, res, next).catch(() => {
      if (!res.headersSent) res.status(503).json({ error: 'service unavailable' });
    });
  };
}

/** The hand-assembled Express peer stack, in the order. */
export async function peerStack({ redis = false } = {}) {
  return [
    promMiddleware(),
    apicacheGlobal(),
    jsonParser(),
    pinoHttpMiddleware(),
    helmetMiddleware(),
    corsMiddleware(),
    await expressRateLimit({ redis }),
    opossumMiddleware(),
  ];
}
