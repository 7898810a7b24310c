/**
 * Options: every bad value fails at construction with a TypeError/RangeError naming the
 * option; defaults are express-rate-limit's names with perfstack's defaults.
 */
import { createRegistry } from '@perfstack/core';
import { type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
import { describe, expect, it } from 'vitest';
import { memoryLogger } from './support.js';

const BAD: ReadonlyArray<readonly [string, unknown, typeof TypeError | typeof RangeError, RegExp]> = [
  ['limit', 0, RangeError, /option "limit" must be an integer from 1/],
  ['limit', 1.5, TypeError, /option "limit"/],
  ['limit', '10', TypeError, /option "limit"/],
  ['limit', () => 5, TypeError, /option "limit"/],
  ['windowMs', -1, RangeError, /option "windowMs"/],
  ['windowMs', 'soon', TypeError, /option "windowMs"/],
  ['window', '0s', RangeError, /option "window"/],
  ['algorithm', 'leaky-bucket', RangeError, /option "algorithm" must be one of "fixed-window"/],
  ['keyGenerator', 'ip', TypeError, /option "keyGenerator" must be a function/],
  ['skip', true, TypeError, /option "skip" must be a function/],
  ['cost', -1, RangeError, /option "cost"/],
  ['cost', 101, RangeError, /option "cost" must be an integer from 0 to 100/],
  ['ipv6Subnet', 16, RangeError, /option "ipv6Subnet" must be an integer from 32 to 64/],
  ['ipv6Subnet', true, TypeError, /option "ipv6Subnet"/],
  ['trustProxy', -1, TypeError, /option "trustProxy"/],
  ['trustProxy', 'not-an-ip', TypeError, /option "trustProxy"/],
  ['trustProxy', {}, TypeError, /option "trustProxy"/],
  ['store', 'postgres', RangeError, /option "store" must be one of "memory", "redis"/],
  ['store', 'redis', TypeError, /option "store" is "redis" but no "redis"/],
  ['redis', 42, TypeError, /option "redis"/],
  ['redis', 'http://localhost', TypeError, /option "redis"/],
  ['prefix', 'a{b}', RangeError, /option "prefix"/],
  ['failOpen', 'yes', TypeError, /option "failOpen" must be a boolean/],
  ['maxKeys', 0, RangeError, /option "maxKeys"/],
  ['maxHeldKeys', 0, RangeError, /option "maxHeldKeys"/],
  ['fallbackLimit', 'half', RangeError, /option "fallbackLimit"/],
  ['storeWait', 'soon', TypeError, /option "storeWait"/],
  ['headers', 'draft-9', RangeError, /option "headers" must be one of "draft-6", "draft-7", "draft-8"/],
  ['standardHeaders', 7, TypeError, /option "standardHeaders"/],
  ['legacyHeaders', 1, TypeError, /option "legacyHeaders"/],
  ['handler', {}, TypeError, /option "handler" must be a function/],
  ['message', 429, TypeError, /option "message"/],
  ['requestPropertyName', '', RangeError, /option "requestPropertyName"/],
  ['validate', 'off', TypeError, /option "validate"/],
  ['validate', { nope: true }, TypeError, /unknown validation "validate.nope"/],
  ['clock', 5, TypeError, /option "clock" must be a function/],
  ['blockDuration', 'forever', TypeError, /option "blockDuration"/],
  ['name', 'has space', RangeError, /option "name" must be 1 to 64 letters/],
  ['limits', [], TypeError, /option "limits" must be an array of 1 to 16/],
  ['limits', [{ window: '1m' }], TypeError, /option "limits\[0\].limit" is required/],
  ['limits', [{ limit: 5, windo: '1m' }], TypeError, /unknown option "windo"/],
  ['limits', [{ limit: 5, scope: 'world' }], RangeError, /option "limits\[0\].scope"/],
  ['limits', [{ limit: 5 }, { limit: 5 }], TypeError, /two limits are named "5-in-1min"/],
  ['logger', { warn: 1 }, TypeError, /option "logger"/],
  ['registry', {}, TypeError, /option "registry"/],
  ['max', 5, TypeError, /unknown option "max"/],
];

describe('options', () => {
  it.each(BAD)('%s = %j → %o', (option, value, kind, message) => {
    const make = () => rateLimit({ [option]: value } as RateLimitOptions);
    expect(make).toThrow(kind);
    expect(make).toThrow(message);
    expect(make).toThrow(/^@perfstack\/rate-limit: /);
  });

  it('combinations that contradict each other are refused', () => {
    expect(() => rateLimit({ windowMs: 1000, window: '1s' })).toThrow(/"windowMs" and "window" are the same thing/);
    expect(() => rateLimit({ headers: 'draft-7', standardHeaders: 'draft-6' })).toThrow(/pass one/);
    expect(() => rateLimit({ limit: 5, limits: [{ limit: 5 }] })).toThrow(/"limit" cannot be combined with "limits"/);
    expect(() => rateLimit({ algorithm: 'token-bucket', limit: 1_000_000_000, window: '1d' })).toThrow(RangeError);
  });

  it('app.use(rateLimit) without calling it is caught', () => {
    const req = { method: 'GET', headers: {}, url: '/', socket: {} };
    expect(() => rateLimit(req as never)).toThrow(/call it first: app.use\(rateLimit\(\)\)/);
  });

  it('defaults: 100 per minute, fixed window, draft-8 headers, memory store', async () => {
    const limiter = rateLimit({ registry: createRegistry() });
    expect(limiter.stats()).toEqual({
      allowed: 0,
      blocked: 0,
      storeErrors: 0,
      skipped: 0,
      fallback: 0,
      unavailable: 0,
      store: 'memory',
      keys: 0,
      heldKeys: 0,
      leases: 0,
      limits: [
        {
          name: '100-in-1min',
          algorithm: 'fixed-window',
          scope: 'client',
          limit: 100,
          windowMs: 60_000,
          allowed: 0,
          blocked: 0,
        },
      ],
    });
    expect(limiter.health()).toEqual({ status: 'ok', store: 'memory' });
    await limiter.close();
    await limiter.close(); // idempotent
  });

  it('construction-time warnings use express-rate-limit codes, once', () => {
    const logger = memoryLogger();
    const limiter = rateLimit({
      registry: createRegistry(),
      logger,
      trustProxy: true,
      ipv6Subnet: 48,
      keyGenerator: (req) => String((req as unknown as { ip: string }).ip),
    });
    expect(logger.lines.map((l) => l.split(':')[0])).toEqual([
      'warn ERR_ERL_PERMISSIVE_TRUST_PROXY',
      'warn ERR_ERL_KEY_GEN_IPV6',
      'warn ERR_ERL_IPV6SUBNET_OR_KEYGENERATOR',
    ]);
    void limiter.close();
    const quiet = memoryLogger();
    void rateLimit({ registry: createRegistry(), logger: quiet, trustProxy: true, validate: false }).close();
    expect(quiet.lines).toEqual([]);
  });
});
