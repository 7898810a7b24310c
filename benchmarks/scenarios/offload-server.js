/**
 * The server of offload-latency.js: node:http with two routes.
 *   GET /cpu    a CPU-bound task (lib/cpu-task.js, `?ms=` of CPU time, default 200):
 *               OFFLOAD_MODE=offload runs it through perfstack's `offload()` (a piscina
 *               worker pool; OFFLOAD_THREADS and OFFLOAD_NICE override maxThreads and
 *               niceIncrement when set, else offload()'s defaults), OFFLOAD_MODE=inline
 *               runs it on the event loop;
 *   GET /cheap  a small JSON answer, at once.
 * GET /stats answers what the server saw since the last /stats: the event loop's delay
 * (p50/p99/max ms, `monitorEventLoopDelay` at 1 ms resolution), the longest GC pause, and
 * the pool's threads. Prints `READY <port>`.
 */
import { createServer } from 'node:http';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import cpuTask from '../lib/cpu-task.js';
import { requireExports } from '../lib/perfstack.js';

const mode = process.env.OFFLOAD_MODE ?? 'offload';
const TASK = new URL('../lib/cpu-task.js', import.meta.url);
const number = (name) => (process.env[name] === undefined ? undefined : Number(process.env[name]));

let cpu;
let threads = () => 0;
if (mode === 'offload') {
  const { offload } = await requireExports('perfstack', ['offload']);
  const handler = offload(TASK, {
    maxQueue: 1000,
    timeout: false,
    input: (req) => ({ ms: Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 200) }),
    ...(number('OFFLOAD_THREADS') === undefined ? {} : { maxThreads: number('OFFLOAD_THREADS') }),
    ...(number('OFFLOAD_NICE') === undefined ? {} : { niceIncrement: number('OFFLOAD_NICE') }),
  });
  cpu = handler;
  threads = () => handler.stats().threads;
} else if (mode === 'inline') {
  cpu = (req, res) => {
    const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 200);
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(cpuTask({ ms })));
  };
} else {
  throw new Error(`OFFLOAD_MODE must be offload or inline, got ${mode}`);
}

const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
let gcMaxMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMaxMs = Math.max(gcMaxMs, entry.duration);
}).observe({ entryTypes: ['gc'] });

const CHEAP = JSON.stringify({ ok: true });
const server = createServer((req, res) => {
  if (req.url === '/cheap') {
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(CHEAP);
  } else if (req.url.startsWith('/cpu')) {
    cpu(req, res);
  } else if (req.url === '/stats') {
    const stats = {
      loopP50Ms: loop.percentile(50) / 1e6,
      loopP99Ms: loop.percentile(99) / 1e6,
      loopMaxMs: loop.max / 1e6,
      gcMaxMs,
      threads: threads(),
    };
    loop.reset();
    gcMaxMs = 0;
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(stats));
  } else {
    res.statusCode = 404;
    res.end();
  }
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
