/**
 * The caching policy as pure functions, driven from tables (ARCHITECTURE.md rule 19): one
 * row per rule of RFC 9111 §3 (storing), §3.5 (Authorization), §4.2.1–§4.2.3 (freshness,
 * heuristics, age), §5.2 (directive parsing), RFC 9110 §5.6.7 (HTTP-date) and RFC 9213
 * (targeted fields), plus ARCHITECTURE.md's Cookie/Set-Cookie rule.
 */
import { describe, expect, it } from 'vitest';
import {
  ageValue,
  cachePolicy,
  correctedInitialAge,
  HEURISTIC_STATUSES,
  type PolicyOptions,
  parseHttpDate,
  parseTargeted,
  selectDirectives,
} from '../src/freshness.js';
import { deltaSeconds, normaliseFieldValue, parseCacheControl } from '../src/http-semantics.js';
import { DEFAULT_STATUSES } from '../src/options.js';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const http = (ms: number) => new Date(ms).toUTCString();
const DAY = 86_400_000;

const base: PolicyOptions = {
  statuses: new Set(DEFAULT_STATUSES),
  heuristic: { fraction: 0.1, max: DAY },
  targeted: ['cdn-cache-control'],
  routeTtl: undefined,
  overrideFreshness: false,
  routeShares: false,
};

interface Row {
  readonly name: string;
  readonly status?: number;
  readonly res: Record<string, unknown>;
  readonly req?: Record<string, unknown>;
  readonly method?: string;
  readonly options?: Partial<PolicyOptions>;
  /** `false:<reason>` or `{ lifetime (s), source, shared?, initialAge (s)? }` */
  readonly expect:
    | string
    | {
        lifetime: number;
        source: string;
        shared?: boolean;
        initialAge?: number;
        noCache?: boolean;
        mustRevalidate?: boolean;
      };
}

const rows: Row[] = [
  // §3 storing — what makes a response storable for a shared cache
  {
    name: '§3 max-age alone',
    res: { 'cache-control': 'max-age=60' },
    expect: { lifetime: 60, source: 'max-age', shared: false },
  },
  {
    name: '§3 public alone, no Last-Modified: stored stale (revalidated)',
    res: { 'cache-control': 'public', etag: '"a"' },
    expect: { lifetime: 0, source: 'none', shared: true },
  },
  { name: '§3 no freshness information at all', res: { etag: '"a"' }, expect: 'false:no-freshness' },
  { name: '§3 no-store', res: { 'cache-control': 'no-store, max-age=60' }, expect: 'false:no-store' },
  { name: '§3 private (shared cache)', res: { 'cache-control': 'private, max-age=60' }, expect: 'false:private' },
  {
    name: '§3 qualified private="x" treated as private',
    res: { 'cache-control': 'private="set-cookie", max-age=60' },
    expect: 'false:private',
  },
  { name: '§3 Vary: *', res: { 'cache-control': 'max-age=60', vary: 'Accept, *' }, expect: 'false:vary-star' },
  { name: '§3 206 never stored', status: 206, res: { 'cache-control': 'max-age=60' }, expect: 'false:status' },
  { name: '§3 304 never stored', status: 304, res: { 'cache-control': 'max-age=60' }, expect: 'false:status' },
  {
    name: '§3 201 with explicit freshness',
    status: 201,
    res: { 'cache-control': 'max-age=60' },
    expect: { lifetime: 60, source: 'max-age' },
  },
  {
    name: '§3 500 with explicit freshness',
    status: 500,
    res: { 'cache-control': 's-maxage=5' },
    expect: { lifetime: 5, source: 's-maxage' },
  },
  {
    name: '§3 500 without explicit freshness',
    status: 500,
    res: { 'last-modified': http(NOW - DAY) },
    expect: 'false:status',
  },
  {
    name: '§3 HEAD responses are not stored',
    method: 'HEAD',
    res: { 'cache-control': 'max-age=60' },
    expect: 'false:method',
  },
  {
    name: '§3 PUT responses are not stored',
    method: 'PUT',
    res: { 'cache-control': 'max-age=60' },
    expect: 'false:method',
  },
  {
    name: '§5.2.2.3 must-understand + understood status ignores no-store',
    res: { 'cache-control': 'must-understand, no-store, max-age=60' },
    expect: { lifetime: 60, source: 'max-age' },
  },
  {
    name: '§5.2.2.3 must-understand + unknown status',
    status: 299,
    res: { 'cache-control': 'must-understand, max-age=60' },
    expect: 'false:must-understand',
  },
  {
    name: '§5.2.2.3 must-understand on 206',
    status: 206,
    res: { 'cache-control': 'must-understand, max-age=60' },
    expect: 'false:status',
  },
  // §3.5 Authorization, ARCHITECTURE.md Cookie / Set-Cookie
  {
    name: '§3.5 Authorization + max-age',
    req: { authorization: 'Bearer x' },
    res: { 'cache-control': 'max-age=60' },
    expect: 'false:authorization',
  },
  {
    name: '§3.5 Authorization + public',
    req: { authorization: 'Bearer x' },
    res: { 'cache-control': 'public, max-age=60' },
    expect: { lifetime: 60, source: 'max-age', shared: true },
  },
  {
    name: '§3.5 Authorization + s-maxage',
    req: { authorization: 'Bearer x' },
    res: { 'cache-control': 's-maxage=60' },
    expect: { lifetime: 60, source: 's-maxage', shared: true },
  },
  {
    name: '§3.5 Authorization + must-revalidate',
    req: { authorization: 'Bearer x' },
    res: { 'cache-control': 'max-age=60, must-revalidate' },
    expect: { lifetime: 60, source: 'max-age', shared: true, mustRevalidate: true },
  },
  {
    name: '§3.5 Authorization + route private:false',
    req: { authorization: 'Bearer x' },
    res: {},
    options: { routeTtl: 5000, routeShares: true },
    expect: { lifetime: 5, source: 'ttl', shared: true },
  },
  {
    name: 'DESIGN Cookie + max-age',
    req: { cookie: 'sid=1' },
    res: { 'cache-control': 'max-age=60' },
    expect: 'false:cookie',
  },
  {
    name: 'DESIGN Cookie + public',
    req: { cookie: 'sid=1' },
    res: { 'cache-control': 'public, max-age=60' },
    expect: { lifetime: 60, source: 'max-age', shared: true },
  },
  {
    name: 'DESIGN Set-Cookie + max-age',
    res: { 'cache-control': 'max-age=60', 'set-cookie': ['a=1'] },
    expect: 'false:set-cookie',
  },
  {
    name: 'DESIGN Set-Cookie + s-maxage',
    res: { 'cache-control': 's-maxage=60', 'set-cookie': ['a=1'] },
    expect: { lifetime: 60, source: 's-maxage' },
  },
  // §4.2.1 freshness lifetime: precedence
  {
    name: '§4.2.1 s-maxage beats max-age',
    res: { 'cache-control': 'max-age=600, s-maxage=2' },
    expect: { lifetime: 2, source: 's-maxage' },
  },
  {
    name: '§4.2.1 max-age beats Expires',
    res: { 'cache-control': 'max-age=10', expires: http(NOW + 3600_000) },
    expect: { lifetime: 10, source: 'max-age' },
  },
  {
    name: '§4.2.1 Expires − Date',
    res: { expires: http(NOW + 3600_000), date: http(NOW) },
    expect: { lifetime: 3600, source: 'expires' },
  },
  {
    name: '§4.2.1 Expires − Date (Date from the origin, an hour behind)',
    res: { expires: http(NOW), date: http(NOW - 3600_000) },
    expect: { lifetime: 3600, source: 'expires', initialAge: 3600 },
  },
  {
    name: '§4.2.1 Expires without Date: response time',
    res: { expires: http(NOW + 120_000) },
    expect: { lifetime: 120, source: 'expires' },
  },
  {
    name: '§4.2.1 Expires in the past',
    res: { expires: http(NOW - 60_000), etag: '"a"' },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 Expires equal to Date',
    res: { expires: http(NOW), date: http(NOW), etag: '"a"' },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 Expires: 0 is invalid → stale',
    res: { expires: '0', etag: '"a"' },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 Expires: -1 is invalid → stale',
    res: { expires: '-1', etag: '"a"' },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 Expires: ISO 8601 is invalid → stale',
    res: { expires: '2099-01-01T00:00:00Z', etag: '"a"' },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 Expires without GMT is invalid → stale',
    res: { expires: 'Thu, 01 Jan 2099 00:00:00', etag: '"a"' },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 Expires: empty is invalid → stale',
    res: { expires: '', etag: '"a"' },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 two Expires lines → stale',
    res: { expires: [http(NOW + 60_000), http(NOW + 120_000)], etag: '"a"' },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 invalid Expires overrides the route ttl (stale, not absent)',
    res: { expires: '0', etag: '"a"' },
    options: { routeTtl: 300_000 },
    expect: { lifetime: 0, source: 'expires' },
  },
  {
    name: '§4.2.1 invalid Expires without validator: not worth storing',
    res: { expires: '0' },
    expect: { lifetime: 0, source: 'expires' },
  },
  // §1.2.2 / §5.2 delta-seconds edge values
  {
    name: '§1.2.2 max-age leading zeros',
    res: { 'cache-control': 'max-age=0060' },
    expect: { lifetime: 60, source: 'max-age' },
  },
  {
    name: '§1.2.2 max-age past 2^31 capped',
    res: { 'cache-control': 'max-age=99999999999999' },
    expect: { lifetime: 2_147_483_648, source: 'max-age' },
  },
  {
    name: '§4.2.1 max-age=-1 invalid → stale',
    res: { 'cache-control': 'max-age=-1', etag: '"a"' },
    expect: { lifetime: 0, source: 'max-age' },
  },
  {
    name: '§5.2.2.1 max-age="3600" (quoted form forbidden) → stale',
    res: { 'cache-control': 'max-age="3600"', etag: '"a"' },
    expect: { lifetime: 0, source: 'max-age' },
  },
  {
    name: '§4.2.1 max-age=1.5 invalid → stale',
    res: { 'cache-control': 'max-age=1.5', etag: '"a"' },
    expect: { lifetime: 0, source: 'max-age' },
  },
  {
    name: '§4.2.1 max-age without a value → stale',
    res: { 'cache-control': 'max-age', etag: '"a"' },
    expect: { lifetime: 0, source: 'max-age' },
  },
  {
    name: '§4.2.1 invalid max-age overrides the route ttl',
    res: { 'cache-control': 'max-age=-1', etag: '"a"' },
    options: { routeTtl: 300_000 },
    expect: { lifetime: 0, source: 'max-age' },
  },
  {
    name: '§4.2.1 two different max-age → stale',
    res: { 'cache-control': 'max-age=60, max-age=120', etag: '"a"' },
    expect: { lifetime: 0, source: 'max-age' },
  },
  {
    name: '§4.2.1 the same max-age twice is fine',
    res: { 'cache-control': 'max-age=60, max-age=60' },
    expect: { lifetime: 60, source: 'max-age' },
  },
  {
    name: '§5.2 directive names are case-insensitive',
    res: { 'cache-control': 'Max-Age=60, PUBLIC' },
    expect: { lifetime: 60, source: 'max-age', shared: true },
  },
  {
    name: '§5.2 unknown extensions ignored',
    res: { 'cache-control': 'community="UCI", foo=bar, max-age=60' },
    expect: { lifetime: 60, source: 'max-age' },
  },
  {
    name: '§5.2 a quoted comma stays in its directive',
    res: { 'cache-control': 'no-cache="a, max-age=1", max-age=60', etag: '"a"' },
    expect: { lifetime: 0, source: 'max-age', noCache: true },
  },
  // §4.2.2 heuristics, route ttl
  {
    name: '§4.2.2 heuristic: 10% of Date − Last-Modified',
    res: { 'last-modified': http(NOW - 10 * 3600_000), date: http(NOW) },
    expect: { lifetime: 3600, source: 'heuristic' },
  },
  {
    name: '§4.2.2 heuristic capped at a day',
    res: { 'last-modified': http(NOW - 100 * DAY) },
    expect: { lifetime: 86_400, source: 'heuristic' },
  },
  {
    name: '§4.2.2 heuristic switched off',
    res: { 'last-modified': http(NOW - 100 * DAY) },
    options: { heuristic: false },
    expect: 'false:no-freshness',
  },
  {
    name: '§4.2.2 heuristic only for heuristically cacheable statuses',
    status: 403,
    res: { 'last-modified': http(NOW - DAY) },
    expect: 'false:status',
  },
  {
    name: '§4.2.2 heuristic for 404',
    status: 404,
    res: { 'last-modified': http(NOW - 10 * 3600_000) },
    expect: { lifetime: 3600, source: 'heuristic' },
  },
  {
    name: '§4.2.2 heuristic beats the route ttl',
    res: { 'last-modified': http(NOW - 10 * 3600_000) },
    options: { routeTtl: 5000 },
    expect: { lifetime: 3600, source: 'heuristic' },
  },
  {
    name: 'route ttl when the response says nothing',
    res: {},
    options: { routeTtl: 5000 },
    expect: { lifetime: 5, source: 'ttl' },
  },
  {
    name: 'explicit max-age beats the route ttl',
    res: { 'cache-control': 'max-age=60' },
    options: { routeTtl: 5000 },
    expect: { lifetime: 60, source: 'max-age' },
  },
  {
    name: 'overrideFreshness: the route ttl beats max-age',
    res: { 'cache-control': 'max-age=60' },
    options: { routeTtl: 5000, overrideFreshness: true },
    expect: { lifetime: 5, source: 'ttl' },
  },
  {
    name: 'overrideFreshness: the route ttl beats no-cache',
    res: { 'cache-control': 'no-cache' },
    options: { routeTtl: 5000, overrideFreshness: true },
    expect: { lifetime: 5, source: 'ttl', noCache: false },
  },
  {
    name: 'overrideFreshness does not beat no-store',
    res: { 'cache-control': 'no-store' },
    options: { routeTtl: 5000, overrideFreshness: true },
    expect: 'false:no-store',
  },
  // §5.2.2.4 no-cache, §5.2.2.2 must-revalidate
  {
    name: '§5.2.2.4 no-cache: stored, stale at once, revalidated',
    res: { 'cache-control': 'no-cache, max-age=600', etag: '"a"' },
    expect: { lifetime: 0, source: 'max-age', noCache: true, mustRevalidate: true },
  },
  {
    name: '§5.2.2.8 proxy-revalidate forbids stale',
    res: { 'cache-control': 'max-age=60, proxy-revalidate' },
    expect: { lifetime: 60, source: 'max-age', mustRevalidate: true },
  },
  // §4.2.3 age
  {
    name: '§4.2.3 Age from upstream',
    res: { 'cache-control': 'max-age=600', age: '100' },
    expect: { lifetime: 600, source: 'max-age', initialAge: 100 },
  },
  {
    name: '§4.2.3 Age: 7200.0 ignored',
    res: { 'cache-control': 'max-age=600', age: '7200.0' },
    expect: { lifetime: 600, source: 'max-age', initialAge: 0 },
  },
  {
    name: '§4.2.3 Age: -5 ignored',
    res: { 'cache-control': 'max-age=600', age: '-5' },
    expect: { lifetime: 600, source: 'max-age', initialAge: 0 },
  },
  {
    name: '§4.2.3 Age: first valid member of a list',
    res: { 'cache-control': 'max-age=600', age: 'abc, 30, 40' },
    expect: { lifetime: 600, source: 'max-age', initialAge: 30 },
  },
  {
    name: '§4.2.3 apparent age (Date in the past) beats a smaller Age',
    res: { 'cache-control': 'max-age=600', age: '10', date: http(NOW - 50_000) },
    expect: { lifetime: 600, source: 'max-age', initialAge: 50 },
  },
  // RFC 9213 targeted fields
  {
    name: 'RFC 9213 CDN-Cache-Control beats Cache-Control',
    res: { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=30' },
    expect: { lifetime: 30, source: 'max-age' },
  },
  {
    name: 'RFC 9213 CDN-Cache-Control no-store beats Cache-Control max-age',
    res: { 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' },
    expect: 'false:no-store',
  },
  {
    name: 'RFC 9213 CDN-Cache-Control replaces Expires too',
    res: { expires: http(NOW + 3600_000), 'cdn-cache-control': 'public', etag: '"a"' },
    expect: { lifetime: 0, source: 'none', shared: true },
  },
  {
    name: 'RFC 9213 invalid CDN-Cache-Control (not a dictionary) → Cache-Control',
    res: { 'cache-control': 'max-age=60', 'cdn-cache-control': 'Max-Age=5' },
    expect: { lifetime: 60, source: 'max-age' },
  },
  {
    name: 'RFC 9213 own targeted field beats CDN-Cache-Control',
    res: { 'perfstack-cache-control': 'max-age=5', 'cdn-cache-control': 'max-age=30' },
    options: { targeted: ['perfstack-cache-control', 'cdn-cache-control'] },
    expect: { lifetime: 5, source: 'max-age' },
  },
];

describe('cachePolicy(): RFC 9111 storing and freshness, one row per rule', () => {
  it.each(rows)('$name', (row) => {
    const policy = cachePolicy(
      { method: row.method ?? 'GET', headers: row.req ?? {} },
      { status: row.status ?? 200, headers: row.res },
      NOW,
      NOW,
      { ...base, ...row.options },
    );
    if (typeof row.expect === 'string') {
      expect(policy).toEqual({ storable: false, reason: row.expect.slice('false:'.length) });
      return;
    }
    if (!policy.storable) throw new Error(`not storable: ${policy.reason}`);
    expect(policy.lifetime).toBe(row.expect.lifetime * 1000);
    expect(policy.source).toBe(row.expect.source);
    if (row.expect.shared !== undefined) expect(policy.shared).toBe(row.expect.shared);
    expect(policy.initialAge).toBe((row.expect.initialAge ?? 0) * 1000);
    if (row.expect.noCache !== undefined) expect(policy.noCache).toBe(row.expect.noCache);
    if (row.expect.mustRevalidate !== undefined) expect(policy.mustRevalidate).toBe(row.expect.mustRevalidate);
  });

  it('the heuristically cacheable statuses are RFC 9110 §15.1 (206 never stored)', () => {
    expect(HEURISTIC_STATUSES).toEqual([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);
    expect(DEFAULT_STATUSES).toEqual(HEURISTIC_STATUSES.filter((s) => s !== 206));
  });
});

describe('parsers', () => {
  it.each([
    ['60', 60],
    ['0060', 60],
    ['0', 0],
    ['2147483648', 2_147_483_648],
    ['2147483649', 2_147_483_648],
    ['99999999999999999999', 2_147_483_648],
    ['-1', Number.NaN],
    ['"60"', Number.NaN],
    ['1.5', Number.NaN],
    ['', Number.NaN],
    [' 60', Number.NaN],
    ['6e1', Number.NaN],
  ])('deltaSeconds(%j) = %d (RFC 9111 §1.2.2)', (raw, value) => {
    expect(deltaSeconds(raw)).toBe(value);
  });

  it.each([
    ['Sun, 06 Nov 1994 08:49:37 GMT', Date.UTC(1994, 10, 6, 8, 49, 37)],
    ['Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(1994, 10, 6, 8, 49, 37)],
    ['Sun Nov  6 08:49:37 1994', Date.UTC(1994, 10, 6, 8, 49, 37)],
    ['0', undefined],
    ['-1', undefined],
    ['1994-11-06T08:49:37Z', undefined],
    ['Sun, 06 Nov 1994 08:49:37', undefined],
    ['Sun, 06 Nov 1994 25:49:37 GMT', undefined],
    ['Sun, 06 Foo 1994 08:49:37 GMT', undefined],
    ['tomorrow', undefined],
  ])('parseHttpDate(%j) (RFC 9110 §5.6.7)', (raw, value) => {
    expect(parseHttpDate(raw)).toBe(value);
  });

  it.each([
    ['100', 100],
    ['7200.0', 0],
    ['-5', 0],
    ['abc', 0],
    ['abc, 30', 30],
    ['0', 0],
    ['99999999999', 2_147_483_648],
  ])('ageValue(%j) = %d (RFC 9111 §5.1)', (raw, value) => {
    expect(ageValue(raw)).toBe(value);
  });
  it('ageValue reads repeated lines (an array) in order', () => {
    expect(ageValue(['x', '12', '50'])).toBe(12);
  });

  it('correctedInitialAge (§4.2.3): max(apparent age, Age + response delay)', () => {
    expect(correctedInitialAge({ ageSeconds: 10, date: NOW - 5000, requestTime: NOW - 2000, responseTime: NOW })).toBe(
      12_000,
    );
    expect(correctedInitialAge({ ageSeconds: 0, date: NOW - 30_000, requestTime: NOW, responseTime: NOW })).toBe(
      30_000,
    );
    expect(correctedInitialAge({ ageSeconds: 0, date: NOW + 30_000, requestTime: NOW, responseTime: NOW })).toBe(0);
  });

  it('parseCacheControl keeps request directives', () => {
    expect(parseCacheControl('max-stale, min-fresh=5, only-if-cached')).toMatchObject({
      maxStale: Number.POSITIVE_INFINITY,
      minFresh: 5,
      onlyIfCached: true,
    });
    expect(parseCacheControl('max-stale=10').maxStale).toBe(10);
  });

  it('parseTargeted reads a Structured Fields dictionary (RFC 9213 §2.1)', () => {
    expect(parseTargeted('max-age=60, public')).toMatchObject({ maxAge: 60, public: true });
    expect(parseTargeted('no-store;x=1')).toMatchObject({ noStore: true });
    expect(parseTargeted('max-age="60"')).toMatchObject({ maxAge: undefined });
    expect(parseTargeted('Max-Age=60')).toBeUndefined();
    expect(parseTargeted('max-age=6 0')).toBeUndefined();
    expect(parseTargeted('')).toBeUndefined();
    expect(
      selectDirectives({ 'cache-control': 'max-age=1', 'cdn-cache-control': '' }, ['cdn-cache-control']),
    ).toMatchObject({
      targeted: undefined,
    });
  });

  it.each([
    ['gzip,br', 'gzip, br'],
    [' gzip ,  br ', 'gzip, br'],
    ['en-US;q=0.9 , fr ; q=0.8', 'en-US;q=0.9, fr;q=0.8'],
    ['a,,b', 'a, b'],
    ['"x ,  y", z', '"x ,  y", z'],
    ['https://a.example', 'https://a.example'],
    ['a\tb', 'a b'],
  ])('normaliseFieldValue(%j) = %j (RFC 9111 §4.1)', (raw, value) => {
    expect(normaliseFieldValue(raw)).toBe(value);
  });
});
