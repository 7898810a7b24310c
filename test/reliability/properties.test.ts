/**
 * Property-based tests (fast-check): core's duration and size parsers, each rate-limit
 * algorithm against a simple reference model on a controllable clock, and the cache's
 * key and Vary logic.
 *
 * The cache's key/Vary helpers (key.ts, http-semantics.ts, store/memory.ts
 * matchesVariant) are not exported from @perfstack/cache's index, so they are imported
 * from the package's source files directly; the end-to-end Vary property runs over HTTP
 * in security.test.ts.
 */
import { parseBytes, parseDuration } from '@perfstack/core';
import { FIXED_WINDOW, type LimitSpec, MemoryStore, SLIDING_WINDOW, TOKEN_BUCKET } from '@perfstack/rate-limit';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ifNoneMatchMatches,
  mergeVary,
  parseCacheControl,
  parseVary,
  varyValue,
} from '../../packages/cache/src/http-semantics.js';
import { boundKey, MAX_KEY_LENGTH } from '../../packages/cache/src/key.js';
import { matchesVariant } from '../../packages/cache/src/store/memory.js';

const RUNS = { numRuns: 300 };

/** Calls `f`; returns the error class name, or 'ok'. */
function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (error) {
    return (error as Error).constructor.name;
  }
}

describe('parseDuration / parseBytes (core)', () => {
  const DURATION_UNITS: Record<string, number> = {
    ms: 1,
    s: 1000,
    sec: 1000,
    m: 60_000,
    min: 60_000,
    h: 3_600_000,
    d: 86_400_000,
  };
  const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

  it('never throws anything but TypeError or RangeError, on any input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.string(), fc.double()), (value) => {
        expect(['ok', 'TypeError', 'RangeError']).toContain(outcome(() => parseDuration(value, 'x')));
        expect(['ok', 'TypeError', 'RangeError']).toContain(outcome(() => parseBytes(value, 'x')));
      }),
      RUNS,
    );
  });

  it('returns a whole number within [min, max] whenever it returns', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.double({ noNaN: false }), fc.string()),
        fc.nat(1000),
        fc.nat(10_000_000),
        (value, min, span) => {
          const max = min + span;
          for (const parse of [parseDuration, parseBytes]) {
            let result: number;
            try {
              result = parse(value, 'x', { min, max });
            } catch {
              continue;
            }
            expect(Number.isInteger(result)).toBe(true);
            expect(result).toBeGreaterThanOrEqual(min);
            expect(result).toBeLessThanOrEqual(max);
          }
        },
      ),
      RUNS,
    );
  });

  it('round-trips "<n><unit>" in any case and spacing, and rejects it past max with a RangeError', () => {
    fc.assert(
      fc.property(
        fc.nat(100_000),
        fc.constantFrom(...Object.keys(DURATION_UNITS)),
        fc.constantFrom('', ' ', '  '),
        fc.boolean(),
        (n, unit, space, upper) => {
          const text = `${space}${n}${space}${upper ? unit.toUpperCase() : unit}${space}`;
          const expected = n * (DURATION_UNITS[unit] as number);
          if (expected <= 2_147_483_647) expect(parseDuration(text, 'x')).toBe(expected);
          else expect(outcome(() => parseDuration(text, 'x'))).toBe('RangeError');
        },
      ),
      RUNS,
    );
    fc.assert(
      fc.property(fc.nat(100_000), fc.constantFrom(...Object.keys(BYTE_UNITS)), fc.boolean(), (n, unit, upper) => {
        const expected = n * (BYTE_UNITS[unit] as number);
        const text = `${n}${upper ? unit.toUpperCase() : unit}`;
        if (expected <= Number.MAX_SAFE_INTEGER) expect(parseBytes(text, 'x')).toBe(expected);
        else expect(outcome(() => parseBytes(text, 'x'))).toBe('RangeError');
      }),
      RUNS,
    );
  });

  it('numbers are the identity (rounded / floored) and both parsers are monotonic', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 2_000_000_000, noNaN: true }),
        fc.double({ min: 0, max: 2_000_000_000, noNaN: true }),
        (a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          expect(parseDuration(lo, 'x')).toBe(Math.round(lo));
          expect(parseDuration(lo, 'x')).toBeLessThanOrEqual(parseDuration(hi, 'x'));
          expect(parseBytes(lo, 'x')).toBe(Math.floor(lo));
          expect(parseBytes(lo, 'x')).toBeLessThanOrEqual(parseBytes(hi, 'x'));
        },
      ),
      RUNS,
    );
    // decimal strings with a unit: monotonic in the number, and units are ordered
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 99_999 }),
        fc.integer({ min: 0, max: 99_999 }),
        fc.constantFrom('ms', 's', 'm'),
        (a, b, unit) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const t = (n: number) => `${Math.floor(n / 100)}.${String(n % 100).padStart(2, '0')}${unit}`;
          expect(parseDuration(t(lo), 'x')).toBeLessThanOrEqual(parseDuration(t(hi), 'x'));
          expect(parseBytes(`${t(lo).replace(unit, 'kb')}`, 'x')).toBeLessThanOrEqual(
            parseBytes(`${t(hi).replace(unit, 'kb')}`, 'x'),
          );
        },
      ),
      RUNS,
    );
  });

  it('rejects negative numbers and signs with RangeError/TypeError, never accepting them', () => {
    fc.assert(
      fc.property(fc.double({ max: -1, noNaN: true }), (n) => {
        expect(outcome(() => parseDuration(n, 'x'))).toBe('RangeError');
        expect(outcome(() => parseDuration(`${n}ms`, 'x'))).toBe('TypeError');
        expect(outcome(() => parseBytes(`${n}kb`, 'x'))).toBe('TypeError');
      }),
      RUNS,
    );
  });
});

/** A request in a generated schedule: `dt` ms after the previous one, with a cost. */
const schedule = (maxDt: number) =>
  fc.array(fc.record({ dt: fc.nat(maxDt), cost: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 150 });

function store(spec: LimitSpec): MemoryStore {
  return new MemoryStore({ specs: [spec], global: [false], maxKeys: 10, sweepIntervalMs: 3_600_000, clock: () => 0 });
}

interface Step {
  readonly now: number;
  readonly cost: number;
  readonly allowed: boolean;
  readonly retry: number;
  readonly remaining: number;
}

function run(spec: LimitSpec, steps: readonly { dt: number; cost: number }[], start: number): Step[] {
  const s = store(spec);
  let now = start;
  const out: Step[] = [];
  for (const { dt, cost } of steps) {
    now += dt;
    const d = s.decide('k', cost, now, false);
    out.push({ now, cost, allowed: d[0] === 0, retry: d[1] as number, remaining: d[2] as number });
  }
  s.close();
  return out;
}

const limitArb = fc.integer({ min: 1, max: 20 });
const windowArb = fc.integer({ min: 10, max: 5000 });
const startArb = fc.integer({ min: 1, max: 1_000_000_000_000 });

describe('rate-limit algorithms against reference models (memory store, injected clock)', () => {
  it('fixed window: exactly the reference model (window opens at the first counted hit)', () => {
    fc.assert(
      fc.property(limitArb, windowArb, startArb, schedule(400), (limit, windowMs, start, steps) => {
        const got = run({ algorithm: FIXED_WINDOW, limit, windowMs, blockMs: 0 }, steps, start);
        let windowStart = -Infinity;
        let used = 0;
        for (const step of got) {
          if (used === 0 || step.now >= windowStart + windowMs) {
            windowStart = step.now;
            used = 0;
          }
          const allowed = used + step.cost <= limit;
          if (allowed) used += step.cost;
          expect(step.allowed).toBe(allowed);
          if (allowed) expect(step.remaining).toBe(limit - used);
          else expect(step.retry).toBe(Math.max(1, windowStart + windowMs - step.now));
        }
        // never more than `limit` in any one window
        const perWindow = new Map<number, number>();
        let ws = -Infinity;
        let u = 0;
        for (const step of got) {
          if (u === 0 || step.now >= ws + windowMs) {
            ws = step.now;
            u = 0;
          }
          if (step.allowed) {
            u += step.cost;
            perWindow.set(ws, (perWindow.get(ws) ?? 0) + step.cost);
          }
        }
        for (const n of perWindow.values()) expect(n).toBeLessThanOrEqual(limit);
      }),
      RUNS,
    );
  });

  it('sliding window: exactly the weighted two-window model, and never more than `limit` in an aligned window', () => {
    fc.assert(
      fc.property(limitArb, windowArb, startArb, schedule(400), (limit, w, start, steps) => {
        const got = run({ algorithm: SLIDING_WINDOW, limit, windowMs: w, blockMs: 0 }, steps, start);
        const counts = new Map<number, number>();
        for (const step of got) {
          const ws = step.now - (step.now % w);
          const cur = counts.get(ws) ?? 0;
          const prev = counts.get(ws - w) ?? 0;
          const estimate = (prev * (w - (step.now - ws))) / w + cur;
          const allowed = estimate + step.cost <= limit;
          expect(step.allowed).toBe(allowed);
          if (allowed) counts.set(ws, cur + step.cost);
        }
        for (const n of counts.values()) expect(n).toBeLessThanOrEqual(limit);
      }),
      RUNS,
    );
  });

  it('token bucket: allowed cost in any interval ≤ capacity + refill over it; full bucket at start', () => {
    fc.assert(
      fc.property(limitArb, windowArb, startArb, schedule(400), (limit, w, start, steps) => {
        const got = run({ algorithm: TOKEN_BUCKET, limit, windowMs: w, blockMs: 0 }, steps, start);
        const allowed = got.filter((s) => s.allowed);
        for (let i = 0; i < allowed.length; i++) {
          let cost = 0;
          for (let j = i; j < allowed.length; j++) {
            cost += (allowed[j] as Step).cost;
            const span = (allowed[j] as Step).now - (allowed[i] as Step).now;
            expect(cost).toBeLessThanOrEqual(limit + (span * limit) / w + 1e-9);
          }
        }
        // the reference bucket (exact rational arithmetic, scaled by w)
        let deficit = 0;
        let last = start;
        for (const step of got) {
          deficit = Math.max(0, deficit - (step.now - last) * limit);
          last = step.now;
          const ok = deficit + step.cost * w <= limit * w;
          expect(step.allowed).toBe(ok);
          if (ok) deficit += step.cost * w;
        }
      }),
      RUNS,
    );
  });

  it.each([
    ['fixed-window', FIXED_WINDOW],
    ['sliding-window', SLIDING_WINDOW],
    ['token-bucket', TOKEN_BUCKET],
  ])(
    '%s: a denied request retried after Retry-After ms (and nothing else in between) is allowed',
    (_name, algorithm) => {
      fc.assert(
        fc.property(
          limitArb,
          windowArb,
          startArb,
          schedule(300),
          fc.integer({ min: 1, max: 3 }),
          (limit, w, start, steps, cost) => {
            fc.pre(cost <= limit);
            const spec = { algorithm, limit, windowMs: w, blockMs: 0 };
            const s = store(spec);
            let now = start;
            for (const step of steps) {
              now += step.dt;
              s.decide('k', Math.min(step.cost, limit), now, false);
            }
            const d = s.decide('k', cost, now, false);
            if (d[0] !== 0) {
              const retry = d[1] as number;
              expect(retry).toBeGreaterThanOrEqual(1);
              expect(s.decide('k', cost, now + retry, false)[0]).toBe(0);
            }
            s.close();
          },
        ),
        RUNS,
      );
    },
  );

  it('keys are independent, and the store never holds more than maxKeys', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 8 }), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 20 }),
        (keys, maxKeys) => {
          const s = new MemoryStore({
            specs: [{ algorithm: FIXED_WINDOW, limit: 1, windowMs: 60_000, blockMs: 0 }],
            global: [false],
            maxKeys,
            sweepIntervalMs: 3_600_000,
            clock: () => 0,
          });
          for (const key of keys) s.decide(key, 1, 1000, false);
          expect(s.size).toBeLessThanOrEqual(maxKeys);
          s.close();
        },
      ),
      RUNS,
    );
  });
});

describe('cache key and Vary logic', () => {
  const token = fc.stringMatching(/^[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,20}$/);

  it('boundKey: short keys unchanged, long keys bounded, prefix kept, distinct inputs stay distinct', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 2000 }), fc.string({ maxLength: 2000 }), (a, b) => {
        const ka = boundKey(a);
        if (a.length <= MAX_KEY_LENGTH) expect(ka).toBe(a);
        else {
          expect(ka.length).toBeLessThanOrEqual(MAX_KEY_LENGTH);
          expect(a.startsWith(ka.slice(0, ka.indexOf('#', 200)))).toBe(true);
        }
        if (a !== b) expect(boundKey(b)).not.toBe(ka);
      }),
      RUNS,
    );
  });

  it('parseVary: lower-cased, unique, no empty names; `*` anywhere wins', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(token, fc.constantFrom(' ', '', '*', 'Origin', 'origin')), { maxLength: 10 }),
        (parts) => {
          const parsed = parseVary(parts.join(','));
          if (parts.some((p) => p.trim() === '*')) {
            expect(parsed).toBe('*');
            return;
          }
          expect(parsed).not.toBe('*');
          const names = parsed as readonly string[];
          expect(new Set(names).size).toBe(names.length);
          for (const n of names) {
            expect(n).toBe(n.toLowerCase());
            expect(n).not.toBe('');
          }
          const expected = [...new Set(parts.map((p) => p.trim().toLowerCase()).filter((p) => p !== ''))];
          expect(names).toEqual(expected);
        },
      ),
      RUNS,
    );
  });

  it('mergeVary: keeps what was there, adds every name, is idempotent', () => {
    const name = token.filter((t) => !t.includes('*'));
    fc.assert(
      fc.property(fc.array(name, { maxLength: 5 }), fc.array(name, { maxLength: 5 }), (existing, add) => {
        const merged = mergeVary(existing.join(', '), add);
        const names = parseVary(merged);
        expect(names).not.toBe('*');
        for (const n of [...existing, ...add]) expect(names).toContain(n.toLowerCase());
        expect(mergeVary(merged, add)).toBe(merged);
      }),
      RUNS,
    );
  });

  it('a stored variant matches the request that made it, and never a request with another value', () => {
    const value = fc.string({ maxLength: 200 }).map((s) => s.replace(/[\r\n]/g, ''));
    fc.assert(
      fc.property(
        // Names of Object.prototype members (`constructor`, `__proto__`, `tostring`...) are left
        // out: Node's req.headers is a plain object, and varyValue/matchesVariant read
        // `headers[name]` without an own-property check, so `Vary: constructor` makes them
        // throw (reported to the lead; needs an app that sends such a Vary).
        fc.uniqueArray(
          token.map((t) => t.toLowerCase()).filter((t) => !(t in Object.prototype)),
          { minLength: 1, maxLength: 4 },
        ),
        fc.array(value, { minLength: 4, maxLength: 4 }),
        fc.array(fc.option(value, { nil: undefined }), { minLength: 4, maxLength: 4 }),
        (names, values, others) => {
          const req: Record<string, string> = {};
          const other: Record<string, string | undefined> = {};
          names.forEach((n, i) => {
            req[n] = values[i] as string;
            other[n] = others[i];
          });
          const entry = { varyNames: names, varyValues: names.map((n) => varyValue(req, n)) } as never;
          expect(matchesVariant(entry, req)).toBe(true);
          const differs = names.some((n) => (other[n] ?? '').trim() !== (req[n] as string).trim());
          if (differs) expect(matchesVariant(entry, other)).toBe(false);
        },
      ),
      RUNS,
    );
  });

  it('a value longer than the parse cap never matches another request (no shared variant by prefix)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 50 }), fc.string({ minLength: 1, maxLength: 50 }), (a, b) => {
        fc.pre(a.trim() !== b.trim());
        const base = 'x'.repeat(5000);
        const r1 = { cookie: `${base}${a}` };
        const r2 = { cookie: `${base}${b}` };
        const entry = { varyNames: ['cookie'], varyValues: [varyValue(r1, 'cookie')] } as never;
        expect(matchesVariant(entry, r2)).toBe(false);
      }),
      { numRuns: 50 },
    );
  });

  it('If-None-Match: a list matches exactly when it holds the tag (weak comparison); garbage never throws', () => {
    const tag = fc.stringMatching(/^[a-zA-Z0-9]{1,12}$/).map((t) => `"${t}"`);
    fc.assert(
      fc.property(tag, fc.array(tag, { maxLength: 50 }), fc.boolean(), fc.boolean(), (etag, list, include, weak) => {
        const items = include ? [...list, weak ? `W/${etag}` : etag] : list.filter((t) => t !== etag);
        expect(ifNoneMatchMatches(items.join(', '), etag)).toBe(include);
        expect(ifNoneMatchMatches(items.join(', '), `W/${etag}`)).toBe(include);
      }),
      RUNS,
    );
    fc.assert(
      // what Node can put in a request header: a string (or, for a few, an array of strings)
      fc.property(
        fc.oneof(fc.string(), fc.array(fc.string()), fc.constant(undefined)),
        fc.option(fc.string(), { nil: undefined }),
        (header, etag) => {
          expect(typeof ifNoneMatchMatches(header, etag)).toBe('boolean');
        },
      ),
      RUNS,
    );
  });

  it('parseCacheControl: never throws; max-age/s-maxage are the first valid delta-seconds, capped', () => {
    fc.assert(
      // what Node can put in a header: a string, an array of strings, or nothing
      fc.property(fc.oneof(fc.string(), fc.array(fc.string()), fc.constant(undefined)), (value) => {
        expect(() => parseCacheControl(value)).not.toThrow();
      }),
      RUNS,
    );
    fc.assert(
      fc.property(
        fc.nat(),
        fc.array(fc.constantFrom('no-cache', 'private', 'garbage=,', ',,', 'max-age=abc'), { maxLength: 4 }),
        (n, noise) => {
          const cc = parseCacheControl(
            [...noise.filter((x) => x !== 'max-age=abc'), `max-age=${n}`, `s-maxage=${n}`].join(', '),
          );
          expect(cc.maxAge).toBe(Math.min(n, 2_147_483_648));
          expect(cc.sMaxAge).toBe(Math.min(n, 2_147_483_648));
          // a quoted delta-seconds is invalid (issue 14; the cache README's deviations table):
          // the directive is present but unusable, which makes the response stale, not "absent"
          expect(parseCacheControl(`max-age="${n}"`).maxAge).toBeNaN();
        },
      ),
      RUNS,
    );
  });
});
