#!/usr/bin/env node
/**
 * A cheap route's latency beside 200 ms CPU tasks (issue 19, item 2): offloaded with
 * perfstack's `offload()` against the same task inline, and offload's settings side by side.
 *
 * Each setup is one server process (scenarios/offload-server.js, node:http): `/cpu` runs
 * lib/cpu-task.js (`--cpu-ms` of CPU time) offloaded or inline, `/cheap` answers at once.
 * The load generator is this process (undici pools, apart from the server's process):
 * during a round it keeps `--cpu-concurrency` CPU requests in flight for `--duration`
 * seconds, and sends a cheap request every `--interval` ms (open loop, on up to 8 keep-alive
 * connections, so a slow answer does not delay the next request). Setups run in interleaved
 * rounds (round 1: A B C, round 2: A B C, ...), each after a warm-up round that is not kept.
 *
 * Per round: the cheap route's latency (p50, p99, max; from the moment the request was sent),
 * how late the generator sent its requests (its own event loop on a busy machine), and what
 * the server saw (its event loop's delay, its longest GC pause, the pool's threads), with
 * the load average at the start. Per setup: the median of the rounds' p99s, min–max.
 *
 * Setups: `inline`, `offload` (offload()'s defaults) and `offload:<key>=<value>,...` with
 * keys `nice` (niceIncrement) and `threads` (maxThreads), e.g. `offload:nice=0,threads=2`;
 * `alone` is the control: the same server and cheap requests with no CPU task at all (the
 * tail the machine gives a cheap route by itself).
 *
 * Usage: node benchmarks/offload-latency.js [--setups offload,inline] [--rounds 5]
 *          [--duration 3] [--cpu-ms 200] [--cpu-concurrency 3] [--interval 10] [--pin 1] [--json file]
 *
 * `--pin <cores>` runs the servers under `taskset -c <cores>`: with one core, the event loop and
 * the worker compete for it and `niceIncrement` decides which one waits.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: {
    setups: { type: 'string', default: 'offload,inline' },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '3' },
    'cpu-ms': { type: 'string', default: '200' },
    'cpu-concurrency': { type: 'string', default: '3' },
    interval: { type: 'string', default: '10' },
    json: { type: 'string' },
    pin: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const SERVER = fileURLToPath(new URL('./scenarios/offload-server.js', import.meta.url));
const rounds = Number(values.rounds);
const durationMs = Number(values.duration) * 1000;
const cpuMs = Number(values['cpu-ms']);
const cpuConcurrency = Number(values['cpu-concurrency']);
const intervalMs = Number(values.interval);

function parseSetup(text) {
  const [mode, rest] = text.split(':');
  if (mode === 'alone') return { name: text, env: { OFFLOAD_MODE: 'offload' }, cpu: false };
  if (mode !== 'offload' && mode !== 'inline') throw new Error(`setup ${text}: offload, inline or alone`);
  const env = { OFFLOAD_MODE: mode };
  for (const pair of rest ? rest.split(',') : []) {
    const [key, value] = pair.split('=');
    if (key === 'nice') env.OFFLOAD_NICE = value;
    else if (key === 'threads') env.OFFLOAD_THREADS = value;
    else throw new Error(`setup ${text}: unknown key ${key} (nice, threads)`);
  }
  return { name: text, env, cpu: true };
}

async function startServer(setup) {
  // --pin: the server's threads (event loop and workers) share the listed cores (taskset), e.g.
  // one core, where the event loop and a worker compete and niceIncrement decides who waits.
  const command = values.pin ? 'taskset' : process.execPath;
  const args = values.pin ? ['-c', values.pin, process.execPath, SERVER] : [SERVER];
  const child = spawn(command, args, {
    env: { ...process.env, ...setup.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) resolve(Number(line.slice(6)));
      else if (line.startsWith('UNAVAILABLE')) reject(new Error(`${setup.name}: ${line}`));
    });
    child.once('exit', (code) => reject(new Error(`${setup.name}: exited with ${code}`)));
  });
  const origin = `http://127.0.0.1:${port}`;
  return {
    ...setup,
    child,
    cheapPool: new Pool(origin, { connections: 8 }),
    cpuPool: new Pool(origin, { connections: cpuConcurrency }),
  };
}

const quantile = (sorted, q) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function get(pool, path) {
  const res = await pool.request({ method: 'GET', path });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET ${path}: ${res.statusCode} ${text}`);
  return text;
}

async function round(server) {
  const loadAverage = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  await get(server.cheapPool, '/stats'); // resets the server's figures
  const end = performance.now() + durationMs;
  let cpuDone = 0;
  const cpuLoop = async () => {
    while (performance.now() < end) {
      await get(server.cpuPool, `/cpu?ms=${cpuMs}`);
      cpuDone++;
    }
  };
  const cpu = Array.from({ length: server.cpu ? cpuConcurrency : 0 }, cpuLoop);
  const latencies = [];
  const lateness = [];
  const cheap = [];
  const start = performance.now();
  for (let i = 0; ; i++) {
    const due = start + i * intervalMs;
    if (due >= end) break;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const sent = performance.now();
    lateness.push(sent - due);
    cheap.push(
      get(server.cheapPool, '/cheap').then((body) => {
        if (body !== '{"ok":true}') throw new Error(`/cheap answered ${body}`);
        latencies.push(performance.now() - sent);
      }),
    );
  }
  await Promise.all([...cheap, ...cpu]);
  const seen = JSON.parse(await get(server.cheapPool, '/stats'));
  const sorted = latencies.sort((a, b) => a - b);
  const late = lateness.sort((a, b) => a - b);
  return {
    setup: server.name,
    loadAverage,
    cheapCalls: sorted.length,
    cpuDone,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted[sorted.length - 1],
    sendLateP99: quantile(late, 0.99),
    ...seen,
  };
}

const setups = values.setups.split(',').map(parseSetup);
const servers = [];
const results = [];
const f = (x) => (x === undefined ? '–' : x.toFixed(1));
try {
  for (const setup of setups) servers.push(await startServer(setup));
  for (const server of servers) {
    await get(server.cpuPool, '/cpu?ms=1'); // the pool's first worker is up and the module loaded
    await round(server); // warm-up, not kept
  }
  console.log(
    'round setup                       load  cheap  cpu   p50 ms  p99 ms  max ms  send-late p99  loop p99/max ms  gc max ms  threads',
  );
  for (let r = 1; r <= rounds; r++) {
    for (const server of servers) {
      const x = await round(server);
      results.push({ round: r, ...x });
      console.log(
        `${String(r).padStart(5)} ${x.setup.padEnd(27)} ${x.loadAverage.toFixed(2).padStart(5)} ${String(x.cheapCalls).padStart(6)} ${String(x.cpuDone).padStart(4)} ` +
          `${f(x.p50).padStart(8)} ${f(x.p99).padStart(7)} ${f(x.max).padStart(7)} ${f(x.sendLateP99).padStart(14)} ` +
          `${`${f(x.loopP99Ms)}/${f(x.loopMaxMs)}`.padStart(16)} ${f(x.gcMaxMs).padStart(10)} ${String(x.threads).padStart(8)}`,
      );
    }
  }
} finally {
  for (const server of servers) {
    await server.cheapPool.close();
    await server.cpuPool.close();
    server.child.kill();
  }
}
console.log('\nsetup                       p99 ms median (min–max)   every round');
for (const setup of setups) {
  const p99s = results.filter((x) => x.setup === setup.name).map((x) => x.p99);
  console.log(
    `${setup.name.padEnd(27)} ${`${f(median(p99s))} (${f(Math.min(...p99s))}–${f(Math.max(...p99s))})`.padEnd(25)} ${p99s.map(f).join(', ')}`,
  );
}
if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
