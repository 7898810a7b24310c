#!/usr/bin/env node
/**
 * Server CPU per request as instructions, counted by valgrind's callgrind: the same total
 * for the same binary, input and environment whatever else the machine is doing, so the
 * CPU-cost ratios the issues set (a refusal ≤ 1/3 of a served request, a cache hit ≥ 2.5x
 * bare Express, ...) can be measured on a shared, noisy machine where wall-clock rounds
 * spread by 40–190 %.
 *
 * For each scenario of lib/registry.js: the server runs under
 * `valgrind --tool=callgrind --instr-atstart=no`; this process (not instrumented) sends
 * `--warmup` requests (JIT tier-up, caches filled), turns instrumentation on with
 * `callgrind_control -i on`, then sends `--intervals` batches of `--requests` requests over
 * `--concurrency` keep-alive connections, dumping the counters after each batch
 * (`callgrind_control -d`, which also zeroes them). Instructions per request is the median
 * batch's total divided by its requests; min–max over the batches is the spread. Every
 * thread of the server counts (V8's compiler and GC threads, pino's worker): that is CPU
 * the request costs.
 *
 * What it is not: instructions are not cycles (cache misses, branch mispredictions and
 * the kernel's share — syscalls, loopback TCP — are not counted). Read the ratios beside
 * the wall-clock run (run.js), not instead of it.
 *
 * Usage: node benchmarks/instructions.js --scenarios express-bare,stack-express,stack-express-429
 *          [--warmup 2000] [--requests 300] [--intervals 5] [--concurrency 8]
 *          [--pairs stack-express-429/stack-express,...] [--json file]
 * Without --pairs every scenario is compared with the first one.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resolveRedis } from './lib/redis.js';
import { selectScenarios } from './lib/registry.js';
import { startServer } from './lib/server-process.js';

const USAGE = `Usage: node benchmarks/instructions.js --scenarios <list> [options]
  --scenarios <list>   comma-separated scenario names (see run.js --list); HTTP scenarios only
  --warmup <n>         requests sent before counting (default 2000)
  --requests <n>       requests per counted batch (default 300)
  --intervals <n>      counted batches per scenario (default 5)
  --concurrency <n>    keep-alive connections (default 8)
  --pairs <a/b,...>    ratios to print (default: every scenario / the first)
  --json <file>        write the figures as JSON
  --help               this text`;

function positive(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

function parse(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenarios: { type: 'string' },
      warmup: { type: 'string', default: '2000' },
      requests: { type: 'string', default: '300' },
      intervals: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '8' },
      pairs: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return { help: true };
  if (!values.scenarios) throw new Error('--scenarios is required');
  const pairs = (values.pairs ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => {
      const [a, b] = pair.split('/');
      if (!a || !b) throw new Error(`--pairs takes a/b, got ${pair}`);
      return [a, b];
    });
  return {
    scenarios: values.scenarios,
    warmup: positive('warmup', values.warmup),
    requests: positive('requests', values.requests),
    intervals: positive('intervals', values.intervals),
    concurrency: positive('concurrency', values.concurrency),
    pairs,
    json: values.json,
  };
}

/** Sends `count` requests over `agent`, `concurrency` at a time; resolves the status counts. */
function send({ url, request, agent, count, concurrency }) {
  const statuses = new Map();
  let started = 0;
  let finished = 0;
  const headers = { ...(request.headers ?? {}) };
  if (request.body !== undefined) headers['content-length'] = String(Buffer.byteLength(request.body));
  return new Promise((resolve, reject) => {
    const one = () => {
      if (started >= count) return;
      started++;
      const req = http.request(`${url}${request.path}`, { method: request.method, headers, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (++finished === count) resolve(statuses);
          else one();
        });
      });
      req.setTimeout(120_000, () => req.destroy(new Error(`${request.method} ${request.path}: no answer in 120 s`)));
      req.on('error', (error) => {
        // A server that refuses a body may reset the socket while we still write: count
        // it as an answer without a status and go on.
        if (error.code === 'ECONNRESET' || error.code === 'EPIPE') {
          statuses.set('reset', (statuses.get('reset') ?? 0) + 1);
          if (++finished === count) resolve(statuses);
          else one();
        } else reject(error);
      });
      req.end(request.body);
    };
    for (let i = 0; i < Math.min(concurrency, count); i++) one();
  });
}

/** The `summary:` (or `totals:`) Ir count of one callgrind output file. */
function instructionsIn(file) {
  const text = readFileSync(file, 'utf8');
  const match = /^(?:summary|totals):\s+(\d+)/m.exec(text);
  if (!match) throw new Error(`no summary line in ${file}`);
  return Number(match[1]);
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

function control(pid, ...args) {
  execFileSync('callgrind_control', [...args, String(pid)], { stdio: 'ignore', timeout: 60_000 });
}

async function measure(scenario, options, context) {
  const dir = mkdtempSync(join(tmpdir(), `perfstack-cg-${scenario.name}-`));
  // BENCH_OVERLOAD_DELAY: under valgrind the loop lags past the stack's shedding
  // threshold; see lib/stack-options.js.
  const env = { ...scenario.env, BENCH_OVERLOAD_DELAY: '1h' };
  if (scenario.logFile) env.BENCH_LOG_FILE = join(dir, 'access.log');
  if (scenario.redis) {
    if (!context.redis || context.redis.unavailable) return { name: scenario.name, unavailable: 'no Redis' };
    env.REDIS_URL = context.redis.url;
    env.BENCH_REDIS_PREFIX = `${context.redis.prefix}${scenario.name}:`;
  }
  const out = join(dir, 'callgrind.out');
  const server = await startServer({
    file: scenario.file,
    env,
    launcher: ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${out}`],
    // Start-up under valgrind is ~50x slower: a framework with many modules (NestJS) on a
    // loaded machine may need longer (BENCH_READY_TIMEOUT_MS).
    timeoutMs: Number(process.env.BENCH_READY_TIMEOUT_MS) || 180_000,
  });
  if (server.unavailable) return { name: scenario.name, unavailable: server.unavailable };
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const request = scenario.request;
  const expected = scenario.expectStatus;
  const unexpected = (statuses) =>
    [...statuses].filter(([status]) =>
      expected === undefined ? !(status >= 200 && status < 300) : status !== expected,
    );
  try {
    // The warm-up's answers are not checked: a refusal scenario admits its first request.
    await send({ ...options, url: server.url, request, agent, count: options.warmup });
    control(server.pid, '-i', 'on');
    const perRequest = [];
    for (let i = 0; i < options.intervals; i++) {
      const before = new Set(readdirSync(dir));
      const statuses = await send({ ...options, url: server.url, request, agent, count: options.requests });
      const wrong = unexpected(statuses);
      if (wrong.length > 0) throw new Error(`batch ${i + 1} answered ${JSON.stringify(wrong)}`);
      control(server.pid, '-d');
      const dumped = readdirSync(dir).filter((f) => f.startsWith('callgrind.out') && !before.has(f));
      if (dumped.length !== 1) throw new Error(`expected one new dump after batch ${i + 1}, found ${dumped.length}`);
      perRequest.push(instructionsIn(join(dir, dumped[0])) / options.requests);
    }
    const mid = median(perRequest);
    const min = Math.min(...perRequest);
    const max = Math.max(...perRequest);
    return { name: scenario.name, perRequest: mid, min, max, spread: (max - min) / mid, batches: perRequest };
  } finally {
    agent.destroy();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const thousands = (n) => Math.round(n / 1000).toLocaleString('en-US');

async function main() {
  const options = parse(process.argv.slice(2));
  if (options.help) {
    console.log(USAGE);
    return;
  }
  for (const tool of ['valgrind', 'callgrind_control']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error) throw new Error(`${tool} is not installed`);
  }
  const scenarios = selectScenarios(options.scenarios).filter((s) => s.kind === 'http');
  if (scenarios.length === 0) throw new Error(`no HTTP scenario matches ${options.scenarios}`);
  const context = {};
  if (scenarios.some((s) => s.redis)) context.redis = await resolveRedis();
  console.error(
    `instructions: ${scenarios.length} scenarios, warm-up ${options.warmup}, ${options.intervals} × ${options.requests} counted requests, ${options.concurrency} connections`,
  );
  const rows = [];
  try {
    for (const scenario of scenarios) {
      const started = Date.now();
      const row = await measure(scenario, options, context);
      rows.push(row);
      console.error(
        row.unavailable
          ? `  - ${scenario.name}: unavailable (${row.unavailable})`
          : `  ✓ ${scenario.name}: ${thousands(row.perRequest)}k instructions/request (${((Date.now() - started) / 1000).toFixed(0)} s)`,
      );
    }
  } finally {
    if (context.redis && !context.redis.unavailable) await context.redis.close().catch(() => {});
  }
  const byName = new Map(rows.filter((r) => !r.unavailable).map((r) => [r.name, r]));
  const lines = [
    '| scenario | instructions/request (k, median) | min–max (k) | spread |',
    '|---|---:|---:|---:|',
    ...rows
      .filter((r) => !r.unavailable)
      .map(
        (r) =>
          `| ${r.name} | ${thousands(r.perRequest)} | ${thousands(r.min)}–${thousands(r.max)} | ${(r.spread * 100).toFixed(1)}% |`,
      ),
  ];
  const pairs = options.pairs.length > 0 ? options.pairs : rows.slice(1).map((r) => [r.name, rows[0].name]);
  const ratios = [];
  for (const [a, b] of pairs) {
    const ra = byName.get(a);
    const rb = byName.get(b);
    if (!ra || !rb) continue;
    ratios.push({ a, b, cost: ra.perRequest / rb.perRequest, speed: rb.perRequest / ra.perRequest });
  }
  if (ratios.length > 0) {
    lines.push('', '| pair | cost a/b | throughput-equivalent b/a |', '|---|---:|---:|');
    for (const r of ratios) lines.push(`| ${r.a} / ${r.b} | ${r.cost.toFixed(3)} | ${r.speed.toFixed(2)}x |`);
  }
  console.log(lines.join('\n'));
  if (options.json) writeFileSync(options.json, `${JSON.stringify({ options, rows, ratios }, null, 2)}\n`);
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
