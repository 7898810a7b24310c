/**
 * The profiling routes: `POST /api/profile/cpu`, `/api/profile/heap-snapshot`,
 * `/api/profile/heap-sampling`, and `GET /api/profile` (the last summaries, kept in memory for
 * the page). The caller has already passed the access and CSRF checks; this adds the
 * process-wide one-at-a-time lock, the memory check, and aborts a recording whose client
 * went away or whose dashboard closed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpProblemError, type OnceLogger } from '@perfstack/core';
import type { ProfileKind } from '../errors.js';
import type { ProfilingConfig } from '../options.js';
import { sendBody, sendJson, setCommonHeaders } from '../respond.js';
import { type CpuProfileSummary, recordCpuProfile, summarizeCpuProfile } from './cpu.js';
import {
  checkHeadroom,
  type HeapSamplingSummary,
  recordHeapSampling,
  streamHeapSnapshot,
  summarizeHeapSampling,
} from './heap.js';
import { acquireProfileLock, runningProfile } from './lock.js';

/** `GET /api/profile`. */
export interface LastProfiles {
  /** The operation running now in this process, if any. */
  readonly running: ProfileKind | null;
  readonly cpu: CpuProfileSummary | null;
  readonly heapSampling: HeapSamplingSummary | null;
  readonly limits: { readonly defaultSeconds: number; readonly maxSeconds: number };
}

const bad = (detail: string) => new HttpProblemError({ code: 'BAD_REQUEST', detail });

/** A file name stamp: `2026-11-22T17-32-36Z` (also used by continuous profiling). */
export function stamp(at: number): string {
  return new Date(at)
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(':', '-');
}

export function sendDownload(req: IncomingMessage, res: ServerResponse, name: string, body: string): void {
  res.setHeader('Content-Disposition', `attachment; filename="${name}"`);
  sendBody(req, res, 200, 'application/json', body);
}

/** The profiling operations of one dashboard. */
export class Profiling {
  readonly #config: ProfilingConfig;
  readonly #log: OnceLogger;
  readonly #running = new Set<AbortController>();
  #cpu: CpuProfileSummary | null = null;
  #heapSampling: HeapSamplingSummary | null = null;

  constructor(config: ProfilingConfig, log: OnceLogger) {
    this.#config = config;
    this.#log = log;
  }

  /** The last summaries. */
  last(): LastProfiles {
    return {
      running: runningProfile() ?? null,
      cpu: this.#cpu,
      heapSampling: this.#heapSampling,
      limits: { defaultSeconds: this.#config.defaultSeconds, maxSeconds: this.#config.maxSeconds },
    };
  }

  /** `?seconds=N`: an integer from 1 to `maxSeconds`, `defaultSeconds` when absent. */
  #seconds(query: URLSearchParams): number {
    const raw = query.get('seconds');
    if (raw === null) return this.#config.defaultSeconds;
    const max = this.#config.maxSeconds;
    if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
      throw bad(`"seconds" must be an integer from 1 to ${max}.`);
    }
    return Number(raw);
  }

  #format<F extends string>(query: URLSearchParams, formats: readonly F[]): F {
    const raw = query.get('format') ?? formats[0]!;
    if (!(formats as readonly string[]).includes(raw)) throw bad(`"format" must be one of ${formats.join(', ')}.`);
    return raw as F;
  }

  /** Runs `work` under the lock with an abort signal tied to the client and to `close()`. */
  async #exclusive<T>(
    kind: ProfileKind,
    expectedMs: number,
    res: ServerResponse,
    work: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const release = acquireProfileLock(kind, expectedMs);
    const controller = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) controller.abort();
    };
    res.once('close', onClose);
    this.#running.add(controller);
    try {
      return await work(controller.signal);
    } finally {
      this.#running.delete(controller);
      res.off('close', onClose);
      release();
    }
  }

  /** `POST /api/profile/cpu?seconds=N[&format=cpuprofile|summary]`. */
  async cpu(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const seconds = this.#seconds(query);
    const format = this.#format(query, ['cpuprofile', 'summary'] as const);
    const intervalUs = this.#config.samplingIntervalUs;
    let aborted = false;
    const profile = await this.#exclusive('cpu', seconds * 1000, res, async (signal) => {
      const result = await recordCpuProfile({ seconds, samplingIntervalUs: intervalUs, signal });
      aborted = signal.aborted;
      return result;
    });
    const at = Date.now();
    this.#cpu = summarizeCpuProfile(profile, { at, seconds, samplingIntervalUs: intervalUs, aborted });
    if (res.destroyed) return;
    if (format === 'summary') sendJson(req, res, 200, this.#cpu);
    else sendDownload(req, res, `cpu-${stamp(at)}.cpuprofile`, JSON.stringify(profile));
  }

  /** `POST /api/profile/heap-sampling?seconds=N[&format=summary|heapprofile]`. */
  async heapSampling(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const seconds = this.#seconds(query);
    const format = this.#format(query, ['summary', 'heapprofile'] as const);
    checkHeadroom('heap-sampling', this.#config);
    const interval = this.#config.heapSamplingInterval;
    let aborted = false;
    const profile = await this.#exclusive('heap-sampling', seconds * 1000, res, async (signal) => {
      const result = await recordHeapSampling({ seconds, samplingIntervalBytes: interval, signal });
      aborted = signal.aborted;
      return result;
    });
    const at = Date.now();
    this.#heapSampling = summarizeHeapSampling(profile, { at, seconds, samplingIntervalBytes: interval, aborted });
    if (res.destroyed) return;
    if (format === 'summary') sendJson(req, res, 200, this.#heapSampling);
    else sendDownload(req, res, `heap-${stamp(at)}.heapprofile`, JSON.stringify(profile));
  }

  /** `POST /api/profile/heap-snapshot`: the `.heapsnapshot`, streamed as V8 writes it. */
  async heapSnapshot(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    checkHeadroom('heap-snapshot', this.#config);
    await this.#exclusive('heap-snapshot', 30_000, res, async () => {
      setCommonHeaders(res);
      res.statusCode = 200;
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Content-Disposition', `attachment; filename="heap-${stamp(Date.now())}.heapsnapshot"`);
      try {
        await streamHeapSnapshot((chunk) => {
          if (!res.destroyed) res.write(chunk);
        });
      } catch (error) {
        // The headers are out: a truncated download must not look complete.
        this.#log.errorOnce('DASHBOARD_HEAP_SNAPSHOT_FAILED', 'a heap snapshot failed midway', {
          error: error instanceof Error ? error.message : String(error),
        });
        res.destroy();
        return;
      }
      res.end();
    });
  }

  /** Ends running recordings early (their requests still get what was recorded). */
  close(): void {
    for (const controller of this.#running) controller.abort();
  }
}
