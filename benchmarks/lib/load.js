/**
 * Load generators. wrk (C, one thread) when installed: it needs far less CPU per request
 * than any JavaScript client, so the server — not the client — is what saturates. Else
 * autocannon, in this process (pinned to the load core by run.js).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pinned } from './server-process.js';

export const hasWrk = spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;

/**
 * @typedef {{ method: string, path: string, body?: string, headers?: Record<string,string> }} TimedRequest
 * @typedef {{ requests: number, seconds: number, rps: number, p50: number, p99: number, non2xx: number, errors: number }} LoadResult
 *   latencies in milliseconds
 */

function luaString(value) {
  let level = '';
  while (value.includes(`]${level}]`)) level += '=';
  return `[${level}[${value}]${level}]`;
}

/**
 * Runs wrk against `url + request.path`.
 * @returns {Promise<LoadResult>}
 */
export async function runWrk({ url, request, connections, seconds, core }) {
  const dir = mkdtempSync(join(tmpdir(), 'perfstack-wrk-'));
  const script = join(dir, 'request.lua');
  const lines = [`wrk.method = ${luaString(request.method)}`];
  if (request.body !== undefined) lines.push(`wrk.body = ${luaString(request.body)}`);
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    // Spaces inside the brackets: `headers[[[name]]]` would open a long string, a syntax error.
    lines.push(`wrk.headers[ ${luaString(name)} ] = ${luaString(value)}`);
  }
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format("BENCH_JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"status\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"timeout\\":%d,\\"p50\\":%d,\\"p99\\":%d}\\n",',
    '    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,',
    '    latency:percentile(50), latency:percentile(99)))',
    'end',
  );
  writeFileSync(script, `${lines.join('\n')}\n`);
  const wrkArgs = [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '--latency',
    '--timeout',
    '10s',
    '-s',
    script,
    `${url}${request.path}`,
  ];
  const { command, args } = pinned(core, 'wrk', wrkArgs);
  try {
    const output = await new Promise((resolve, reject) => {
      const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk) => {
        out += chunk;
      });
      child.stderr.on('data', (chunk) => {
        err += chunk;
      });
      child.once('error', reject);
      // 'close', not 'exit': only then has all of wrk's output been read.
      child.once('close', (code) =>
        code === 0 ? resolve({ out, err }) : reject(new Error(`wrk exited ${code}: ${err || out}`)),
      );
    });
    // wrk runs a script it cannot load as plain GETs and still exits 0: refuse that run.
    if (/\.lua:\d+:/.test(output.err)) throw new Error(`wrk could not load its request script: ${output.err.trim()}`);
    const match = /^BENCH_JSON (.*)$/m.exec(output.out);
    // The Lua `done` line is the precise source; wrk's own --latency summary is the fallback.
    const r = match ? JSON.parse(match[1]) : parseWrkText(output.out, output.err);
    const secondsRun = r.duration_us / 1e6;
    return {
      requests: r.requests,
      seconds: secondsRun,
      rps: r.requests / secondsRun,
      p50: r.p50 / 1000,
      p99: r.p99 / 1000,
      non2xx: r.status,
      errors: r.connect + r.read + r.write + r.timeout,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const UNIT_US = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };

/** Reads wrk's standard `--latency` report, in the shape the Lua script prints. */
function parseWrkText(out, err) {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(out);
  const p50 = /^\s+50%\s+([\d.]+)(us|ms|s|m|h)/m.exec(out);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s|m|h)/m.exec(out);
  if (!total || !p50 || !p99) throw new Error(`wrk printed no result:\n${out}\n${err}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    duration_us: Number(total[2]) * UNIT_US[total[3]],
    status: non2xx ? Number(non2xx[1]) : 0,
    connect: socket ? Number(socket[1]) : 0,
    read: socket ? Number(socket[2]) : 0,
    write: socket ? Number(socket[3]) : 0,
    timeout: socket ? Number(socket[4]) : 0,
    p50: Number(p50[1]) * UNIT_US[p50[2]],
    p99: Number(p99[1]) * UNIT_US[p99[2]],
  };
}

/**
 * Runs autocannon in this process. `amount` (a request count) replaces `seconds` when set.
 * @returns {Promise<LoadResult>}
 */
export async function runAutocannon({ url, request, connections, seconds, amount }) {
  const { default: autocannon } = await import('autocannon');
  const options = {
    url: `${url}${request.path}`,
    method: request.method,
    connections,
    headers: { ...(request.headers ?? {}) },
    timeout: 10,
  };
  if (request.body !== undefined) {
    options.body = request.body;
    options.headers['content-type'] ??= 'application/json';
  }
  if (amount) options.amount = amount;
  else options.duration = seconds;
  const result = await autocannon(options);
  const total = result.requests.total;
  const secondsRun = result.duration;
  return {
    requests: total,
    seconds: secondsRun,
    rps: total / secondsRun,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/**
 * Sends `request` at a fixed `rate` (requests per second) for `seconds`, over at most
 * `connections` keep-alive connections, from this process (run.js pins it to the load core):
 * the server is kept well below saturation, so its CPU time per request is what each request
 * costs at that rate, its per-second work (timers, samplers) included, as in a real
 * deployment. wrk has no fixed-rate mode. A request whose turn comes while every connection
 * is busy waits for one (the Agent's queue): the rate is then lower, which `rps` shows.
 * @returns {Promise<LoadResult>}
 */
export async function runPaced({ url, request, connections, seconds, rate }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const headers = { ...(request.headers ?? {}) };
  if (request.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(request.body));
  }
  const target = new URL(`${url}${request.path}`);
  const total = Math.max(1, Math.round(rate * seconds));
  const latencies = [];
  let sent = 0;
  let finished = 0;
  let non2xx = 0;
  let errors = 0;
  const started = performance.now();
  try {
    await new Promise((resolve) => {
      const done = () => {
        if (++finished === total) resolve();
      };
      const one = () => {
        const at = performance.now();
        const req = http.request(target, { method: request.method, headers, agent }, (res) => {
          if (res.statusCode < 200 || res.statusCode >= 300) non2xx++;
          res.resume();
          res.once('end', () => {
            latencies.push(performance.now() - at);
            done();
          });
        });
        req.setTimeout(10_000, () => req.destroy(new Error('no answer in 10 s')));
        req.once('error', () => {
          errors++;
          done();
        });
        req.end(request.body);
      };
      // Every millisecond, send the requests whose time has come.
      const timer = setInterval(() => {
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
        while (sent < due) {
          sent++;
          one();
        }
        if (sent >= total) clearInterval(timer);
      }, 1);
    });
  } finally {
    agent.destroy();
  }
  const secondsRun = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    requests: total,
    seconds: secondsRun,
    rps: total / secondsRun,
    p50: at(0.5),
    p99: at(0.99),
    non2xx,
    errors,
  };
}

/** Runs the chosen load generator. */
export function runLoad(loader, options) {
  if (loader === 'paced') return runPaced(options);
  return loader === 'wrk' ? runWrk(options) : runAutocannon(options);
}
