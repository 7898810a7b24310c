/**
 * Starts a scenario in its own child process (pinned to a core with taskset when
 * present), waits for its READY line, and reads its CPU time and peak RSS from /proc.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

const TASKSET = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
const CLK_TCK = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const value = Number(out.stdout?.trim());
  return Number.isFinite(value) && value > 0 ? value : 100;
})();

export const hasTaskset = TASKSET;
export const clockTicksPerSecond = CLK_TCK;

/** Pins this process (all threads) to `core`, so an in-process load generator stays there. */
export function pinSelf(core) {
  if (!TASKSET) return false;
  return spawnSync('taskset', ['-a', '-cp', String(core), String(process.pid)], { stdio: 'ignore' }).status === 0;
}

/** A command line, prefixed with `taskset -c <core>` when taskset exists and `core` is set. */
export function pinned(core, command, args) {
  if (core === undefined || core === null || !TASKSET) return { command, args };
  return { command: 'taskset', args: ['-c', String(core), command, ...args] };
}

/** Finds a free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** CPU time (user + system, all threads) of `pid` in microseconds, or undefined off Linux. */
export function cpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1e6) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (µs) of the processes whose parent is `pid` (a node:cluster primary's workers),
 * read from /proc; undefined when /proc cannot be read.
 */
export function childrenCpuMicros(pid) {
  try {
    let total = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== pid) continue;
      total += ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
    }
    return total;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (µs) of this process's children that have exited and been waited for (cutime +
 * cstime): around one load-generator run, what the load generator itself took.
 */
export function reapedChildrenCpuMicros() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[13]) + Number(fields[14])) * 1e6) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/**
 * Time one core spent running tasks (user, nice, system, steal) in microseconds, from
 * /proc/stat. Compared with the server's own CPU time it tells how much of the server's
 * core other processes took during a round. irq and softirq are left out: loopback
 * networking for the server's own requests is accounted there, not to any process.
 */
export function coreBusyMicros(core) {
  if (core === undefined || core === null) return undefined;
  try {
    const line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`cpu${core} `));
    if (!line) return undefined;
    // Fields: user nice system idle iowait irq softirq steal ...
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = fields[0] + fields[1] + fields[2] + fields[7];
    return (busy * 1e6) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Peak resident set size (VmHWM) of `pid` in bytes, or undefined. */
export function peakRss(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts `file` with `env` and resolves once it prints `READY <port>`, under `launcher`
 * when one is given.
 * Resolves `{ unavailable: reason }` when it prints `UNAVAILABLE <reason>` and exits 3.
 * @returns {Promise<{ pid: number, port: number, url: string, stop(): Promise<void>, stderr(): string } | { unavailable: string }>}
 */
export async function startServer({ file, env, core, nodeArgs = [], launcher = [], timeoutMs = 20_000 }) {
  const port = await freePort();
  // `launcher`: a command the server runs under (valgrind for instructions.js), e.g.
  // ['valgrind', '--tool=callgrind', ...]; node and its arguments follow it.
  const [first, ...rest] = [...launcher, process.execPath, ...nodeArgs, file];
  const { command, args } = pinned(core, first, rest);
  const child = spawn(command, args, {
    env: { ...process.env, ...env, PORT: String(port), NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no READY within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const readyMatch = /^READY (\d+)$/m.exec(stdout);
      if (readyMatch) {
        clearTimeout(timer);
        resolve({ port: Number(readyMatch[1]) });
        return;
      }
      const unavailableMatch = /^UNAVAILABLE (.*)$/m.exec(stdout);
      if (unavailableMatch) {
        clearTimeout(timer);
        resolve({ unavailable: unavailableMatch[1] });
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      const unavailableMatch = /^UNAVAILABLE (.*)$/m.exec(stdout);
      if (unavailableMatch) resolve({ unavailable: unavailableMatch[1] });
      else reject(new Error(`exited (code ${code}, signal ${signal}) before READY\n${stderr.trim()}`));
    });
  });
  if (ready.unavailable) {
    child.kill('SIGKILL');
    return { unavailable: ready.unavailable };
  }
  // Keep draining stdout so a chatty server never blocks on a full pipe.
  child.stdout.resume();
  return {
    pid: child.pid,
    port: ready.port,
    url: `http://127.0.0.1:${ready.port}`,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Runs `file` to completion (micro-benchmarks) and returns the JSON it prints on its
 * `RESULT {...}` line, or `{ unavailable }`.
 */
export function runToCompletion({ file, env, core, timeoutMs = 120_000 }) {
  const { command, args } = pinned(core, process.execPath, [file]);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    // 'close', not 'exit': only then has all of the child's output been read.
    child.once('close', (code) => {
      clearTimeout(timer);
      const unavailableMatch = /^UNAVAILABLE (.*)$/m.exec(stdout);
      if (unavailableMatch) return resolve({ unavailable: unavailableMatch[1] });
      const resultMatch = /^RESULT (.*)$/m.exec(stdout);
      if (code === 0 && resultMatch) return resolve(JSON.parse(resultMatch[1]));
      reject(new Error(`exited with code ${code}\n${stderr.trim() || stdout.trim()}`));
    });
  });
}
