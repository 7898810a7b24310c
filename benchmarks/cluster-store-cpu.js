#!/usr/bin/env node
/**
 * What the cluster rate-limit store costs in native CPU, per request, in the primary and in
 * the worker (issue 16, leased quota): stack-cluster-1 (leases, the default), its
 * `-nolease` form (every decision in the primary) and its `-memory` form (the worker limits
 * on its own), each started afresh, warmed with 4,000 requests, then 16,000 requests over 8
 * keep-alive connections (Node's http client, not counted); the primary's CPU and its
 * worker's from /proc. Rounds interleaved (lease, nolease, memory, lease, ...); prints each
 * round and the medians (min–max). CPU time, unlike instructions, grows with the machine's
 * load: read the three side by side, never one alone.
 *
 *   node benchmarks/cluster-store-cpu.js [rounds, default 3]
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const variants = {
  lease: {},
  nolease: { BENCH_RATE_LIMIT_LEASE: 'off' },
  memory: { BENCH_RATE_LIMIT_STORE: 'memory' },
};
const stat = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) * 10 };
};
const children = (pid) =>
  readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => {
      try {
        return stat(p).ppid === pid;
      } catch {
        return false;
      }
    });
async function once(name) {
  const env = {
    BENCH_LOG_FILE: join(tmpdir(), 'cluster-store-cpu.log'),
    ...process.env,
    CLUSTER_WORKERS: '1',
    ...variants[name],
  };
  delete env.REDIS_URL;
  const p = spawn(process.execPath, [new URL('./scenarios/perfstack-cluster.js', import.meta.url).pathname], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((r) =>
    p.stdout.on('data', (d) => {
      const m = /READY (\d+)/.exec(String(d));
      if (m) r(Number(m[1]));
    }),
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const get = () =>
    new Promise((r, j) =>
      http
        .get({ port, host: '127.0.0.1', path: '/products', agent }, (res) => {
          res.resume();
          res.on('end', r);
        })
        .on('error', j),
    );
  const run = (n) =>
    Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < n / 8; i++) await get();
      }),
    );
  await run(4000);
  const [w] = children(p.pid);
  const p0 = stat(p.pid).cpu,
    w0 = stat(w).cpu,
    t0 = performance.now();
  const N = 16000;
  await run(N);
  const p1 = stat(p.pid).cpu,
    w1 = stat(w).cpu,
    t1 = performance.now();
  p.kill('SIGTERM');
  await new Promise((r) => p.once('exit', r));
  agent.destroy();
  return { primary: ((p1 - p0) * 1000) / N, worker: ((w1 - w0) * 1000) / N, rps: N / ((t1 - t0) / 1000) };
}
const out = { lease: [], nolease: [], memory: [] };
for (let round = 0; round < Number(process.argv[2] ?? 3); round++)
  for (const name of Object.keys(out)) {
    const r = await once(name);
    out[name].push(r);
    console.log(round, name, JSON.stringify(r));
  }
const med = (a) => {
  a = [...a].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};
for (const [name, rs] of Object.entries(out)) {
  const f = (k) =>
    `${med(rs.map((r) => r[k])).toFixed(1)} (${Math.min(...rs.map((r) => r[k])).toFixed(1)}–${Math.max(...rs.map((r) => r[k])).toFixed(1)})`;
  console.log(`| ${name} | ${f('primary')} | ${f('worker')} |`);
}
