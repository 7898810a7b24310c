/**
 * The dashboard's actions: cache invalidation, rate-limit key reset, breaker reset.
 * Each validates its JSON body strictly (unknown members are refused) and calls the
 * layer's data contract; the caller has already passed the access and CSRF checks.
 */
import { HttpProblemError } from '@perfstack/core';
import type { ResolvedSources } from './snapshot.js';

/** An action's result body. */
export type ActionResult = Readonly<Record<string, unknown>>;

/** The action routes, by path under the dashboard. */
export const ACTIONS = {
  '/api/cache/invalidate': invalidateCache,
  '/api/rate-limit/reset': resetRateLimit,
  '/api/breakers/reset': resetBreakers,
} as const satisfies Record<string, (sources: ResolvedSources, body: unknown) => Promise<ActionResult>>;

const MAX_TEXT = 2048;
const MAX_TAGS = 100;

function bad(detail: string): HttpProblemError {
  return new HttpProblemError({ code: 'BAD_REQUEST', detail });
}

function notConfigured(layer: string): HttpProblemError {
  return new HttpProblemError({ code: 'NOT_FOUND', detail: `No ${layer} is configured on this dashboard.` });
}

function record(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('The body must be a JSON object.');
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw bad(`Unknown member "${key.slice(0, 40)}"; expected ${allowed.join(' or ')}.`);
  }
  return body as Record<string, unknown>;
}

function text(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TEXT) {
    throw bad(`"${name}" must be a non-empty string of at most ${MAX_TEXT} characters.`);
  }
  return value;
}

/** `POST /api/cache/invalidate` with exactly one of `{ tags }`, `{ key }`, `{ prefix }`. */
async function invalidateCache(sources: ResolvedSources, body: unknown): Promise<ActionResult> {
  const cache = sources.cache;
  if (cache === undefined) throw notConfigured('cache');
  const b = record(body, ['tags', 'key', 'prefix']);
  const given = Object.keys(b).filter((k) => b[k] !== undefined);
  if (given.length !== 1) throw bad('Send exactly one of "tags", "key" or "prefix".');
  let selector: { tags: string[] } | { key: string } | { prefix: string };
  if (b.tags !== undefined) {
    const tags = b.tags;
    if (!Array.isArray(tags) || tags.length === 0 || tags.length > MAX_TAGS) {
      throw bad(`"tags" must be an array of 1 to ${MAX_TAGS} tags.`);
    }
    selector = { tags: tags.map((t, i) => text(t, `tags[${i}]`)) };
  } else if (b.key !== undefined) selector = { key: text(b.key, 'key') };
  else selector = { prefix: text(b.prefix, 'prefix') };
  const invalidated = await cache.invalidate(selector);
  return { ok: true, invalidated, ...selector };
}

/** `POST /api/rate-limit/reset` with `{ key }`. */
async function resetRateLimit(sources: ResolvedSources, body: unknown): Promise<ActionResult> {
  const limiter = sources.rateLimit;
  if (limiter === undefined) throw notConfigured('rate limiter');
  const b = record(body, ['key']);
  const key = text(b.key, 'key');
  await limiter.resetKey(key);
  return { ok: true, key };
}

/** `POST /api/breakers/reset` with `{ name }` for one breaker or `{}` for all. */
async function resetBreakers(sources: ResolvedSources, body: unknown): Promise<ActionResult> {
  const breakers = sources.circuitBreaker;
  if (breakers === undefined) throw notConfigured('circuit breaker');
  const b = record(body, ['name']);
  const name = b.name === undefined ? undefined : text(b.name, 'name');
  if (name !== undefined && !breakers.snapshot().breakers.some((x) => x.name === name)) {
    throw new HttpProblemError({ code: 'NOT_FOUND', detail: 'No breaker has that name.' });
  }
  breakers.reset(name);
  return { ok: true, reset: name ?? 'all', breakers: breakers.snapshot().breakers };
}
