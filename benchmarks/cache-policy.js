/**
 * Micro-benchmark and correctness probe for issue 14's "http-cache-semantics or our own"
 * decision: the same exchanges through http-cache-semantics (CachePolicy, shared cache)
 * and through @perfstack/cache's pure policy (packages/cache/src/freshness.ts, built).
 *
 * Timed: (1) the per-hit check — may this stored response answer this request now, and
 * with which Age — as each design does it (CachePolicy: satisfiesWithoutRevalidation() +
 * responseHeaders(); ours: the entry's precomputed expiry and age, what serve.ts does);
 * (2) the per-store decision (new CachePolicy + storable() + timeToLive() vs cachePolicy()).
 * Then the cases where the two disagree with RFC 9111 / 9213, printed as a table.
 *
 *   pnpm build && node benchmarks/cache-policy.js [--iterations 2000000]
 */
import CachePolicy from 'http-cache-semantics';

const { cachePolicy } = await import(new URL('../packages/cache/dist/freshness.js', import.meta.url).href);

const args = process.argv.slice(2);
const iterations = Number(args[args.indexOf('--iterations') + 1] || 2_000_000) || 2_000_000;
const NOW = Math.floor(Date.now() / 1000) * 1000;
const options = {
  statuses: new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]),
  heuristic: { fraction: 0.1, max: 86_400_000 },
  targeted: ['cdn-cache-control'],
  routeTtl: undefined,
  overrideFreshness: false,
  routeShares: false,
};
const req = { method: 'GET', url: '/products', headers: { host: 'shop.example', accept: 'application/json' } };
const resHeaders = {
  'cache-control': 'public, max-age=300',
  'content-type': 'application/json; charset=utf-8',
  etag: 'W/"3e8-abc"',
  date: new Date(NOW).toUTCString(),
};
const res = { status: 200, headers: resHeaders };

function time(label, fn) {
  for (let i = 0; i < iterations / 10; i++) fn(i); // warm-up
  const start = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < iterations; i++) sink += fn(i) ? 1 : 0;
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  if (sink < 0) console.log(sink);
  return { label, ns };
}

// (1) per hit
const policy = new CachePolicy(req, res, { shared: true });
const entry = { expiresAt: NOW + 300_000, storedAt: NOW, initialAge: 0 };
const theirsHit = time('http-cache-semantics: satisfiesWithoutRevalidation() + responseHeaders()', () => {
  if (!policy.satisfiesWithoutRevalidation(req)) return false;
  return policy.responseHeaders().age !== undefined;
});
const oursHit = time('@perfstack/cache: precomputed expiry + Age (serve.ts)', (i) => {
  const now = NOW + (i & 1023);
  if (!(now < entry.expiresAt)) return false;
  return String(Math.floor(entry.initialAge + (now - entry.storedAt) / 1000)).length > 0;
});
// (2) per store
const theirsStore = time('http-cache-semantics: new CachePolicy() + storable() + timeToLive()', () => {
  const p = new CachePolicy(req, res, { shared: true });
  return p.storable() && p.timeToLive() > 0;
});
const oursStore = time('@perfstack/cache: cachePolicy()', () => {
  const p = cachePolicy(req, res, NOW, NOW, options);
  return p.storable && p.lifetime > 0;
});

// Correctness: what each says about exchanges the issue names.
const probe = (name, headers, expected) => {
  const h = { date: new Date(NOW).toUTCString(), ...headers };
  const p = new CachePolicy(req, { status: 200, headers: h }, { shared: true });
  const theirs = p.storable() ? `${Math.round(p.timeToLive() / 1000)} s fresh, Age ${p.age()}` : 'not stored';
  const o = cachePolicy(req, { status: 200, headers: h }, NOW, NOW, options);
  const ours = o.storable
    ? `${Math.round((o.lifetime - o.initialAge) / 1000)} s fresh, Age ${o.initialAge / 1000}`
    : 'not stored';
  return { name, theirs, ours, expected };
};
const probes = [
  probe(
    '`max-age=3600`, `Age: 7200.0` (invalid Age, RFC 9111 §5.1: ignore)',
    { 'cache-control': 'max-age=3600', age: '7200.0' },
    '3600 s fresh, Age 0',
  ),
  probe(
    '`max-age="3600"` (quoted: invalid for max-age, §5.2.2.1) ',
    { 'cache-control': 'max-age="3600"' },
    '0 s fresh (stale)',
  ),
  probe(
    '`CDN-Cache-Control: max-age=60`, `Cache-Control: no-store` (RFC 9213)',
    { 'cdn-cache-control': 'max-age=60', 'cache-control': 'no-store' },
    '60 s fresh',
  ),
  probe(
    '`must-understand, no-store, max-age=60` on a 200 (§5.2.2.3)',
    { 'cache-control': 'must-understand, no-store, max-age=60' },
    '60 s fresh',
  ),
  probe('`Expires: 0` (invalid: stale)', { expires: '0' }, '0 s fresh (stale)'),
];

const fmt = (n) => n.toFixed(n < 10 ? 1 : 0);
console.log(`node ${process.version}, ${iterations} iterations each\n`);
console.log('| path | ns/op |\n|---|---:|');
for (const r of [theirsHit, oursHit, theirsStore, oursStore]) console.log(`| ${r.label} | ${fmt(r.ns)} |`);
console.log('\n| exchange | http-cache-semantics | @perfstack/cache | RFC |\n|---|---|---|---|');
for (const p of probes) console.log(`| ${p.name} | ${p.theirs} | ${p.ours} | ${p.expected} |`);
