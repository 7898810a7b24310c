#!/usr/bin/env node
/**
 * The outbound client's CPU per call as instructions (valgrind callgrind), for issue 19's
 * client targets on a shared, noisy machine where wall-clock rounds are meaningless.
 *
 * One origin runs in its own process (not counted). Each implementation of
 * scenarios/micro-client.js (bare undici `request()`, perfstack `createClient()` with every
 * protection on, `fetch()` in opossum with axios-retry-style retries) runs under
 * `valgrind --tool=callgrind --instr-atstart=no`: `--warmup` calls (JIT tier-up), then
 * instrumentation on and `--batches` batches of `--calls` calls (16 at a time), the counters
 * dumped (and zeroed) after each. Instructions per call = the median batch / its calls;
 * min–max is the spread. Calls per CPU second scale as 1 / instructions, so
 * `undici / perfstack` instructions is the throughput ratio the issue asks for (≥ 0.9), and
 * `fetch-opossum / perfstack` the one against the peer (≥ 2) — on CPU, the client's side.
 *
 * `--threads` counts each thread apart (callgrind `--separate-threads=yes`) and also reports
 * the main thread's instructions per call: the JavaScript (the client's, undici's, Node's
 * net code) and the main thread's share of GC, without V8's background compiler and
 * concurrent-marking threads, whose work lands in whichever batch they happen to run in
 * (the reason whole-process batches spread by 40 % and more).
 *
 * Usage: node benchmarks/client-instructions.js [--warmup 1500] [--calls 400] [--batches 5]
 *          [--impls undici,perfstack,fetch-opossum,undici-headers] [--threads] [--keep] [--node-flags=...]
 *
 * `--keep` leaves the callgrind dumps in place (their directory is printed) for
 * `callgrind_annotate`: which functions a batch spent its instructions in.
 *
 * `--node-flags` are given to the measured node process, e.g. `--node-flags=--single-threaded`
 * (V8 compiles and collects garbage on the main thread: tier-up no longer depends on when
 * valgrind, which runs one thread at a time, lets a background compiler run — but every major
 * GC then lands in a batch; session 6 read batch spreads of 41–126 % that way).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    warmup: { type: 'string', default: '1500' },
    calls: { type: 'string', default: '400' },
    batches: { type: 'string', default: '5' },
    impls: { type: 'string', default: 'undici,perfstack,fetch-opossum' },
    threads: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
  },
});
const SCENARIO = fileURLToPath(new URL('./scenarios/micro-client.js', import.meta.url));

const origin = spawn(
  process.execPath,
  [
    '-e',
    `const s = require('node:http').createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"ok":true}'); });
     s.keepAliveTimeout = 600000; s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const port = await new Promise((resolve) => origin.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
const url = `http://127.0.0.1:${port}`;

const instructionsIn = (file) => {
  const match = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(file, 'utf8'));
  if (!match) throw new Error(`no summary line in ${file}`);
  return Number(match[1]);
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function measure(impl) {
  const dir = mkdtempSync(join(tmpdir(), `perfstack-cg-client-${impl}-`));
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      ...(values.threads ? ['--separate-threads=yes'] : []),
      `--callgrind-out-file=${join(dir, 'callgrind.out')}`,
      process.execPath,
      ...values['node-flags'].split(' ').filter(Boolean),
      SCENARIO,
    ],
    {
      env: {
        ...process.env,
        MICRO_IMPL: impl,
        MICRO_ORIGIN: url,
        MICRO_CONTROL: 'stdin',
        MICRO_WARMUP_CALLS: values.warmup,
        MICRO_BATCH: values.calls,
        MICRO_TIMEOUT_SCALE: '100',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const expect = async (word) => {
    for (;;) {
      const { value, done } = await lines.next();
      if (done) throw new Error(`${impl}: exited before ${word}\n${stderr.slice(-2000)}`);
      if (value === word) return;
      if (value.startsWith('UNAVAILABLE')) throw new Error(`${impl}: ${value}`);
    }
  };
  const perCall = [];
  const mainPerCall = [];
  try {
    await expect('READY');
    execFileSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore' });
    for (let i = 0; i < Number(values.batches); i++) {
      const before = new Set(readdirSync(dir));
      child.stdin.write('go\n');
      await expect('DONE');
      execFileSync('callgrind_control', ['-d', String(child.pid)], { stdio: 'ignore' });
      const dumped = readdirSync(dir).filter((f) => f.startsWith('callgrind.out') && !before.has(f));
      if (dumped.length === 0 || (!values.threads && dumped.length !== 1)) {
        throw new Error(
          `${impl}: expected ${values.threads ? 'new dumps' : 'one dump'} after batch ${i + 1}, got ${dumped.length}`,
        );
      }
      let total = 0;
      for (const f of dumped) {
        const n = instructionsIn(join(dir, f));
        total += n;
        // With --separate-threads=yes the main thread's dump ends in -01.
        if (values.threads && /-0*1$/.test(f)) mainPerCall.push(n / Number(values.calls));
      }
      perCall.push(total / Number(values.calls));
    }
    child.stdin.write('exit\n');
    await new Promise((resolve) => child.once('exit', resolve));
  } finally {
    child.kill();
    if (values.keep) console.log(`${impl}: callgrind dumps kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  const mid = median(perCall);
  const main =
    mainPerCall.length === 0
      ? undefined
      : {
          perCall: median(mainPerCall),
          min: Math.min(...mainPerCall),
          max: Math.max(...mainPerCall),
          batches: mainPerCall,
        };
  return { impl, perCall: mid, min: Math.min(...perCall), max: Math.max(...perCall), batches: perCall, main };
}

const results = [];
try {
  for (const impl of values.impls.split(',')) {
    const r = await measure(impl);
    results.push(r);
    console.log(
      `${impl.padEnd(14)} ${Math.round(r.perCall).toLocaleString('en-US')} instructions/call ` +
        `(min ${Math.round(r.min).toLocaleString('en-US')}, max ${Math.round(r.max).toLocaleString('en-US')}, ` +
        `spread ${(((r.max - r.min) / r.perCall) * 100).toFixed(1)} %)`,
    );
    if (r.main) {
      console.log(
        `${''.padEnd(14)} main thread ${Math.round(r.main.perCall).toLocaleString('en-US')} instructions/call ` +
          `(min ${Math.round(r.main.min).toLocaleString('en-US')}, max ${Math.round(r.main.max).toLocaleString('en-US')}, ` +
          `spread ${(((r.main.max - r.main.min) / r.main.perCall) * 100).toFixed(1)} %)`,
      );
    }
  }
} finally {
  origin.kill();
}
const ratios = (label, by) => {
  if (by.perfstack && by['undici-headers'])
    console.log(
      `${label}: perfstack / undici-headers = ${(by['undici-headers'] / by.perfstack).toFixed(2)}x (the same two headers sent)`,
    );
  if (by.perfstack && by.undici)
    console.log(`${label}: perfstack / undici = ${(by.undici / by.perfstack).toFixed(2)}x (target ≥ 0.9)`);
  if (by.perfstack && by['fetch-opossum'])
    console.log(
      `${label}: perfstack / fetch-opossum = ${(by['fetch-opossum'] / by.perfstack).toFixed(2)}x (target ≥ 2)`,
    );
};
ratios('calls per CPU', Object.fromEntries(results.map((r) => [r.impl, r.perCall])));
if (values.threads) {
  ratios('calls per CPU, main thread', Object.fromEntries(results.map((r) => [r.impl, r.main?.perCall])));
}
console.log(`RESULT ${JSON.stringify(results)}`);
