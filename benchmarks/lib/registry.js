/**
 * Every scenario: which server file runs it, with which env, what request is timed, and
 * which checks prove it answers correctly first. The default order puts bare Express
 * first, so the "ratio" column of a full run reads "times bare Express".
 */
import { fileURLToPath } from 'node:url';
import { FAIL_PATH } from './apps.js';
import {
  accessLogRedacted,
  bodyContains,
  corsHeaders,
  getCached,
  getProducts,
  oversizePost,
  postForm,
  postProducts,
  refused,
} from './checks.js';
import { CACHED_PATH, OVERSIZE_BODY, POST_BODY, POST_PATH, PRODUCTS_JSON, PRODUCTS_PATH } from './fixture.js';
import { request as httpRequest } from './http-client.js';
import { REAL_COOKIE } from './real-app.js';

const scenarioFile = (name) => fileURLToPath(new URL(`../scenarios/${name}`, import.meta.url));

const GET_PRODUCTS = { method: 'GET', path: PRODUCTS_PATH };
const GET_CACHED = { method: 'GET', path: CACHED_PATH };
const POST_SMALL = {
  method: 'POST',
  path: POST_PATH,
  body: POST_BODY,
  headers: { 'content-type': 'application/json' },
};

const HELMET = { 'x-content-type-options': 'nosniff', 'content-security-policy': undefined };
const DRAFT8_RATELIMIT = { 'ratelimit-policy': undefined, ratelimit: undefined };
const BASIC = () => [getProducts(), postProducts()];

/**
 * @typedef {{
 *   name: string, title: string, group: string, kind: 'http' | 'micro', file: string,
 *   env?: Record<string,string>, redis?: boolean, logFile?: boolean, unpinned?: boolean,
 *   request: { method: string, path: string, body?: string, headers?: Record<string,string> },
 *   expectStatus?: number,
 *   checks: import('./checks.js').Check[]
 * }} Scenario
 *   `expectStatus`: the status every timed request must get (a refusal scenario); by
 *   default every timed request must be 2xx.
 */

/** @type {Scenario[]} */
const scenarios = [];
const add = (scenario) => scenarios.push({ kind: 'http', env: {}, request: GET_PRODUCTS, ...scenario });

// Baselines.
add({ name: 'express-bare', group: 'baseline', title: 'bare Express 5', file: 'express-bare.js', checks: BASIC() });
add({
  name: 'express-bare-post',
  group: 'baseline',
  title: 'bare Express 5, POST small JSON',
  file: 'express-bare.js',
  request: POST_SMALL,
  checks: BASIC(),
});
add({
  name: 'express-warmed',
  group: 'baseline',
  title: "bare Express 5 + core's warmShapes only (attribution baseline)",
  file: 'express-warmed.js',
  checks: BASIC(),
});
add({ name: 'node-raw', group: 'baseline', title: 'raw node:http', file: 'node-raw.js', checks: BASIC() });
add({
  name: 'node-raw-post',
  group: 'baseline',
  title: 'raw node:http, POST small JSON',
  file: 'node-raw.js',
  request: POST_SMALL,
  checks: BASIC(),
});
add({ name: 'koa-bare', group: 'baseline', title: 'bare Koa 3 + @koa/router', file: 'koa-bare.js', checks: BASIC() });
add({ name: 'fastify-bare', group: 'baseline', title: 'bare Fastify 5', file: 'fastify-bare.js', checks: BASIC() });

// The stacks users assemble today.
const peerStackChecks = () => [
  getProducts({ ...HELMET, ...DRAFT8_RATELIMIT, 'access-control-allow-origin': '*' }),
  getCached({ hit: true }),
  postProducts(),
  oversizePost(),
  bodyContains('/metrics', 'http_request_duration_seconds'),
  accessLogRedacted(),
];
add({
  name: 'peer-stack',
  group: 'peer stack',
  title: 'Express peer stack (memory), uncached route',
  file: 'express-peer-stack.js',
  logFile: true,
  checks: peerStackChecks(),
});
add({
  name: 'peer-stack-hit',
  group: 'peer stack',
  title: 'Express peer stack (memory), apicache hit',
  file: 'express-peer-stack.js',
  logFile: true,
  request: GET_CACHED,
  checks: peerStackChecks(),
});
add({
  name: 'peer-stack-post',
  group: 'peer stack',
  title: 'Express peer stack (memory), POST small JSON',
  file: 'express-peer-stack.js',
  logFile: true,
  request: POST_SMALL,
  checks: peerStackChecks(),
});
add({
  name: 'peer-stack-redis',
  group: 'peer stack',
  title: 'Express peer stack, rate-limit-redis, uncached route',
  file: 'express-peer-stack.js',
  env: { BENCH_REDIS: '1' },
  redis: true,
  logFile: true,
  checks: peerStackChecks(),
});
const fastifyStackChecks = () => [
  getProducts({ ...HELMET, 'x-ratelimit-limit': undefined, 'access-control-allow-origin': '*' }),
  postProducts(),
  oversizePost(),
  bodyContains('/metrics', 'http_request_duration_seconds'),
  accessLogRedacted(),
];
add({
  name: 'fastify-stack',
  group: 'peer stack',
  title: 'Fastify plugin stack',
  file: 'fastify-plugin-stack.js',
  logFile: true,
  checks: fastifyStackChecks(),
});
add({
  name: 'fastify-stack-post',
  group: 'peer stack',
  title: 'Fastify plugin stack, POST small JSON',
  file: 'fastify-plugin-stack.js',
  logFile: true,
  request: POST_SMALL,
  checks: fastifyStackChecks(),
});

// NestJS 11 (Express adapter) with the libraries its users assemble (issue 17).
add({
  name: 'nestjs-peer-stack',
  group: 'peer stack',
  title: 'NestJS peer stack: cache-manager CacheInterceptor, throttler, nestjs-pino, helmet, CORS, prom, uncached',
  file: 'nestjs-peer-stack.js',
  logFile: true,
  checks: [
    getProducts({ ...HELMET, 'x-ratelimit-limit': undefined, 'access-control-allow-origin': '*' }),
    getCached(),
    {
      // CacheInterceptor stores the handler's value, not the response's headers: the origin
      // counter is read from the app instead of from X-Origin-Count.
      name: `GET ${CACHED_PATH} twice: the second from CacheInterceptor, the origin asked once at most`,
      async run({ url }) {
        const count = async () => JSON.parse((await httpRequest(`${url}/api/origin-count`)).text).count;
        const before = await count();
        for (let i = 0; i < 2; i++) {
          const response = await httpRequest(`${url}${CACHED_PATH}`);
          if (response.status !== 200 || response.text !== PRODUCTS_JSON) {
            throw new Error(`${this.name}: expected 200 and the products JSON (got ${response.status})`);
          }
        }
        const asked = (await count()) - before;
        if (asked > 1) throw new Error(`${this.name}: the origin ran ${asked} times for two requests`);
      },
    },
    postProducts(),
    oversizePost(),
    bodyContains('/metrics', 'http_request_duration_seconds'),
    accessLogRedacted(),
  ],
});

// Each peer alone on Express.
const peer = (name, title, extra = {}) =>
  add({
    name: `peer-${name}${extra.suffix ?? ''}`,
    group: 'peer alone',
    title,
    file: 'express-peer.js',
    env: { BENCH_PEER: name, ...(extra.env ?? {}) },
    redis: extra.redis,
    logFile: extra.logFile,
    request: extra.request ?? GET_PRODUCTS,
    checks: extra.checks ?? BASIC(),
  });
peer('apicache', 'apicache hit (route middleware)', {
  request: GET_CACHED,
  checks: [getCached({ hit: true }), ...BASIC()],
});
peer('express-rate-limit', 'express-rate-limit (memory)', {
  checks: [getProducts(DRAFT8_RATELIMIT), postProducts()],
});
peer('express-rate-limit', 'express-rate-limit + rate-limit-redis', {
  suffix: '-redis',
  env: { BENCH_REDIS: '1' },
  redis: true,
  checks: [getProducts(DRAFT8_RATELIMIT), postProducts()],
});
peer('rate-limiter-flexible', 'rate-limiter-flexible (memory)');
peer('pino-http', 'pino-http, redact 2 header paths, to a file', {
  logFile: true,
  checks: [...BASIC(), accessLogRedacted()],
});
peer('helmet', 'helmet', { checks: [getProducts(HELMET), postProducts()] });
peer('cors', 'cors', { checks: [...BASIC(), corsHeaders('*')] });
peer('opossum', 'opossum breaker around the route');
peer('express-prom-bundle', 'express-prom-bundle', {
  checks: [...BASIC(), bodyContains('/metrics', 'http_request_duration_seconds')],
});
peer('express-json', 'express.json({ limit }) global', { checks: [...BASIC(), oversizePost()] });

// Each perfstack layer alone on Express.
const layer = (name, title, extra = {}) =>
  add({
    name: `ps-${name}`,
    group: 'perfstack layer',
    title,
    file: 'perfstack-layer.js',
    env: { BENCH_LAYER: extra.layer ?? name, ...(extra.env ?? {}) },
    redis: extra.redis,
    logFile: extra.logFile,
    request: extra.request ?? GET_PRODUCTS,
    checks: extra.checks ?? BASIC(),
  });
layer('timing', '@perfstack/timing timing()', {
  checks: [getProducts({ 'server-timing': /total;dur=/ }), postProducts()],
});
layer('cache-hit', '@perfstack/cache responseCache(), hit', {
  layer: 'cache',
  request: GET_CACHED,
  checks: [getCached({ hit: true, headers: { 'x-cache': 'HIT', age: undefined } }), ...BASIC()],
});
// Hits with Redis: read counts for the warm start (default) against none (warmStart: 0).
for (const [suffix, warmStart] of [
  ['', '100'],
  ['-nowarm', '0'],
])
  layer(`cache-hit-redis${suffix}`, `@perfstack/cache responseCache() on Redis, hit, warmStart: ${warmStart}`, {
    layer: 'cache',
    redis: true,
    env: { BENCH_WARM_START: warmStart },
    request: GET_CACHED,
    checks: [getCached({ hit: true, headers: { 'x-cache': 'HIT', age: undefined } }), ...BASIC()],
  });
layer('cache-uncacheable', '@perfstack/cache responseCache(), uncacheable route', {
  layer: 'cache',
  checks: [
    getProducts({ 'x-cache': /^(MISS|BYPASS)$/ }),
    getCached({ hit: true, headers: { 'x-cache': 'HIT' } }),
    postProducts(),
  ],
});
layer('size-limit', '@perfstack/size-limit sizeLimit()', { checks: [...BASIC(), oversizePost()] });
layer('logger', '@perfstack/logger accessLog(), default redaction, to a file', {
  logFile: true,
  checks: [getProducts({ 'x-request-id': undefined }), postProducts(), accessLogRedacted()],
});
layer('rate-limit', '@perfstack/rate-limit rateLimit() (memory)', {
  checks: [getProducts(DRAFT8_RATELIMIT), postProducts()],
});
layer('rate-limit-redis', '@perfstack/rate-limit rateLimit() (Redis)', {
  layer: 'rate-limit',
  env: { BENCH_REDIS: '1' },
  redis: true,
  checks: [getProducts(DRAFT8_RATELIMIT), postProducts()],
});
layer('circuit-breaker', '@perfstack/circuit-breaker circuitBreaker()');

// Issue 14: the cache's semantics paths — a hit with 1 vs 20 variants under the URL, a
// revalidation (304 from the app) and a full miss (the app answers and the cache stores).
const cacheCase = (name, title, request, expectCache, originCalled) =>
  add({
    name: `ps-cache-${name}`,
    group: 'perfstack layer',
    title,
    file: 'cache-semantics.js',
    env: { BENCH_CACHE_CASE: name },
    request,
    checks: [
      {
        name: `GET ${request.path} twice: X-Cache ${expectCache}, origin ${originCalled ? 'asked' : 'not asked'}`,
        async run({ url }) {
          const first = await request_(url, request);
          const second = await request_(url, request);
          for (const response of [first, second]) {
            if (response.status !== 200 || response.text !== PRODUCTS_JSON) {
              throw new Error(`${this.name}: expected 200 and the products JSON (got ${response.status})`);
            }
          }
          if (second.headers['x-cache'] !== expectCache) {
            throw new Error(`${this.name}: expected X-Cache ${expectCache} (got ${second.headers['x-cache']})`);
          }
          const asked = first.headers['x-origin-count'] !== second.headers['x-origin-count'];
          if (asked !== originCalled) {
            throw new Error(`${this.name}: origin ${asked ? 'asked' : 'not asked'} on the second request`);
          }
        },
      },
      ...BASIC(),
    ],
  });
const request_ = (url, { path, headers }) => httpRequest(`${url}${path}`, { headers });
const VARY_REQUEST = { method: 'GET', path: '/api/vary', headers: { 'accept-language': 'l7' } };
cacheCase('hit-1', '@perfstack/cache hit, 1 variant stored under the URL', VARY_REQUEST, 'HIT', false);
cacheCase('hit-20', '@perfstack/cache hit, 20 variants stored under the URL', VARY_REQUEST, 'HIT', false);
cacheCase(
  'revalidate',
  '@perfstack/cache revalidation (304 from the app)',
  { method: 'GET', path: '/api/validated' },
  'MISS',
  true,
);
cacheCase(
  'miss',
  '@perfstack/cache full miss (app answers, cache stores)',
  { method: 'GET', path: '/api/miss' },
  'MISS',
  true,
);

// The full stack: every layer on, on Express, Koa and node:http; memory and Redis.
const fullStackChecks = () => [
  getProducts({
    ...HELMET,
    ...DRAFT8_RATELIMIT,
    'x-cache': /^(MISS|BYPASS)$/,
    'server-timing': /total;dur=/,
    'x-request-id': undefined,
  }),
  getCached({ hit: true, headers: { 'x-cache': 'HIT', 'server-timing': /total;dur=/ } }),
  corsHeaders('*'),
  postProducts(),
  oversizePost(),
  accessLogRedacted(),
];
for (const framework of ['express', 'koa', 'node']) {
  for (const redis of [false, true]) {
    const store = redis ? 'Redis' : 'memory';
    const suffix = redis ? '-redis' : '';
    const base = {
      group: 'perfstack full stack',
      file: `perfstack-${framework}.js`,
      env: redis ? { BENCH_REDIS: '1' } : {},
      redis,
      logFile: true,
      checks: fullStackChecks(),
    };
    add({
      ...base,
      name: `stack-${framework}${suffix}`,
      title: `performanceStack() on ${framework} (${store}), uncached`,
    });
    add({
      ...base,
      name: `stack-${framework}${suffix}-hit`,
      title: `performanceStack() on ${framework} (${store}), cache hit`,
      request: GET_CACHED,
    });
    add({
      ...base,
      name: `stack-${framework}${suffix}-post`,
      title: `performanceStack() on ${framework} (${store}), POST small JSON`,
      request: POST_SMALL,
    });
  }
}

// Continuous profiling (issue 20): the full stack on Express with its dashboard mounted,
// continuous profiling off; on at a 10-second CPU profile every 30 seconds (a one-third duty
// cycle, ten times the default 10 s every 5 min); and 29 s every 30 s (97 %: the cost while a
// profile records, which the duty cycle then scales).
for (const [suffix, setting] of [
  ['off', 'off'],
  ['on', '10s/30s'],
  ['always', '29s/30s'],
]) {
  add({
    name: `stack-express-profiling-${suffix}`,
    group: 'perfstack full stack',
    title: `performanceStack() on express with its dashboard, continuous profiling ${setting === 'off' ? 'off' : `${setting.replace('/', ' every ')}`}, uncached`,
    file: 'perfstack-profiling.js',
    env: { BENCH_PROFILING: setting },
    logFile: true,
    checks: fullStackChecks(),
  });
}

// perfstack/fastify (issue 17): the plugin on Fastify 5, every layer on; compare stack-fastify
// with fastify-stack (the Fastify plugin stack, same features) and stack-fastify-hit with
// fastify-bare.
const fastifyStack = {
  group: 'perfstack full stack',
  file: 'perfstack-fastify.js',
  logFile: true,
  checks: fullStackChecks(),
};
add({ ...fastifyStack, name: 'stack-fastify', title: 'perfstack/fastify on Fastify 5 (memory), uncached' });
add({
  ...fastifyStack,
  name: 'stack-fastify-hit',
  title: 'perfstack/fastify on Fastify 5 (memory), cache hit',
  request: GET_CACHED,
});
add({
  ...fastifyStack,
  name: 'stack-fastify-post',
  title: 'perfstack/fastify on Fastify 5 (memory), POST small JSON',
  request: POST_SMALL,
});

// @perfstack/nestjs on NestJS 11 (Express adapter), memory: the NestJS peer stack's counterpart.
add({
  name: 'stack-nestjs',
  group: 'perfstack full stack',
  title: '@perfstack/nestjs PerfstackModule on NestJS (Express adapter, memory), uncached',
  file: 'stack-nestjs.js',
  logFile: true,
  checks: fullStackChecks(),
});

// node:cluster without Redis (issue 16): the full stack on 1 and on 2 workers, not pinned
// (the scaling on 2 cores is the ratio of the two), and the IPC store's per-request cost.
for (const workers of [1, 2]) {
  add({
    name: `stack-cluster-${workers}`,
    group: 'perfstack cluster',
    title: `performanceStack() on Express, node:cluster ${workers} worker${workers > 1 ? 's' : ''} (no Redis), uncached`,
    file: 'perfstack-cluster.js',
    env: { CLUSTER_WORKERS: String(workers) },
    unpinned: true,
    logFile: true,
    checks: [getProducts({ ...HELMET, ...DRAFT8_RATELIMIT, 'x-cache': /^(MISS|BYPASS)$/ }), postProducts()],
  });
}
// One worker whose limiter decides on its own (memory store) instead of in the primary: with
// `instructions.js --children` against stack-cluster-1, what the IPC store costs the whole
// machine per request (the worker's side and the primary's), everything else alike.
// `-nolease`: the cluster store with every decision in the primary (`lease: false`, the
// protocol before leased quota), against which the default (leases on) is compared.
for (const workers of [1, 2]) {
  add({
    name: `stack-cluster-${workers}-memory`,
    group: 'perfstack cluster',
    title: `performanceStack() on Express, node:cluster ${workers} worker${workers > 1 ? 's' : ''}, rate limits in each worker (memory store), uncached`,
    file: 'perfstack-cluster.js',
    env: { CLUSTER_WORKERS: String(workers), BENCH_RATE_LIMIT_STORE: 'memory' },
    unpinned: true,
    logFile: true,
    checks: [getProducts({ ...HELMET, ...DRAFT8_RATELIMIT, 'x-cache': /^(MISS|BYPASS)$/ }), postProducts()],
  });
  add({
    name: `stack-cluster-${workers}-nolease`,
    group: 'perfstack cluster',
    title: `performanceStack() on Express, node:cluster ${workers} worker${workers > 1 ? 's' : ''}, every rate-limit decision in the primary (lease: false), uncached`,
    file: 'perfstack-cluster.js',
    env: { CLUSTER_WORKERS: String(workers), BENCH_RATE_LIMIT_LEASE: 'off' },
    unpinned: true,
    logFile: true,
    checks: [getProducts({ ...HELMET, ...DRAFT8_RATELIMIT, 'x-cache': /^(MISS|BYPASS)$/ }), postProducts()],
  });
}
// The same single process as stack-express, but its limiter decides in the cluster hub (the
// arrangement PM2 cluster mode gets: PERFSTACK_CLUSTER=hub, a detached hub process on a Unix
// socket): with instructions.js, the worker's own CPU per request with the hub store against
// stack-express's in-process memory store. The hub is not instrumented (it is another process).
// Its metrics gathering (every 5 s by default: every worker serializes its registry) is turned
// down: under callgrind a worker answers a few requests a second, so that timer's work would
// be charged to a handful of requests and hide the per-decision cost this scenario measures.
add({
  group: 'perfstack cluster',
  name: 'stack-express-hub',
  title: 'performanceStack() on express, rate limits in the cluster hub (PERFSTACK_CLUSTER=hub), uncached',
  file: 'perfstack-express.js',
  env: { PERFSTACK_CLUSTER: 'hub', PERFSTACK_CLUSTER_HUB_IDLE: '3000', PERFSTACK_CLUSTER_METRICS_INTERVAL: '3600000' },
  logFile: true,
  checks: fullStackChecks(),
});
for (const impl of ['cluster', 'memory']) {
  scenarios.push({
    name: `micro-rate-limit-store-${impl}`,
    group: 'micro',
    kind: 'micro',
    title:
      impl === 'cluster'
        ? '@perfstack/rate-limit ClusterStore.decide() over node:cluster IPC (64 in flight)'
        : '@perfstack/rate-limit MemoryStore.decide() in process (baseline)',
    file: 'micro-ipc-store.js',
    env: { MICRO_IMPL: impl },
    checks: [],
  });
}

// Real apps: the usual middleware (body parsers, cookies, a session, a user; lib/real-app.js),
// bare and with the full stack in front, each against its own bare baseline. The timed
// requests carry the session cookie of a signed-in user.
const REAL_GET = { ...GET_PRODUCTS, headers: { cookie: REAL_COOKIE } };
const REAL_POST = { ...POST_SMALL, headers: { ...POST_SMALL.headers, cookie: REAL_COOKIE } };
for (const framework of ['express', 'koa']) {
  const file = `${framework}-real.js`;
  const what = framework === 'express' ? 'Express 5' : 'Koa 3';
  const parsers =
    framework === 'express'
      ? 'express.json, express.urlencoded, cookie-parser, session, user'
      : '@koa/bodyparser, session, user';
  const bareChecks = () => [getProducts(), postProducts(), postForm()];
  add({
    name: `${framework}-real`,
    group: 'real app',
    title: `${what} + ${parsers}`,
    file,
    request: REAL_GET,
    checks: bareChecks(),
  });
  add({
    name: `${framework}-real-post`,
    group: 'real app',
    title: `${what} + ${parsers}, POST small JSON`,
    file,
    request: REAL_POST,
    checks: bareChecks(),
  });
  const stacked = {
    group: 'real app',
    file,
    env: { BENCH_STACK: '1' },
    logFile: true,
    checks: [...fullStackChecks(), postForm()],
  };
  add({
    ...stacked,
    name: `stack-${framework}-real`,
    title: `performanceStack() in front of ${framework}-real`,
    request: REAL_GET,
  });
  add({
    ...stacked,
    name: `stack-${framework}-real-post`,
    title: `performanceStack() in front of ${framework}-real, POST small JSON`,
    request: REAL_POST,
  });
}

// Refusals through the full stack on Express: what a refused request costs the server
// (compare with stack-express, a served uncached request through the same stack).
const refusal = { group: 'refusal', file: 'perfstack-express.js', logFile: true };
const PROBLEM_429 = { 'retry-after': undefined, ...DRAFT8_RATELIMIT };
add({
  ...refusal,
  name: 'stack-express-429',
  title: 'performanceStack() on express, rate limited (429 RATE_LIMITED)',
  env: { BENCH_REFUSE: '429' },
  expectStatus: 429,
  checks: [refused({ request: GET_PRODUCTS, status: 429, code: 'RATE_LIMITED', headers: PROBLEM_429, attempts: 3 })],
});
const GET_FAIL = { method: 'GET', path: FAIL_PATH };
add({
  ...refusal,
  name: 'stack-express-open',
  title: 'performanceStack() on express, open breaker (503 CIRCUIT_OPEN)',
  env: { BENCH_REFUSE: 'open' },
  request: GET_FAIL,
  expectStatus: 503,
  checks: [
    refused({
      request: GET_FAIL,
      status: 503,
      code: 'CIRCUIT_OPEN',
      headers: { 'retry-after': undefined },
      allow: [500],
    }),
  ],
});
const POST_OVERSIZE = { ...POST_SMALL, body: OVERSIZE_BODY };
add({
  ...refusal,
  name: 'stack-express-413',
  title: 'performanceStack() on express, body over the limit (413 PAYLOAD_TOO_LARGE)',
  request: POST_OVERSIZE,
  expectStatus: 413,
  checks: [getProducts(), refused({ request: POST_OVERSIZE, status: 413, code: 'PAYLOAD_TOO_LARGE', attempts: 1 })],
});

// Micro-benchmarks without HTTP: the outbound breaker.
scenarios.push({
  name: 'micro-breaker-perfstack',
  group: 'micro',
  kind: 'micro',
  title: '@perfstack/circuit-breaker createBreaker().execute()',
  file: 'micro-breaker.js',
  env: { MICRO_IMPL: 'perfstack' },
  checks: [],
});
scenarios.push({
  name: 'micro-breaker-opossum',
  group: 'micro',
  kind: 'micro',
  title: 'opossum fire()',
  file: 'micro-breaker.js',
  env: { MICRO_IMPL: 'opossum' },
  checks: [],
});

// Micro-benchmark without HTTP: the adaptive concurrency limiter's cost per request (issue 19).
for (const [impl, title] of [
  ['none', 'a simulated server with 16 requests in flight, no limiter'],
  ['adaptive', 'the same with the adaptive concurrency limiter (not shedding)'],
]) {
  scenarios.push({
    name: `micro-adaptive-${impl}`,
    group: 'micro',
    kind: 'micro',
    title,
    file: 'micro-adaptive.js',
    env: { MICRO_IMPL: impl },
    checks: [],
  });
}

// Micro-benchmarks of the outbound HTTP client against one local origin (issue 19).
for (const [impl, title] of [
  ['undici', 'bare undici request(), one local origin'],
  ['perfstack', '@perfstack/circuit-breaker createClient(), every protection on'],
  ['fetch-opossum', 'fetch() in opossum with axios-retry-style retries'],
]) {
  scenarios.push({
    name: `micro-client-${impl}`,
    group: 'micro',
    kind: 'micro',
    title,
    file: 'micro-client.js',
    env: { MICRO_IMPL: impl },
    checks: [],
  });
}

for (const scenario of scenarios) scenario.file = scenarioFile(scenario.file);

export const allScenarios = scenarios;

/**
 * Picks scenarios by comma-separated tokens, in the order given: an exact name, a glob
 * with `*`, or a prefix (`peer-` → every peer). Unknown tokens throw.
 * @param {string | undefined} selection
 * @returns {Scenario[]}
 */
export function selectScenarios(selection) {
  if (!selection) return [...scenarios];
  const picked = [];
  for (const raw of selection.split(',')) {
    const token = raw.trim();
    if (!token) continue;
    let matches;
    if (token.includes('*')) {
      const pattern = new RegExp(`^${token.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
      matches = scenarios.filter((s) => pattern.test(s.name));
    } else {
      const exact = scenarios.find((s) => s.name === token);
      matches = exact ? [exact] : scenarios.filter((s) => s.name.startsWith(token));
    }
    if (matches.length === 0) {
      throw new Error(`--scenarios: no scenario matches "${token}" (see --list)`);
    }
    for (const match of matches) if (!picked.includes(match)) picked.push(match);
  }
  return picked;
}
