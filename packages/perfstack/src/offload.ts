/**
 * `offload(modulePath, options)`: CPU work off the event loop (issue 19, item 2). A route
 * handler that runs an exported function of `modulePath` in a worker-thread pool (piscina)
 * and sends its result, so that 200 ms of image resizing or PDF rendering no longer blocks
 * every other request.
 *
 * - The queue is bounded: when `maxQueue` tasks wait, the handler sheds with 503
 *   `OVERLOADED` problem+json and a `Retry-After` estimated from the pool's run times.
 * - Waiting tasks are ordered by `priority` (higher first, FIFO among equals).
 * - A client that goes away cancels its task: removed from the queue if it waits (the
 *   function never runs), its worker stopped and replaced if it runs (piscina's abort).
 * - `timeout` bounds wait + run → 504 `TIMEOUT`.
 * - Metrics: queue depth, threads, utilisation, wait and run time quantiles, tasks by outcome.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { availableParallelism } from 'node:os';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkOptionsObject,
  counter,
  createRegistry,
  gauge,
  histogram,
  type NextFunction,
  type OffloadPoolFigures,
  optionTypeError,
  parseDuration,
  type Registry,
  readFunction,
  readInteger,
  readString,
  type SharedContext,
  sendProblem,
} from '@perfstack/core';
import { Piscina } from 'piscina';

const PKG = 'perfstack';

/** What the worker function receives by default. */
export interface OffloadInput {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** `req.params` and `req.query` when a router set them. */
  readonly params: unknown;
  readonly query: unknown;
  /** `req.body` when a body parser set it. */
  readonly body: unknown;
}

/** Options of {@link offload}. */
export interface OffloadOptions extends SharedContext {
  /** The export to run. @default 'default' */
  readonly name?: string;
  /** Pool name in metrics. @default the module's file name */
  readonly pool?: string;
  /**
   * Worker threads at most. The default leaves the event loop's thread a core of its own:
   * with as many CPU-bound workers as cores, the thread that answers every other request
   * waits for a core (its tail latency becomes the scheduler's time slice).
   * @default availableParallelism() - 1 (at least 1)
   */
  readonly maxThreads?: number;
  /** Worker threads kept alive when idle. @default 1 */
  readonly minThreads?: number;
  /**
   * How much lower the worker threads' scheduling priority is than the process's (Unix
   * `nice`, 0–19; piscina's `niceIncrement`): when the machine has no idle core, the event
   * loop's thread is scheduled before the offloaded work, so cheap routes keep their latency
   * and the CPU work absorbs the wait. 0 keeps the workers at the process's priority.
   * @default 10
   */
  readonly niceIncrement?: number;
  /** Tasks that may wait for a thread; beyond it 503 `OVERLOADED`. @default 4 × maxThreads */
  readonly maxQueue?: number;
  /** Budget of one task, waiting included → 504 `TIMEOUT`; `false` for none. @default '30s' */
  readonly timeout?: number | string | false;
  /** Priority of a request's task: higher runs first among those waiting. @default 0 */
  readonly priority?: number | ((req: IncomingMessage) => number);
  /** The task sent to the worker (structured-cloneable). @default {@link OffloadInput} */
  readonly input?: (req: IncomingMessage) => unknown;
  /** Sends the result. @default JSON (a string as text/plain, bytes as application/octet-stream) */
  readonly respond?: (res: ServerResponse, result: unknown, req: IncomingMessage) => void;
}

/** Numbers of an offload pool: what the dashboard shows (core's contract), plus two counts. */
export interface OffloadStats extends OffloadPoolFigures {
  /** Tasks cancelled because their client went away. */
  readonly aborted: number;
  /** Tasks that ran past `timeout` (answered 504). */
  readonly timedOut: number;
}

/** The handler `offload()` returns. */
export interface OffloadHandler {
  (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void;
  stats(): OffloadStats;
  /** Stops the pool (waiting tasks are rejected). */
  close(): Promise<void>;
}

const KEYS = [
  'name',
  'pool',
  'maxThreads',
  'minThreads',
  'niceIncrement',
  'maxQueue',
  'timeout',
  'priority',
  'input',
  'respond',
  'registry',
  'redis',
  'logger',
] as const;

/**
 * Waiting tasks by priority, highest first, FIFO among equals. The queue is ours, in front of
 * piscina (which only ever gets as many tasks as it has threads): piscina 5 puts abortable
 * tasks it cannot place at once in an internal FIFO that bypasses a custom `taskQueue`, so
 * priorities and the removal of a cancelled waiting task are done here.
 */
class PriorityQueue<T> {
  readonly #levels = new Map<number, Set<T>>();
  #order: number[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(item: T, priority: number): void {
    let level = this.#levels.get(priority);
    if (level === undefined) {
      level = new Set();
      this.#levels.set(priority, level);
      this.#order = [...this.#levels.keys()].sort((a, b) => b - a);
    }
    level.add(item);
    this.#size++;
  }

  shift(): T | undefined {
    for (const priority of this.#order) {
      const level = this.#levels.get(priority) as Set<T>;
      for (const item of level) {
        level.delete(item);
        this.#size--;
        return item;
      }
    }
    return undefined;
  }

  /** Removes a waiting item; false when it is not waiting (any more). */
  remove(item: T, priority: number): boolean {
    const removed = this.#levels.get(priority)?.delete(item) ?? false;
    if (removed) this.#size--;
    return removed;
  }
}

function defaultInput(req: IncomingMessage): OffloadInput {
  const r = req as IncomingMessage & { params?: unknown; query?: unknown; body?: unknown };
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: { ...req.headers },
    params: r.params === undefined ? undefined : { ...(r.params as object) },
    query: r.query === undefined ? undefined : { ...(r.query as object) },
    body: r.body,
  };
}

function defaultRespond(res: ServerResponse, result: unknown): void {
  if (typeof result === 'string') {
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end(result);
  } else if (result instanceof Uint8Array) {
    res.setHeader('content-type', 'application/octet-stream');
    res.end(result);
  } else {
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(result ?? null));
  }
}

/**
 * Creates a route handler that runs `modulePath`'s exported function in a worker pool.
 *
 * @param modulePath an absolute path or a `file:` URL of an ES or CommonJS module; its
 *   export (`options.name`, default `default`) gets the task and returns (or resolves to)
 *   the result to send
 * @param options `maxThreads`, `maxQueue`, `timeout`, `priority`, `input`, `respond`
 * @returns the handler, with `stats()` and `close()`
 * @throws {TypeError|RangeError} on an invalid option, naming it
 * @example
 * const thumbnail = offload(new URL('./thumbnail.js', import.meta.url), { maxThreads: 2, maxQueue: 20, timeout: '5s' });
 * app.post('/thumbnail', express.json(), thumbnail);
 */
export function offload(modulePath: string | URL, options?: OffloadOptions): OffloadHandler {
  const opts = checkOptionsObject(PKG, 'offload', options, KEYS) as OffloadOptions;
  let filename: string;
  if (modulePath instanceof URL) {
    if (modulePath.protocol !== 'file:') throw optionTypeError(PKG, 'modulePath', modulePath.href, 'a file: URL');
    filename = fileURLToPath(modulePath);
  } else if (typeof modulePath === 'string' && modulePath.startsWith('file:')) {
    filename = fileURLToPath(modulePath);
  } else if (typeof modulePath === 'string' && isAbsolute(modulePath)) {
    filename = modulePath;
  } else {
    throw optionTypeError(
      PKG,
      'modulePath',
      modulePath,
      'an absolute path or a file: URL (new URL("./task.js", import.meta.url))',
    );
  }
  const name = readString(PKG, 'name', opts.name, 'default');
  const poolName = readString(PKG, 'pool', opts.pool, filename.split(/[\\/]/).pop() ?? 'offload');
  const maxThreads = readInteger(PKG, 'maxThreads', opts.maxThreads, Math.max(1, availableParallelism() - 1), 1, 1024);
  const minThreads = readInteger(PKG, 'minThreads', opts.minThreads, 1, 0, maxThreads);
  const niceIncrement = readInteger(PKG, 'niceIncrement', opts.niceIncrement, 10, 0, 19);
  const maxQueue = readInteger(PKG, 'maxQueue', opts.maxQueue, 4 * maxThreads, 0, 1_000_000);
  const timeoutMs =
    opts.timeout === false ? undefined : parseDuration(opts.timeout ?? '30s', 'timeout', { pkg: PKG, min: 1 });
  const priorityOf =
    typeof opts.priority === 'function'
      ? opts.priority
      : (
          (priority: number) => () =>
            priority
        )(readInteger(PKG, 'priority', opts.priority, 0, -1_000_000, 1_000_000));
  const toInput = readFunction(PKG, 'input', opts.input, defaultInput);
  const respond: (res: ServerResponse, result: unknown, req: IncomingMessage) => void = readFunction(
    PKG,
    'respond',
    opts.respond,
    defaultRespond,
  );
  const registry: Registry = opts.registry ?? createRegistry();

  const pool = new Piscina({
    filename,
    name,
    maxThreads,
    minThreads,
    niceIncrement,
    // Only as many tasks as threads are ever handed to piscina; room for them while threads start.
    maxQueue: maxThreads,
    recordTiming: true,
  });
  const waiting = new PriorityQueue<Entry>();
  let running = 0;
  let shed = 0;
  let aborted = 0;
  let timedOut = 0;
  const tasks = counter(registry, {
    name: 'perfstack_offload_tasks_total',
    help: 'Offloaded tasks by outcome: ok, error, shed (queue full), aborted (client gone), timeout',
    labelNames: ['pool', 'outcome'],
  });
  const waitTime = histogram(registry, {
    name: 'perfstack_offload_wait_seconds',
    help: 'Time offloaded tasks waited in the queue for a worker thread',
    labelNames: ['pool'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const stats = (): OffloadStats => {
    const { waitTime: wait, runTime } = pool.histogram;
    return {
      pool: poolName,
      threads: pool.threads.length,
      running,
      queued: waiting.size,
      maxQueue,
      utilization: pool.utilization,
      waitP50Ms: wait.p50,
      waitP99Ms: wait.p99,
      runP50Ms: runTime.p50,
      runP99Ms: runTime.p99,
      completed: pool.completed,
      shed,
      aborted,
      timedOut,
    };
  };
  const gauges = gaugesFor(registry);
  gauges.add(stats);

  /** Seconds a shed client should wait: the queue's work spread over the threads, at least 1. */
  const retryAfter = () => {
    const run = pool.histogram.runTime.p50;
    const estimate = Number.isFinite(run) && run > 0 ? (run * (waiting.size + 1)) / maxThreads / 1000 : 1;
    return Math.min(60, Math.max(1, Math.ceil(estimate)));
  };

  const start = (entry: Entry) => {
    running++;
    entry.state = 'running';
    waitTime.observe({ pool: poolName }, (performance.now() - entry.queuedAt) / 1000);
    pool.run(entry.task, { signal: entry.controller.signal }).then(
      (result: unknown) => {
        entry.done();
        entry.settle(undefined, result);
      },
      (error: unknown) => {
        entry.done();
        entry.settle(error, undefined);
      },
    );
  };
  const drain = () => {
    while (running < maxThreads && waiting.size > 0) start(waiting.shift() as Entry);
  };

  const handler = function perfstackOffload(req: IncomingMessage, res: ServerResponse, next?: NextFunction): void {
    const fail = (error: unknown, detail: string) => {
      if (next) next(error);
      else sendProblem(res, { code: 'INTERNAL_ERROR', detail }, req.method);
    };
    if (running >= maxThreads && waiting.size >= maxQueue) {
      shed++;
      tasks.inc({ pool: poolName, outcome: 'shed' });
      sendProblem(
        res,
        {
          code: 'OVERLOADED',
          detail: `the worker pool "${poolName}" is full (${maxQueue} tasks waiting); retry later`,
          headers: { 'Retry-After': retryAfter() },
        },
        req.method,
      );
      return;
    }
    let task: unknown;
    let priority: number;
    try {
      task = toInput(req);
      priority = Number(priorityOf(req)) || 0;
    } catch (error) {
      fail(error, 'the offload input could not be built');
      return;
    }
    let reason: 'client' | 'timeout' | undefined;
    let timer: NodeJS.Timeout | undefined;
    const entry: Entry = {
      task,
      state: 'waiting',
      queuedAt: performance.now(),
      controller: new AbortController(),
      done() {
        entry.state = 'done';
        clearTimeout(timer);
        res.off('close', onClose);
        running--;
        drain();
      },
      settle(error, result) {
        if (reason === 'client') {
          aborted++;
          tasks.inc({ pool: poolName, outcome: 'aborted' });
        } else if (reason === 'timeout') {
          timedOut++;
          tasks.inc({ pool: poolName, outcome: 'timeout' });
          sendProblem(
            res,
            { code: 'TIMEOUT', detail: `the offloaded task did not finish within ${timeoutMs}ms` },
            req.method,
          );
        } else if (error !== undefined) {
          tasks.inc({ pool: poolName, outcome: 'error' });
          fail(error, 'the offloaded task failed');
        } else {
          tasks.inc({ pool: poolName, outcome: 'ok' });
          if (res.writableEnded || res.destroyed) return;
          try {
            respond(res, result, req);
          } catch (thrown) {
            fail(thrown, 'the offload result could not be sent');
          }
        }
      },
    };
    /** Cancels: a waiting task leaves the queue (its function never runs); a running one is aborted (piscina stops its worker). */
    const cancel = (why: 'client' | 'timeout') => {
      if (reason !== undefined || entry.state === 'done') return;
      reason = why;
      if (entry.state === 'waiting' && waiting.remove(entry, priority)) {
        entry.state = 'done';
        clearTimeout(timer);
        res.off('close', onClose);
        entry.settle(undefined, undefined);
      } else entry.controller.abort();
    };
    const onClose = () => {
      if (!res.writableEnded) cancel('client');
    };
    res.once('close', onClose);
    if (timeoutMs !== undefined) timer = setTimeout(() => cancel('timeout'), timeoutMs).unref();
    if (running < maxThreads) start(entry);
    else waiting.push(entry, priority);
  } as OffloadHandler;
  handler.stats = stats;
  handler.close = async () => {
    gauges.delete(stats);
    await pool.destroy();
  };
  return handler;
}

/** One request's task. */
interface Entry {
  readonly task: unknown;
  state: 'waiting' | 'running' | 'done';
  readonly queuedAt: number;
  readonly controller: AbortController;
  /** The task left the pool: frees its thread and starts the next waiting task. */
  done(): void;
  /** Answers the request (or not, when its client went away). */
  settle(error: unknown, result: unknown): void;
}

/** Every pool's stats per registry, read by the gauges at scrape time. */
const pools = new WeakMap<Registry, Set<() => OffloadStats>>();

/** The stats of every open offload pool whose metrics are on `registry` (the dashboard's view). */
export function offloadPoolsOn(registry: Registry): OffloadStats[] {
  const set = pools.get(registry);
  return set === undefined ? [] : [...set].map((stats) => stats());
}

function gaugesFor(registry: Registry): Set<() => OffloadStats> {
  let set = pools.get(registry);
  if (set !== undefined) return set;
  const created = new Set<() => OffloadStats>();
  set = created;
  pools.set(registry, created);
  const each = (name: string, help: string, read: (s: OffloadStats) => number) =>
    gauge(registry, {
      name,
      help,
      labelNames: ['pool'],
      collect() {
        this.reset();
        for (const source of created) {
          const s = source();
          const value = read(s);
          this.set({ pool: s.pool }, Number.isFinite(value) ? value : 0);
        }
      },
    });
  each('perfstack_offload_queue_depth', 'Offloaded tasks waiting for a worker thread', (s) => s.queued);
  each('perfstack_offload_threads', 'Worker threads of the offload pool', (s) => s.threads);
  each('perfstack_offload_utilization', 'Share of the offload pool capacity used (0-1)', (s) => s.utilization);
  each('perfstack_offload_running', 'Offloaded tasks running now', (s) => s.running);
  each('perfstack_offload_run_p99_seconds', 'p99 run time of offloaded tasks', (s) => s.runP99Ms / 1000);
  return created;
}
