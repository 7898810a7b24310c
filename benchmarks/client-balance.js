#!/usr/bin/env node
/**
 * Load balancing of the outbound client under a skewed load (issue 19: "undici's
 * BalancedPool, or least-pending / round-robin, chosen and measured"): three local origins,
 * one of them slow (`--slow` ms per answer, the others answer at once), `--calls` calls
 * `--concurrency` at a time through
 *
 * - `perfstack`:     `createClient()` (least-pending, round-robin among ties; retries, breaker,
 *                    budget on; no hedging, so every call is one attempt),
 * - `balanced-pool`: undici's `BalancedPool` over the three origins (its weighted round-robin),
 * - `round-robin`:   one undici `Pool` per origin, taken in turn.
 *
 * Reported per implementation: the share of calls each origin answered, p50/p99 latency and
 * calls/s (wall clock: on a loaded machine read the shares and the p50s, which the slow
 * origin dominates, more than calls/s). Rounds are interleaved (A B C A B C ...); medians.
 * The origins run in another process.
 *
 * Usage: node benchmarks/client-balance.js [--slow 20] [--calls 2000] [--concurrency 16] [--rounds 3]
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { BalancedPool, Pool } from 'undici';
import { requireExports } from './lib/perfstack.js';

const { values } = parseArgs({
  options: {
    slow: { type: 'string', default: '20' },
    calls: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
  },
});
const SLOW = Number(values.slow);
const CALLS = Number(values.calls);
const CONCURRENCY = Number(values.concurrency);
const NAMES = ['a', 'b', 'slow'];

const originsProcess = spawn(
  process.execPath,
  [
    '-e',
    `const http = require('node:http');
     const names = ${JSON.stringify(NAMES)};
     let ready = 0; const ports = [];
     names.forEach((name, i) => {
       const s = http.createServer((req, res) => {
         const answer = () => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ origin: name })); };
         if (name === 'slow') setTimeout(answer, ${SLOW}); else answer();
       });
       s.keepAliveTimeout = 600000;
       s.listen(0, '127.0.0.1', () => { ports[i] = s.address().port; if (++ready === names.length) console.log(ports.join(',')); });
     });`,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const ports = await new Promise((resolve) =>
  originsProcess.stdout.once('data', (d) => resolve(String(d).trim().split(',').map(Number))),
);
const urls = ports.map((port) => `http://127.0.0.1:${port}`);

const { createClient } = await requireExports('@perfstack/circuit-breaker', ['createClient']);

/** Each implementation: a call returning the answering origin's name, and close. */
function implementations() {
  const client = createClient('balance', { origins: urls, timeout: 5000, retry: { maxAttempts: 2 } });
  const balanced = new BalancedPool(urls);
  const pools = urls.map((url) => new Pool(url, { connections: 16 }));
  let turn = 0;
  const read = async (res) => {
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    return (await res.body.json()).origin;
  };
  return {
    perfstack: { call: async () => read(await client.request({ path: '/item' })), close: () => client.close() },
    'balanced-pool': {
      call: async () => read(await balanced.request({ method: 'GET', path: '/item' })),
      close: () => balanced.close(),
    },
    'round-robin': {
      call: async () => read(await pools[turn++ % pools.length].request({ method: 'GET', path: '/item' })),
      close: () => Promise.all(pools.map((p) => p.close())),
    },
  };
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)];
};
const median = (xs) => quantile(xs, 0.5);

async function round(impl, calls) {
  const counts = Object.fromEntries(NAMES.map((n) => [n, 0]));
  const latencies = [];
  let started = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started < calls) {
        started++;
        const c0 = performance.now();
        const origin = await impl.call();
        latencies.push(performance.now() - c0);
        counts[origin]++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { counts, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), perSecond: calls / seconds };
}

const impls = implementations();
const names = Object.keys(impls);
const rounds = Object.fromEntries(names.map((n) => [n, []]));
try {
  for (const name of names) await round(impls[name], 300); // warm-up, discarded
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const name of names) rounds[name].push(await round(impls[name], CALLS));
  }
} finally {
  await Promise.all(names.map((n) => impls[n].close()));
  originsProcess.kill();
}

console.log(
  `${CALLS} calls, ${CONCURRENCY} at a time, origins a and b answer at once, "slow" after ${SLOW} ms; ` +
    `medians of ${values.rounds} interleaved rounds`,
);
console.log('| implementation | share a | share b | share slow | p50 ms | p99 ms | calls/s |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const name of names) {
  const rs = rounds[name];
  const share = (n) => `${((median(rs.map((r) => r.counts[n])) / CALLS) * 100).toFixed(1)} %`;
  console.log(
    `| ${name} | ${share('a')} | ${share('b')} | ${share('slow')} | ${median(rs.map((r) => r.p50)).toFixed(1)} | ` +
      `${median(rs.map((r) => r.p99)).toFixed(1)} | ${Math.round(median(rs.map((r) => r.perSecond)))} |`,
  );
}
console.log(`RESULT ${JSON.stringify(rounds)}`);
