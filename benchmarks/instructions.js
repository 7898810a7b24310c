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
 *          [--pairs stack-express-429/stack-express,...] [--json file] [--keep dir]
 * Without --pairs every scenario is compared with the first one.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
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
  --idle <seconds>     first count an idle interval of this length (no requests): the
                       server's background instructions per second (timers, samplers,
                       GC); each batch is then also reported net of that rate times its
                       duration (default 0: off)
  --threads            count each thread apart (callgrind --separate-threads=yes) and also
                       report the main thread's instructions per request: the JavaScript,
                       Node's HTTP code and the main-thread share of GC, without V8's
                       background compiler and concurrent-marking threads, whose work
                       lands in whichever batch they happen to run in
  --children           count the server's child processes too (callgrind
                       --trace-children=yes): for node:cluster scenarios, the primary and
                       every worker, each reported apart per request (primary, workers)
  --keep <dir>         keep every batch's callgrind dump as <dir>/<scenario>.<batch>.callgrind
                       (read them with callgrind_annotate)
  --help               this text`;

function positive(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

function nonNegative(name, value) {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number ≥ 0, got ${value}`);
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
      keep: { type: 'string' },
      idle: { type: 'string', default: '0' },
      threads: { type: 'boolean', default: false },
      children: { type: 'boolean', default: false },
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
    keep: values.keep,
    idle: nonNegative('idle', values.idle),
    threads: values.threads,
    children: values.children,
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

/** `pid` and every process below it (from /proc: the node:cluster workers of a primary). */
function processTree(pid) {
  const parents = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

function control(pid, ...args) {
  execFileSync('callgrind_control', [...args, String(pid)], { stdio: 'ignore', timeout: 60_000 });
}

async function measure(scenario, options, context) {
  const dir = mkdtempSync(join(tmpdir(), `perfstack-cg-${scenario.name}-`));
  // BENCH_OVERLOAD_DELAY: under valgrind the loop lags past the stack's shedding
  // threshold; see lib/stack-options.js.
  // BENCH_METRICS_INTERVAL: the same for node:cluster's primary gathering every worker's metrics.
  const env = { ...scenario.env, BENCH_OVERLOAD_DELAY: '1h', BENCH_METRICS_INTERVAL: '3600000' };
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
    launcher: [
      'valgrind',
      '--tool=callgrind',
      '--instr-atstart=no',
      ...(options.threads ? ['--separate-threads=yes'] : []),
      // With --children every process writes its own dumps: callgrind.out.<pid>.<n>.
      ...(options.children
        ? ['--trace-children=yes', `--callgrind-out-file=${out}.%p`]
        : [`--callgrind-out-file=${out}`]),
    ],
    // Under valgrind on a loaded machine a scenario that warms itself (20 variants) or loads
    // many modules (NestJS) needs minutes; BENCH_READY_TIMEOUT_MS overrides.
    timeoutMs: Number(process.env.BENCH_READY_TIMEOUT_MS) || 600_000,
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
    /**
     * Dumps the counters (which zeroes them); returns the new dump files (one, or one per
     * thread with --threads, the main thread's ending in `-01`) and their instructions.
     */
    // With --children: the primary and every process below it (node:cluster's workers),
    // known once warm; each is turned on and dumped apart, `primary` is the server's own.
    const pids = options.children ? processTree(server.pid) : [server.pid];
    const dump = (what) => {
      const before = new Set(readdirSync(dir));
      for (const pid of pids) control(pid, '-d');
      const files = readdirSync(dir).filter((f) => f.startsWith('callgrind.out') && !before.has(f));
      const expected = options.children ? pids.length : 1;
      if (files.length === 0 || (!options.threads && files.length !== expected)) {
        throw new Error(
          `expected ${options.threads ? 'new dumps' : `${expected} new dump(s)`} after ${what}, found ${files.length}`,
        );
      }
      let total = 0;
      let main = 0;
      let mainFound = false;
      let primary = 0;
      let primaryMain = 0;
      for (const f of files) {
        const n = instructionsIn(join(dir, f));
        const ofPrimary = !options.children || f.startsWith(`callgrind.out.${server.pid}.`);
        const isMain = /-0*1$/.test(f);
        total += n;
        if (ofPrimary) primary += n;
        if (isMain) {
          main += n;
          mainFound = true;
          if (ofPrimary) primaryMain += n;
        }
      }
      if (options.threads && !mainFound) throw new Error(`no main-thread dump after ${what}`);
      return {
        files,
        total,
        main: mainFound ? main : undefined,
        primary: options.children ? primary : undefined,
        primaryMain: options.children && mainFound ? primaryMain : undefined,
      };
    };
    for (const pid of pids) control(pid, '-i', 'on');
    let counting = performance.now();
    // Background instructions per second: what the server runs with no request at all
    // (timers, event-loop-delay samplers, GC). Under valgrind a batch takes ~50x its native
    // time, and longer again on a loaded machine, so a time-driven cost weighs far more per
    // request here than at native speed; `net` takes it out.
    let idleRate;
    if (options.idle > 0) {
      await new Promise((resolve) => setTimeout(resolve, options.idle * 1000));
      const { total } = dump('the idle interval');
      const now = performance.now();
      idleRate = total / ((now - counting) / 1000);
      counting = now;
    }
    const perRequest = [];
    const net = [];
    const seconds = [];
    const mainThread = [];
    const primaryShare = [];
    const primaryMainThread = [];
    for (let i = 0; i < options.intervals; i++) {
      const statuses = await send({ ...options, url: server.url, request, agent, count: options.requests });
      const wrong = unexpected(statuses);
      if (wrong.length > 0) throw new Error(`batch ${i + 1} answered ${JSON.stringify(wrong)}`);
      const { files, total, main, primary, primaryMain } = dump(`batch ${i + 1}`);
      if (primary !== undefined) primaryShare.push(primary / options.requests);
      if (primaryMain !== undefined) primaryMainThread.push(primaryMain / options.requests);
      const now = performance.now();
      const elapsed = (now - counting) / 1000;
      counting = now;
      perRequest.push(total / options.requests);
      if (main !== undefined) mainThread.push(main / options.requests);
      seconds.push(elapsed);
      if (idleRate !== undefined) net.push(Math.max(0, total - idleRate * elapsed) / options.requests);
      if (options.keep) {
        mkdirSync(options.keep, { recursive: true });
        for (const file of files) {
          const thread = /-(\d+)$/.exec(file)?.[1];
          const pid = options.children ? `.${/^callgrind\.out\.(\d+)\./.exec(file)?.[1]}` : '';
          const name = `${scenario.name}${pid}.${i + 1}${thread === undefined ? '' : `-${thread}`}.callgrind`;
          copyFileSync(join(dir, file), join(options.keep, name));
        }
      }
    }
    const mid = median(perRequest);
    const min = Math.min(...perRequest);
    const max = Math.max(...perRequest);
    const row = {
      name: scenario.name,
      perRequest: mid,
      min,
      max,
      spread: (max - min) / mid,
      batches: perRequest,
      seconds,
    };
    /** `row[name]`, `row[nameMin]`, `row[nameMax]`: median, min and max of `values`. */
    const put = (name, values) => {
      row[name] = median(values);
      row[`${name}Min`] = Math.min(...values);
      row[`${name}Max`] = Math.max(...values);
    };
    if (primaryShare.length > 0) {
      // Per batch: the primary's instructions and the workers' (the rest), per request.
      row.processes = pids.length;
      row.primaryBatches = primaryShare;
      put('primary', primaryShare);
      put(
        'workers',
        perRequest.map((t, j) => t - primaryShare[j]),
      );
    }
    if (primaryMainThread.length > 0) {
      // With --threads too: the main threads alone (the primary's, and the workers' summed).
      put('primaryMain', primaryMainThread);
      put(
        'workersMain',
        mainThread.map((t, j) => t - primaryMainThread[j]),
      );
    }
    if (mainThread.length > 0) {
      row.main = median(mainThread);
      row.mainMin = Math.min(...mainThread);
      row.mainMax = Math.max(...mainThread);
      row.mainBatches = mainThread;
    }
    if (idleRate !== undefined) {
      row.idlePerSecond = idleRate;
      row.net = median(net);
      row.netMin = Math.min(...net);
      row.netMax = Math.max(...net);
      row.netBatches = net;
    }
    return row;
  } finally {
    agent.destroy();
    await server.stop();
    // Retried: a valgrind-run child may still be writing its last dump as the server stops.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
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
  const withIdle = options.idle > 0;
  const withMain = options.threads;
  const withChildren = options.children;
  const lines = [
    `| scenario | instructions/request (k, median) | min–max (k) | spread | s/batch (median)${withIdle ? ' | idle (M/s) | net of idle (k, median) | net min–max (k)' : ''}${withMain ? ' | main thread (k, median) | main min–max (k) | main spread' : ''}${withChildren ? ' | processes | primary (k, median) | primary min–max (k) | workers (k, median) | workers min–max (k)' : ''}${withChildren && withMain ? ' | primary main thread (k, median) | min–max (k) | workers main threads (k, median) | min–max (k)' : ''} |`,
    `|---|---:|---:|---:|---:${withIdle ? '|---:|---:|---:' : ''}${withMain ? '|---:|---:|---:' : ''}${withChildren ? '|---:|---:|---:|---:|---:' : ''}${withChildren && withMain ? '|---:|---:|---:|---:' : ''}|`,
    ...rows
      .filter((r) => !r.unavailable)
      .map(
        (r) =>
          `| ${r.name} | ${thousands(r.perRequest)} | ${thousands(r.min)}–${thousands(r.max)} | ${(r.spread * 100).toFixed(1)}% | ${median(r.seconds).toFixed(1)}${
            withIdle
              ? ` | ${(r.idlePerSecond / 1e6).toFixed(2)} | ${thousands(r.net)} | ${thousands(r.netMin)}–${thousands(r.netMax)}`
              : ''
          }${
            withMain
              ? ` | ${thousands(r.main)} | ${thousands(r.mainMin)}–${thousands(r.mainMax)} | ${(((r.mainMax - r.mainMin) / r.main) * 100).toFixed(1)}%`
              : ''
          }${
            withChildren
              ? ` | ${r.processes} | ${thousands(r.primary)} | ${thousands(r.primaryMin)}–${thousands(r.primaryMax)} | ${thousands(r.workers)} | ${thousands(r.workersMin)}–${thousands(r.workersMax)}`
              : ''
          }${
            withChildren && withMain
              ? ` | ${thousands(r.primaryMain)} | ${thousands(r.primaryMainMin)}–${thousands(r.primaryMainMax)} | ${thousands(r.workersMain)} | ${thousands(r.workersMainMin)}–${thousands(r.workersMainMax)}`
              : ''
          } |`,
      ),
  ];
  const pairs = options.pairs.length > 0 ? options.pairs : rows.slice(1).map((r) => [r.name, rows[0].name]);
  const ratios = [];
  for (const [a, b] of pairs) {
    const ra = byName.get(a);
    const rb = byName.get(b);
    if (!ra || !rb) continue;
    const ratio = { a, b, cost: ra.perRequest / rb.perRequest, speed: rb.perRequest / ra.perRequest };
    if (ra.main !== undefined && rb.main !== undefined) {
      ratio.mainCost = ra.main / rb.main;
      ratio.mainSpeed = rb.main / ra.main;
    }
    if (ra.net !== undefined && rb.net !== undefined) {
      ratio.netCost = ra.net / rb.net;
      ratio.netSpeed = rb.net / ra.net;
    }
    ratios.push(ratio);
  }
  if (ratios.length > 0) {
    lines.push(
      '',
      `| pair | cost a/b | throughput-equivalent b/a${withIdle ? ' | net cost a/b | net throughput-equivalent b/a' : ''}${withMain ? ' | main-thread cost a/b | main-thread throughput-equivalent b/a' : ''} |`,
      `|---|---:|---:${withIdle ? '|---:|---:' : ''}${withMain ? '|---:|---:' : ''}|`,
    );
    for (const r of ratios) {
      lines.push(
        `| ${r.a} / ${r.b} | ${r.cost.toFixed(3)} | ${r.speed.toFixed(2)}x${
          r.netCost === undefined ? '' : ` | ${r.netCost.toFixed(3)} | ${r.netSpeed.toFixed(2)}x`
        }${r.mainCost === undefined ? '' : ` | ${r.mainCost.toFixed(3)} | ${r.mainSpeed.toFixed(2)}x`} |`,
      );
    }
  }
  console.log(lines.join('\n'));
  if (options.json) writeFileSync(options.json, `${JSON.stringify({ options, rows, ratios }, null, 2)}\n`);
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
