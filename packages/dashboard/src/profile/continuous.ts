/**
 * Continuous profiling (opt-in, `profiling: { continuous }`): a CPU profile of `duration`
 * every `every` (10 s every 5 minutes by default: a 3.3 % duty cycle), kept in a bounded
 * ring in memory and, with Redis, for the fleet. A period in which another profiling
 * operation holds the process-wide lock (a manual profile, a heap snapshot) is skipped, and
 * while a continuous recording runs a manual one gets the usual 429.
 *
 * Routes (GET, behind the dashboard's access check): `/api/profiles` (the listing, every
 * instance's with Redis), `/api/profiles/<id>` (summary and flame graph;
 * `?format=cpuprofile` → the file), `/api/profiles/diff?before=<id>&after=<id>`.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpProblemError, type OnceLogger, type SharedRedis } from '@perfstack/core';
import { isProfilerBusyError, type ProfileKind } from '../errors.js';
import type { ContinuousProfilingConfig } from '../options.js';
import { sendJson } from '../respond.js';
import { type CpuProfileSummary, summarizeCpuProfile } from './cpu.js';
import { diffProfiles, functionTable } from './diff.js';
import { FleetProfileStore, PROFILE_ID } from './fleet-store.js';
import { sendDownload, stamp } from './handlers.js';
import { acquireProfileLock } from './lock.js';
import { type ProfileEntry, ProfileRing, type StoredProfile } from './ring.js';

/** `GET /api/profiles`. */
export interface ContinuousProfilesReport {
  readonly enabled: boolean;
  readonly instanceId?: string;
  readonly everyMs?: number;
  readonly durationMs?: number;
  readonly samplingIntervalUs?: number;
  /** `durationMs / everyMs`: the share of the time the profiler runs. */
  readonly dutyCycle?: number;
  readonly keep?: number;
  readonly maxBytes?: number;
  /** Bytes the in-memory ring holds now. */
  readonly bytes?: number;
  readonly recorded?: number;
  /** Periods skipped because another profiling operation was running. */
  readonly skipped?: number;
  readonly failed?: number;
  readonly lastSkipped?: { readonly at: number; readonly running: ProfileKind } | null;
  /** When the next recording starts (ms since the epoch), `null` when stopped. */
  readonly nextAt?: number | null;
  readonly running?: boolean;
  /** Newest first: this instance's ring and, with Redis, every instance's. */
  readonly profiles: readonly ProfileEntry[];
}

/** What one period did. */
export type PeriodOutcome = 'recorded' | 'skipped' | 'failed' | 'closed';

const bad = (detail: string) => new HttpProblemError({ code: 'BAD_REQUEST', detail });
const missing = (id: string) =>
  new HttpProblemError({
    code: 'NOT_FOUND',
    detail: `No continuous profile "${id}" (dropped from the ring, or expired).`,
  });

/** Records on a schedule; serves the listing, the profiles and their diffs. */
export class ContinuousProfiler {
  readonly #config: ContinuousProfilingConfig;
  readonly #instanceId: string;
  readonly #log: OnceLogger;
  readonly #ring: ProfileRing;
  readonly #fleet: FleetProfileStore | undefined;
  #timer: NodeJS.Timeout | undefined;
  #nextAt: number | null = null;
  #controller: AbortController | undefined;
  #current: Promise<PeriodOutcome> | undefined;
  #closed = false;
  #recorded = 0;
  #skipped = 0;
  #failed = 0;
  #lastSkipped: { at: number; running: ProfileKind } | null = null;

  constructor(options: {
    config: ContinuousProfilingConfig;
    instanceId: string;
    log: OnceLogger;
    redis: SharedRedis | undefined;
  }) {
    this.#config = options.config;
    this.#instanceId = options.instanceId;
    this.#log = options.log;
    this.#ring = new ProfileRing(options.config.keep, options.config.maxBytes);
    this.#fleet =
      options.redis === undefined
        ? undefined
        : new FleetProfileStore({
            redis: options.redis,
            keep: options.config.keep,
            ttl: options.config.redisTtl,
            log: options.log,
          });
  }

  /** Starts the schedule: the first recording one `every` from now. */
  start(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#schedule(Date.now() + this.#config.every);
  }

  #schedule(at: number): void {
    if (this.#closed) return;
    this.#nextAt = at;
    this.#timer = setTimeout(
      () => {
        const started = Date.now();
        this.#timer = undefined;
        const next = () => this.#schedule(started + this.#config.every);
        this.runOnce().then(next, next);
      },
      Math.max(0, at - Date.now()),
    );
    this.#timer.unref();
  }

  /**
   * Runs one period now: records unless another profiling operation holds the lock.
   *
   * @returns what the period did; resolves once the profile is in the ring (and written to Redis)
   */
  runOnce(): Promise<PeriodOutcome> {
    const run = this.#period();
    this.#current = run;
    return run;
  }

  async #period(): Promise<PeriodOutcome> {
    if (this.#closed) return 'closed';
    const { duration, samplingIntervalUs } = this.#config;
    let release: () => void;
    try {
      release = acquireProfileLock('continuous-cpu', duration);
    } catch (error) {
      if (!isProfilerBusyError(error)) throw error;
      this.#skipped++;
      this.#lastSkipped = { at: Date.now(), running: error.running };
      return 'skipped';
    }
    const controller = new AbortController();
    this.#controller = controller;
    let profile: Awaited<ReturnType<ContinuousProfilingConfig['record']>>;
    try {
      profile = await this.#config.record({ seconds: duration / 1000, samplingIntervalUs, signal: controller.signal });
    } catch (error) {
      this.#failed++;
      this.#log.warnOnce('DASHBOARD_CONTINUOUS_PROFILE_FAILED', 'a continuous CPU profile failed', {
        error: error instanceof Error ? error.message : String(error),
      });
      return 'failed';
    } finally {
      release();
      this.#controller = undefined;
    }
    if (this.#closed) return 'closed';
    const at = Date.now();
    const summary = summarizeCpuProfile(profile, {
      at,
      seconds: duration / 1000,
      samplingIntervalUs,
      aborted: controller.signal.aborted,
    });
    const profileJson = JSON.stringify(profile);
    const stored = this.#ring.push({
      entry: {
        id: `p-${at.toString(36)}-${randomBytes(3).toString('hex')}`,
        instanceId: this.#instanceId,
        at,
        durationMs: summary.durationMs,
        samplingIntervalUs,
        sampleCount: summary.sampleCount,
        profileBytes: Buffer.byteLength(profileJson),
        hasProfile: true,
        top: summary.top.filter((f) => !f.functionName.startsWith('(')).slice(0, 3),
      },
      summary,
      table: functionTable(profile),
      profileJson,
    });
    this.#recorded++;
    this.#log.reset('DASHBOARD_CONTINUOUS_PROFILE_FAILED');
    await this.#fleet?.write(stored);
    return 'recorded';
  }

  /** The newest profile of this instance (the report links slow routes to its hottest functions). */
  latest(): { readonly id: string; readonly summary: CpuProfileSummary } | undefined {
    const latest = this.#ring.latest;
    return latest === undefined ? undefined : { id: latest.entry.id, summary: latest.summary };
  }

  /** The listing: this instance's ring, and every instance's with Redis. */
  async report(): Promise<ContinuousProfilesReport> {
    const c = this.#config;
    // This instance's entries first (newest first), then the fleet's; the sort below is stable,
    // so profiles that ended in the same millisecond keep that order.
    const byId = new Map<string, ProfileEntry>();
    for (const entry of this.#ring.entries()) byId.set(entry.id, entry);
    for (const entry of await (this.#fleet?.list() ?? Promise.resolve([])))
      if (!byId.has(entry.id)) byId.set(entry.id, entry);
    return {
      enabled: true,
      instanceId: this.#instanceId,
      everyMs: c.every,
      durationMs: c.duration,
      samplingIntervalUs: c.samplingIntervalUs,
      dutyCycle: Math.round((c.duration / c.every) * 1e6) / 1e6,
      keep: c.keep,
      maxBytes: c.maxBytes,
      bytes: this.#ring.bytes,
      recorded: this.#recorded,
      skipped: this.#skipped,
      failed: this.#failed,
      lastSkipped: this.#lastSkipped,
      nextAt: this.#nextAt,
      running: this.#controller !== undefined,
      profiles: [...byId.values()].sort((a, b) => b.at - a.at),
    };
  }

  async #find(id: string): Promise<StoredProfile> {
    if (!PROFILE_ID.test(id)) throw bad(`"${id.slice(0, 40)}" is not a profile id (p-<time>-<hex>).`);
    const found = this.#ring.get(id) ?? (await this.#fleet?.get(id));
    if (found === undefined) throw missing(id);
    return found;
  }

  /** Serves `GET /api/profiles[/<id>|/diff]` (`path` is relative to the dashboard). */
  async serve(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    if (path === '/api/profiles') {
      sendJson(req, res, 200, await this.report());
      return;
    }
    if (path === '/api/profiles/diff') {
      const before = query.get('before');
      const after = query.get('after');
      if (before === null || after === null) throw bad('Name both profiles: ?before=<id>&after=<id>.');
      const limitRaw = query.get('limit') ?? '100';
      if (!/^\d{1,4}$/.test(limitRaw) || Number(limitRaw) < 1 || Number(limitRaw) > 1000) {
        throw bad('"limit" must be an integer from 1 to 1000.');
      }
      const [b, a] = await Promise.all([this.#find(before), this.#find(after)]);
      const side = (p: StoredProfile) => ({ id: p.entry.id, at: p.entry.at, table: p.table });
      sendJson(req, res, 200, {
        instances: { before: b.entry.instanceId, after: a.entry.instanceId },
        ...diffProfiles(side(b), side(a), Number(limitRaw)),
      });
      return;
    }
    const id = path.slice('/api/profiles/'.length);
    const format = query.get('format') ?? 'summary';
    if (format !== 'summary' && format !== 'cpuprofile') throw bad('"format" must be one of summary, cpuprofile.');
    const found = await this.#find(id);
    if (format === 'summary') {
      sendJson(req, res, 200, { ...found.entry, summary: found.summary });
      return;
    }
    if (found.profileJson === null) {
      throw new HttpProblemError({
        code: 'NOT_FOUND',
        detail: `Profile "${id}" was bigger than the ring's maxBytes: only its summary was kept.`,
      });
    }
    const instance = found.entry.instanceId.replace(/[^\w.-]/g, '_');
    sendDownload(req, res, `cpu-${instance}-${stamp(found.entry.at)}.cpuprofile`, found.profileJson);
  }

  /** Stops the schedule and a running recording; resolves once the period in progress is done. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextAt = null;
    this.#controller?.abort();
    await this.#current?.catch(() => undefined);
  }
}
