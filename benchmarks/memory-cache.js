/**
 * Memory of @perfstack/cache's L1: how many bytes N cached responses of a given body size
 * take, against their payload (the issue's target: 100k entries of 1 KB under 1.5x).
 *
 *   node --expose-gc benchmarks/memory-cache.js [--entries 100000] [--body 1024] [--json out.json]
 *
 * Every entry goes through the real middleware: a node:http server on 127.0.0.1 (port 0)
 * running `responseCache()` in front of an app whose `GET /item/<i>` answers a distinct
 * JSON body of exactly --body bytes with `Cache-Control: public, max-age=3600`; an
 * in-process keep-alive client fills it with several requests in flight.
 *
 * Measured as `heapUsed + arrayBuffers` (bodies are Buffers, outside the JS heap) after
 * two `gc()`s, before and after. "Before" is taken with the server listening, its sockets
 * open and warm-up requests served (through a throwaway cache instance, on a route that
 * is never stored), but before the measured cache is made — so what lru-cache
 * preallocates for `maxEntries` counts as the cache's, and the server's own baseline
 * does not. After filling, `stats().entries` must equal N with no eviction and a sample
 * of entries must answer `X-Cache: HIT` with their exact body, or the run exits 1.
 * The ratio is reported, never asserted: exit 0 whether or not the target is met.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `Usage: node --expose-gc benchmarks/memory-cache.js [options]

  --entries <n>       responses to cache (default 100000)
  --body <bytes>      body size of each, exact (default 1024)
  --concurrency <n>   requests in flight while filling (default 8)
  --sample <n>        entries re-requested to prove they are hits (default 500)
  --no-compression    store bodies as they are (compression: false); by default bodies of
                      compressThreshold (1400 B) or more are stored brotli-compressed, and
                      the padding of these bodies compresses to almost nothing
  --eviction <policy> the L1 eviction policy, 'tinylfu' or 'lru' (default: the cache's, tinylfu)
  --json <file>       write the figures as JSON too
  --help              this text

Exit code: 0 when the cache held every entry (whatever the ratio), 1 when it did not or
a request failed, 2 on a bad option.`;

const TARGET_RATIO = 1.5;

// --expose-gc is needed to measure after a full collection: re-run with it when missing.
if (typeof globalThis.gc !== 'function') {
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(child.status ?? 1);
}

const positiveInteger = (name, value) => {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return number;
};

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      entries: { type: 'string', default: '100000' },
      body: { type: 'string', default: '1024' },
      concurrency: { type: 'string', default: '8' },
      sample: { type: 'string', default: '500' },
      'no-compression': { type: 'boolean', default: false },
      eviction: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const settings = {
    help: values.help,
    entries: positiveInteger('entries', values.entries),
    body: positiveInteger('body', values.body),
    concurrency: positiveInteger('concurrency', values.concurrency),
    sample: positiveInteger('sample', values.sample),
    compression: !values['no-compression'],
    eviction: values.eviction,
    json: values.json,
  };
  const smallest = itemBodyPrefixLength(settings.entries - 1);
  if (settings.body < smallest) {
    throw new Error(`--body must be at least ${smallest} bytes for ${settings.entries} distinct JSON bodies`);
  }
  return settings;
}

// ---------------------------------------------------------------- the app

const ITEM_PREFIX = '/item/';

/** Bytes of `{"id":<i>,"pad":""}`, the JSON around the padding. */
function itemBodyPrefixLength(i) {
  return `{"id":${i},"pad":""}`.length;
}

/** A distinct JSON body of exactly `bytes` bytes (ASCII) for item `i`. */
function itemBody(i, bytes) {
  return `{"id":${i},"pad":"${'x'.repeat(bytes - itemBodyPrefixLength(i))}"}`;
}

/** The origin: `/item/<i>` is storable for an hour, `/warmup` never is. */
function makeApp(bodyBytes) {
  const warmupBody = itemBody(0, bodyBytes);
  return function app(req, res) {
    const url = req.url ?? '';
    if (url.startsWith(ITEM_PREFIX)) {
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Cache-Control', 'public, max-age=3600');
      res.end(itemBody(Number(url.slice(ITEM_PREFIX.length)), bodyBytes));
    } else if (url === '/warmup') {
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Cache-Control', 'no-store');
      res.end(warmupBody);
    } else {
      res.statusCode = 404;
      res.end();
    }
  };
}

// ---------------------------------------------------------------- the client

/** One GET on the keep-alive agent; the body is kept only when asked for. */
function get(agent, port, path, keepBody) {
  return new Promise((resolvePromise, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      const chunks = [];
      if (keepBody) res.on('data', (chunk) => chunks.push(chunk));
      else res.resume();
      res.on('end', () =>
        resolvePromise({
          status: res.statusCode ?? 0,
          xCache: res.headers['x-cache'],
          body: keepBody ? Buffer.concat(chunks).toString('latin1') : undefined,
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path}: no answer in 10 s`)));
    req.on('error', reject);
  });
}

/** Runs `task(0..count-1)` with `concurrency` of them in flight. */
async function inFlight(count, concurrency, task) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

// ---------------------------------------------------------------- measuring

/** heapUsed and arrayBuffers after pending callbacks ran and two full collections. */
async function measure(server) {
  await new Promise((done) => setImmediate(done));
  globalThis.gc();
  globalThis.gc();
  const { heapUsed, arrayBuffers, external, rss } = process.memoryUsage();
  const sockets = await new Promise((done) => server.getConnections((error, count) => done(error ? -1 : count)));
  return { heapUsed, arrayBuffers, external, rss, sockets };
}

const integer = (n) => Math.round(n).toLocaleString('en-US');
const mib = (n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const bytesCell = (n) => `${integer(n)} B (${mib(n)})`;

function markdown(figures) {
  const rows = [
    ['entries', integer(figures.entries)],
    ['body per entry', `${integer(figures.bodyBytes)} B`],
    ['payload (entries × body)', bytesCell(figures.payloadBytes)],
    ['heapUsed growth', bytesCell(figures.heapUsedGrowth)],
    ['arrayBuffers growth', bytesCell(figures.arrayBuffersGrowth)],
    ['total growth', bytesCell(figures.totalGrowth)],
    ['total / payload', `${figures.ratio.toFixed(3)}x`],
    ['overhead per entry ((total − payload) / entries)', `${integer(figures.overheadPerEntry)} B`],
    ['JS heap per entry (heapUsed growth / entries)', `${integer(figures.heapPerEntry)} B`],
    ['of which the empty cache, before the first entry', bytesCell(figures.constructionGrowth)],
    ['cache accounting (`stats().bytes` / entries)', `${integer(figures.accountedBytesPerEntry)} B`],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const valueWidth = Math.max(...rows.map(([, value]) => value.length));
  const line = (a, b) => `| ${a.padEnd(width)} | ${b.padStart(valueWidth)} |`;
  return [
    line('figure', 'value'),
    `| ${'-'.repeat(width)} | ${'-'.repeat(valueWidth - 1)}: |`,
    ...rows.map(([a, b]) => line(a, b)),
  ].join('\n');
}

// ---------------------------------------------------------------- the run

async function main() {
  let settings;
  try {
    settings = parseCli(process.argv.slice(2));
  } catch (error) {
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (settings.help) {
    console.log(USAGE);
    return 0;
  }
  const { entries, body: bodyBytes, concurrency } = settings;

  let responseCache;
  let withMiddleware;
  try {
    ({ responseCache } = await import('@perfstack/cache'));
    ({ withMiddleware } = await import('@perfstack/core'));
  } catch (error) {
    console.error(`cannot load @perfstack/cache or @perfstack/core (run pnpm build first): ${error.message}`);
    return 1;
  }

  const app = makeApp(bodyBytes);
  // The warm-up runs through its own small instance, so the measured cache is made after "before".
  const warmupCache = responseCache({ maxEntries: 16, ttl: '1h' });
  let listener = withMiddleware(warmupCache, app);
  const server = http.createServer((req, res) => listener(req, res));
  // Sockets stay open across phases (and gc pauses), so both measurements see the same ones.
  server.keepAliveTimeout = 120_000;
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address();
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const problems = [];

  try {
    await inFlight(concurrency * 50, concurrency, async () => {
      const res = await get(agent, port, '/warmup', false);
      if (res.status !== 200 || res.xCache !== 'MISS') {
        throw new Error(`warm-up: GET /warmup answered ${res.status}, X-Cache ${res.xCache}`);
      }
    });
    await warmupCache.close();
    listener = app;

    const before = await measure(server);
    const maxEntryBytes = Math.max(bodyBytes, 1024 * 1024);
    const responses = responseCache({
      maxEntries: entries,
      // far above what N entries account for (body + headers + bookkeeping), so nothing is evicted
      maxBytes: entries * (bodyBytes + 4096) + maxEntryBytes,
      maxEntryBytes,
      ttl: '1h',
      ...(settings.compression ? {} : { compression: false }),
      ...(settings.eviction === undefined ? {} : { eviction: settings.eviction }),
    });
    listener = withMiddleware(responses, app);
    const constructed = await measure(server);

    const started = performance.now();
    let notMiss = 0;
    await inFlight(entries, concurrency, async (i) => {
      const res = await get(agent, port, `${ITEM_PREFIX}${i}`, false);
      if (res.status !== 200 || res.xCache !== 'MISS') {
        notMiss++;
        if (problems.length < 5) {
          problems.push(`fill: GET ${ITEM_PREFIX}${i} answered ${res.status}, X-Cache ${res.xCache}`);
        }
      }
    });
    const fillSeconds = (performance.now() - started) / 1000;
    // Compressed bodies are stored once compression is done, off the request path: wait for them.
    for (let waited = 0; responses.stats().entries < entries && waited < 10_000; waited += 20) {
      await new Promise((done) => setTimeout(done, 20));
    }
    const after = await measure(server);
    const stats = responses.stats();

    // Proof that what was measured is N stored, servable entries.
    if (notMiss > 0) problems.push(`fill: ${notMiss} of ${entries} responses were not 200 + X-Cache: MISS`);
    if (stats.entries !== entries) problems.push(`stats().entries is ${stats.entries}, expected ${entries}`);
    if (stats.evictions !== 0) problems.push(`stats().evictions is ${stats.evictions}, expected 0`);
    const sample = Math.min(settings.sample, entries);
    const hitsBefore = stats.hits;
    let notHit = 0;
    await inFlight(sample, concurrency, async (k) => {
      const i = sample === 1 ? 0 : Math.round((k * (entries - 1)) / (sample - 1));
      const res = await get(agent, port, `${ITEM_PREFIX}${i}`, true);
      if (res.status !== 200 || res.xCache !== 'HIT' || res.body !== itemBody(i, bodyBytes)) {
        notHit++;
        if (problems.length < 10) {
          problems.push(`sample: GET ${ITEM_PREFIX}${i} answered ${res.status}, X-Cache ${res.xCache}`);
        }
      }
    });
    if (notHit > 0) problems.push(`sample: ${notHit} of ${sample} entries were not a HIT with the stored body`);
    const hits = responses.stats().hits - hitsBefore;
    if (hits !== sample) problems.push(`stats().hits grew by ${hits} for ${sample} sample requests`);

    const payloadBytes = entries * bodyBytes;
    const heapUsedGrowth = after.heapUsed - before.heapUsed;
    const arrayBuffersGrowth = after.arrayBuffers - before.arrayBuffers;
    const totalGrowth = heapUsedGrowth + arrayBuffersGrowth;
    const figures = {
      entries,
      bodyBytes,
      payloadBytes,
      heapUsedGrowth,
      arrayBuffersGrowth,
      totalGrowth,
      ratio: totalGrowth / payloadBytes,
      overheadPerEntry: (totalGrowth - payloadBytes) / entries,
      heapPerEntry: heapUsedGrowth / entries,
      constructionGrowth: constructed.heapUsed + constructed.arrayBuffers - (before.heapUsed + before.arrayBuffers),
      accountedBytesPerEntry: stats.bytes / entries,
      targetRatio: TARGET_RATIO,
      targetMet: totalGrowth / payloadBytes < TARGET_RATIO,
      cacheStats: { entries: stats.entries, bytes: stats.bytes, evictions: stats.evictions },
      compression: settings.compression,
      eviction: settings.eviction ?? 'default',
      fill: { seconds: fillSeconds, requestsPerSecond: entries / fillSeconds, concurrency },
      memory: { before, constructed, after },
      verified: problems.length === 0,
      problems,
      node: process.version,
      date: new Date().toISOString(),
    };

    console.log(
      `@perfstack/cache memory: ${integer(entries)} entries of ${integer(bodyBytes)} B${settings.compression ? '' : ', compression off'}${settings.eviction === undefined ? '' : `, eviction ${settings.eviction}`} (node ${process.version})\n`,
    );
    console.log(markdown(figures));
    console.log(
      `\nfilled in ${fillSeconds.toFixed(1)} s (${integer(entries / fillSeconds)} req/s, ${concurrency} in flight); ` +
        `open sockets before/after: ${before.sockets}/${after.sockets}; rss after: ${mib(after.rss)}`,
    );
    console.log(`target (< ${TARGET_RATIO}x payload): ${figures.targetMet ? 'met' : 'MISSED'}`);
    if (settings.json !== undefined) {
      const file = resolve(settings.json);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, `${JSON.stringify(figures, null, 2)}\n`);
      console.log(`figures written to ${settings.json}`);
    }
    await responses.close();
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  } finally {
    agent.destroy();
    server.closeAllConnections();
    server.close();
  }

  if (problems.length > 0) {
    console.error(`\nFAILED: the cache did not hold what was measured:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
