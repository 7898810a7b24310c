/**
 * Continuous profiles in Redis, for the fleet: every instance writes its own, any instance
 * lists and reads them all. Bounded three ways — `keep` profiles per instance, each at most
 * the ring's `maxBytes` before compression, and every key expiring after `redisTtl`
 * (refreshed on each write), so a stopped instance leaves nothing behind for long.
 *
 * Keys, under the shared connection's prefix:
 * - `dashboard:profiles:instances` — sorted set, instance id → time of its last write;
 * - `dashboard:profiles:list:<instance>` — list of listing entries (JSON), newest first,
 *   trimmed to `keep`;
 * - `dashboard:profiles:data:<id>` — the summary, function table and `.cpuprofile`, as
 *   gzip'd JSON in base64 (a profile compresses about tenfold).
 *
 * What another process wrote is validated before use; Redis being down or slow never fails a
 * request (the listing is then this instance's ring) and is logged once.
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { OnceLogger, SharedRedis } from '@perfstack/core';
import type { ProfileEntry, StoredProfile } from './ring.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

const BASE = 'dashboard:profiles:';
/** Most instances listed at once. */
const MAX_INSTANCES = 256;
/** An id as {@link ProfileEntry.id} describes it. */
export const PROFILE_ID = /^p-[0-9a-z]{1,12}-[0-9a-f]{6}$/;

/** True when `value` has the shape of a listing entry (another process wrote it). */
export function isProfileEntry(value: unknown): value is ProfileEntry {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === 'string' &&
    PROFILE_ID.test(v.id) &&
    typeof v.instanceId === 'string' &&
    v.instanceId.length <= 100 &&
    [v.at, v.durationMs, v.samplingIntervalUs, v.sampleCount, v.profileBytes].every(Number.isFinite) &&
    typeof v.hasProfile === 'boolean' &&
    Array.isArray(v.top)
  );
}

function isStored(value: unknown): value is StoredProfile {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const table = v.table as Record<string, unknown> | null;
  return (
    isProfileEntry(v.entry) &&
    typeof v.summary === 'object' &&
    v.summary !== null &&
    typeof table === 'object' &&
    table !== null &&
    Number.isFinite(table.totalUs) &&
    Array.isArray(table.functions) &&
    (v.profileJson === null || typeof v.profileJson === 'string')
  );
}

/** Reads and writes continuous profiles in Redis. */
export class FleetProfileStore {
  readonly #redis: SharedRedis;
  readonly #keep: number;
  readonly #ttl: number;
  readonly #log: OnceLogger;

  constructor(options: { redis: SharedRedis; keep: number; ttl: number; log: OnceLogger }) {
    this.#redis = options.redis;
    this.#keep = options.keep;
    this.#ttl = options.ttl;
    this.#log = options.log;
  }

  #key(rest: string): string {
    return `${this.#redis.keyPrefix}${BASE}${rest}`;
  }

  /** Writes one profile (and drops this instance's profiles beyond `keep`). Never throws. */
  async write(profile: StoredProfile): Promise<void> {
    const redis = this.#redis;
    if (!redis.isUp) return;
    const { id, instanceId } = profile.entry;
    const list = this.#key(`list:${instanceId}`);
    const index = this.#key('instances');
    const ttl = { expiration: { type: 'PX', value: this.#ttl } } as const;
    try {
      const data = (await gzipAsync(JSON.stringify(profile))).toString('base64');
      await redis.run((c) => c.set(this.#key(`data:${id}`), data, ttl));
      await redis.run((c) => c.lPush(list, JSON.stringify(profile.entry)));
      const dropped = await redis.run((c) => c.lRange(list, this.#keep, -1));
      const ids = dropped.map((raw) => idOf(String(raw))).filter((d): d is string => d !== undefined);
      if (ids.length > 0) await redis.run((c) => c.del(ids.map((d) => this.#key(`data:${d}`))));
      await redis.run((c) => c.lTrim(list, 0, this.#keep - 1));
      await redis.run((c) => c.pExpire(list, this.#ttl));
      const now = Date.now();
      await redis.run((c) => c.zAdd(index, { score: now, value: instanceId }));
      await redis.run((c) => c.zRemRangeByScore(index, '-inf', now - this.#ttl));
      await redis.run((c) => c.pExpire(index, this.#ttl));
      this.#log.reset('DASHBOARD_PROFILES_WRITE');
    } catch (error) {
      this.#log.warnOnce('DASHBOARD_PROFILES_WRITE', 'could not write a continuous profile to Redis', {
        error: String(error),
      });
    }
  }

  /** Every instance's listing entries (unsorted); `[]` when Redis fails. */
  async list(): Promise<ProfileEntry[]> {
    const redis = this.#redis;
    if (!redis.isUp) return [];
    try {
      const since = Date.now() - this.#ttl;
      const instances = await redis.run((c) =>
        c.zRange(this.#key('instances'), '+inf', since, {
          BY: 'SCORE',
          REV: true,
          LIMIT: { offset: 0, count: MAX_INSTANCES },
        }),
      );
      const lists = await Promise.all(
        instances.map((instance) => redis.run((c) => c.lRange(this.#key(`list:${instance}`), 0, this.#keep - 1))),
      );
      const out: ProfileEntry[] = [];
      for (const raw of lists.flat()) {
        const entry = parse(String(raw));
        if (isProfileEntry(entry)) out.push(entry);
      }
      this.#log.reset('DASHBOARD_PROFILES_READ');
      return out;
    } catch (error) {
      this.#log.warnOnce('DASHBOARD_PROFILES_READ', 'could not list the fleet’s continuous profiles in Redis', {
        error: String(error),
      });
      return [];
    }
  }

  /** One profile by id, or `undefined` (unknown, expired, unreadable, or Redis down). */
  async get(id: string): Promise<StoredProfile | undefined> {
    const redis = this.#redis;
    if (!redis.isUp || !PROFILE_ID.test(id)) return undefined;
    try {
      const data = await redis.run((c) => c.get(this.#key(`data:${id}`)));
      if (typeof data !== 'string') return undefined;
      const value = parse((await gunzipAsync(Buffer.from(data, 'base64'))).toString('utf8'));
      return isStored(value) && value.entry.id === id ? value : undefined;
    } catch (error) {
      this.#log.warnOnce('DASHBOARD_PROFILES_READ', 'could not read a continuous profile from Redis', {
        error: String(error),
      });
      return undefined;
    }
  }
}

function parse(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function idOf(raw: string): string | undefined {
  const entry = parse(raw) as { id?: unknown } | undefined;
  return typeof entry?.id === 'string' && PROFILE_ID.test(entry.id) ? entry.id : undefined;
}
