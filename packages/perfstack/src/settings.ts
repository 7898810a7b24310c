/**
 * `stack.settings`: the layers' tunable options, read and changed at runtime.
 *
 * One table (below) lists each tunable: its dotted path, how its value is checked (the
 * layer's own parsers, with the option's name, so a bad value fails as at construction) and
 * the layer's setter. The layers keep reading plain fields on the request path; a change
 * replaces those fields, so tuning costs a request nothing.
 *
 * A change is all or nothing (every path and value checked before any is applied), applied
 * here, published on the fleet bus (Redis pub/sub, or the `perfstack/cluster` hub) so every
 * instance applies it too, and audited: who, when, where, before and after, in a bounded
 * trail and as one log line. Any entry can be undone: its `before` values become a new change.
 *
 * The overrides in force (each path whose value differs from the configured one) are also
 * stored — with Redis in one hash under the stack's key prefix, under `perfstack/cluster`
 * without Redis in the primary (or PM2 hub) — written with each change and undo; an instance
 * or worker started later applies them at start (each checked like any change; a bad stored
 * value is logged and skipped), so the whole fleet runs on the same values.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { ResponseCache } from '@perfstack/cache';
import type { CircuitBreakerMiddleware } from '@perfstack/circuit-breaker';
import {
  type Disposable,
  durationText,
  OnceLogger,
  type PerfstackLogger,
  parseDuration,
  readInteger,
  readNumber,
  type SettingChange,
  type SettingInfo,
  type SettingKind,
  type SettingsActor,
  type SettingsAuditEntry,
  SettingsError,
  type SettingsSource,
  type SharedRedis,
} from '@perfstack/core';
import type { AccessLogger } from '@perfstack/logger';
import type { RateLimiter } from '@perfstack/rate-limit';

/** A setting's value: ms for durations, `null` for "none" / "the configured one". */
export type SettingValue = number | string | null;

/** The pub/sub the fleet shares (a `SharedRedis`, or the cluster worker's bus). */
export interface SettingsBus {
  readonly isUp: boolean;
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<Disposable>;
}

/** Where the overrides in force are kept: `path → JSON value`, written by each change and undo. */
export interface SettingsStore {
  /** The stored overrides; resolves once the store can answer. */
  load(): Promise<Record<string, string>>;
  /** Stores `set` (path → JSON value) and removes `removed` (paths back to their configured value). */
  save(set: Readonly<Record<string, string>>, removed: readonly string[]): Promise<void>;
}

/** The overrides' hash, under the shared connection's key prefix. */
export const SETTINGS_KEY = 'settings:overrides';

/**
 * The overrides kept in one Redis hash (`<keyPrefix>settings:overrides`).
 *
 * @param redis the stack's shared connection
 */
export function redisSettingsStore(redis: SharedRedis): SettingsStore {
  const key = `${redis.keyPrefix}${SETTINGS_KEY}`;
  const whenUp = async (): Promise<void> => {
    await redis.connect();
    if (redis.isUp) return;
    await new Promise<void>((resolve) => {
      const watch = redis.onStatusChange((status) => {
        if (status !== 'up') return;
        watch.dispose();
        resolve();
      });
    });
  };
  return {
    load: async () => {
      await whenUp();
      const stored = await redis.run((c) => c.hGetAll(key));
      const out: Record<string, string> = {};
      for (const [path, value] of Object.entries(stored)) out[path] = String(value);
      return out;
    },
    save: async (set, removed) => {
      if (Object.keys(set).length > 0) await redis.run((c) => c.hSet(key, { ...set }));
      if (removed.length > 0) await redis.run((c) => c.hDel(key, [...removed]));
    },
  };
}

/** The fleet channel, under the shared connection's key prefix. */
export const SETTINGS_CHANNEL = 'settings';
/** Audit entries kept (oldest dropped first). */
export const MAX_AUDIT = 200;
/** Paths in one change at most. */
const MAX_CHANGES = 50;

/** One tunable: how to read, check and apply it. */
interface Tunable {
  readonly path: string;
  readonly layer: string;
  readonly kind: SettingKind;
  readonly description: string;
  readonly configured: SettingValue;
  read(): SettingValue;
  /** The canonical value, or a throw naming the option as construction does. */
  check(value: unknown): SettingValue;
  apply(value: SettingValue): void;
}

/** The layers the settings reach. */
export interface TunableLayers {
  readonly cache?: ResponseCache;
  readonly rateLimit?: RateLimiter;
  readonly circuitBreaker?: CircuitBreakerMiddleware;
  readonly logger?: AccessLogger;
}

/** What {@link createSettings} needs. */
export interface SettingsContext {
  readonly layers: TunableLayers;
  readonly bus: SettingsBus | undefined;
  /** Where the overrides in force are kept for instances started later (Redis); none: not kept. */
  readonly store?: SettingsStore;
  readonly log: PerfstackLogger;
  /** @default `${hostname}:${pid}:<random>` */
  readonly instanceId?: string;
  /** @default Date.now */
  readonly now?: () => number;
}

/** `stack.settings`: the contract plus the fleet link's lifecycle and change listeners. */
export interface StackSettings extends SettingsSource {
  /** This instance's id in audit entries. */
  readonly instanceId: string;
  /** Calls `listener` with every entry applied here (made here or received from the fleet). */
  onChange(listener: (entry: SettingsAuditEntry) => void): Disposable;
  /** Stops listening to the fleet. */
  close(): void;
}

const CACHE_PKG = '@perfstack/cache';
const RATE_PKG = '@perfstack/rate-limit';
const BREAKER_PKG = '@perfstack/circuit-breaker';
const LOGGER_PKG = '@perfstack/logger';
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const ROUTE_TTL = /^cache\.routes\.(\/.*)\.ttl$/;
/** `circuitBreaker.routes.<pattern or "GET /pattern">.<field>`. */
const BREAKER_ROUTE = /^circuitBreaker\.routes\.((?:[A-Z]+ )?\/.*)\.(timeout|failureThreshold|resetTimeout)$/;
const BREAKER_FIELDS = ['timeout', 'failureThreshold', 'resetTimeout'] as const;
type BreakerField = (typeof BREAKER_FIELDS)[number];

/** `message` of a thrown validation error (the layers' TypeError/RangeError). */
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

function textOf(kind: SettingKind, value: SettingValue): string {
  if (value === null) return 'none';
  return kind === 'duration' && typeof value === 'number' ? durationText(value) : String(value);
}

const duration = (pkg: string, option: string) => (value: unknown) =>
  parseDuration(value as number | string, option, { pkg, min: 1 });

function cacheTunables(cache: ResponseCache): Tunable[] {
  const routeTtl = (route: string): Tunable => {
    const own = cache.cachedRoutes().get(route)?.ttl;
    return {
      path: `cache.routes.${route}.ttl`,
      layer: 'cache',
      kind: 'duration',
      description: `Freshness lifetime of ${route}'s responses stored from now on`,
      configured: own ?? cache.ttlOf(),
      read: () => cache.ttlOf(route),
      check: duration(CACHE_PKG, 'ttl'),
      apply: (value) => cache.setTtl(value === null ? undefined : (value as number), route),
    };
  };
  const configured = cache.ttlOf();
  return [
    {
      path: 'cache.ttl',
      layer: 'cache',
      kind: 'duration',
      description: 'Default freshness lifetime of responses stored from now on (routes without their own ttl)',
      configured,
      read: () => cache.ttlOf(),
      check: duration(CACHE_PKG, 'ttl'),
      apply: (value) => cache.setTtl(value === null ? undefined : (value as number)),
    },
    ...[...cache.cachedRoutes().keys()].map(routeTtl),
  ];
}

function rateLimitTunables(limiter: RateLimiter): Tunable[] {
  const own = limiter.tunables();
  return own.map((l, i) => ({
    path: own.length === 1 ? 'rateLimit.limit' : `rateLimit.limits.${l.name}.limit`,
    layer: 'rateLimit',
    kind: 'integer' as const,
    description: `Requests per client per ${durationText(l.windowMs)} (limit "${l.name}")`,
    configured: l.limit,
    read: () => (limiter.tunables()[i] as { limit: number }).limit,
    check: (value: unknown) => {
      if (value === undefined) throw new TypeError(`${RATE_PKG}: option "limit" must be an integer from 1`);
      return readInteger(RATE_PKG, 'limit', value, 1, 1);
    },
    apply: (value) => limiter.setLimit(value as number, l.name),
  }));
}

function breakerTunables(breaker: CircuitBreakerMiddleware): Tunable[] {
  const now = breaker.tunables();
  const list: Tunable[] = [
    {
      path: 'circuitBreaker.timeout',
      layer: 'circuitBreaker',
      kind: 'duration',
      description: 'Default time budget of a route (504 TIMEOUT past it); none: no budget',
      configured: now.timeoutMs ?? null,
      read: () => breaker.tunables().timeoutMs ?? null,
      check: (value) => (value === null || value === false ? null : duration(BREAKER_PKG, 'timeout')(value)),
      apply: (value) => breaker.tune({ timeout: value === null ? false : (value as number) }),
    },
    {
      path: 'circuitBreaker.failureThreshold',
      layer: 'circuitBreaker',
      kind: 'integer',
      description: 'Consecutive failures that open a route breaker; 0: never on a count',
      configured: now.failureThreshold,
      read: () => breaker.tunables().failureThreshold,
      check: (value) => {
        if (value === undefined) throw new TypeError(`${BREAKER_PKG}: option "failureThreshold" must be an integer`);
        return readInteger(BREAKER_PKG, 'failureThreshold', value, 0, 0);
      },
      apply: (value) => breaker.tune({ failureThreshold: value as number }),
    },
    {
      path: 'circuitBreaker.resetTimeout',
      layer: 'circuitBreaker',
      kind: 'duration',
      description: 'How long an open breaker waits before a trial request',
      configured: now.resetTimeoutMs,
      read: () => breaker.tunables().resetTimeoutMs,
      check: duration(BREAKER_PKG, 'resetTimeout'),
      apply: (value) => breaker.tune({ resetTimeout: value as number }),
    },
  ];
  if (now.maxEventLoopDelayMs !== undefined) {
    list.push({
      path: 'circuitBreaker.overload.maxEventLoopDelay',
      layer: 'circuitBreaker',
      kind: 'duration',
      description: 'Event-loop delay above which requests are shed (503 OVERLOADED)',
      configured: now.maxEventLoopDelayMs,
      read: () => breaker.tunables().maxEventLoopDelayMs ?? null,
      check: duration(BREAKER_PKG, 'overload.maxEventLoopDelay'),
      apply: (value) => breaker.tune({ maxEventLoopDelay: value as number }),
    });
  }
  return list;
}

/** A route's breaker setting: its time budget, failure threshold or reset timeout. */
function breakerRouteTunable(breaker: CircuitBreakerMiddleware, route: string, field: BreakerField): Tunable {
  const read = (): SettingValue => {
    const now = breaker.tunables(route);
    if (field === 'timeout') return now.timeoutMs ?? null;
    return field === 'failureThreshold' ? now.failureThreshold : now.resetTimeoutMs;
  };
  const base = { path: `circuitBreaker.routes.${route}.${field}`, layer: 'circuitBreaker', configured: read(), read };
  if (field === 'timeout') {
    return {
      ...base,
      kind: 'duration',
      description: `Time budget of ${route} (504 TIMEOUT past it); none: no budget`,
      check: (value) => (value === null || value === false ? null : duration(BREAKER_PKG, 'timeout')(value)),
      apply: (value) => breaker.tune({ timeout: value === null ? false : (value as number) }, route),
    };
  }
  if (field === 'failureThreshold') {
    return {
      ...base,
      kind: 'integer',
      description: `Consecutive failures that open ${route}'s breaker; 0: never on a count`,
      check: (value) => {
        if (value === undefined) throw new TypeError(`${BREAKER_PKG}: option "failureThreshold" must be an integer`);
        return readInteger(BREAKER_PKG, 'failureThreshold', value, 0, 0);
      },
      apply: (value) => breaker.tune({ failureThreshold: value as number }, route),
    };
  }
  return {
    ...base,
    kind: 'duration',
    description: `How long ${route}'s open breaker waits before a trial request`,
    check: duration(BREAKER_PKG, 'resetTimeout'),
    apply: (value) => breaker.tune({ resetTimeout: value as number }, route),
  };
}

function loggerTunables(logger: AccessLogger): Tunable[] {
  const now = logger.tunables();
  return [
    {
      path: 'logger.level',
      layer: 'logger',
      kind: 'level',
      description: 'Lowest level the access log writes',
      configured: now.level,
      read: () => logger.tunables().level,
      check: (value) => {
        if (typeof value !== 'string' || !LOG_LEVELS.includes(value)) {
          throw new TypeError(`${LOGGER_PKG}: option "level" must be one of ${LOG_LEVELS.join(', ')}`);
        }
        return value;
      },
      apply: (value) => logger.tune({ level: value as 'info' }),
    },
    {
      path: 'logger.sampleRate',
      layer: 'logger',
      kind: 'ratio',
      description: 'Share of successful requests logged (errors and refusals always are)',
      configured: now.sampleRate,
      read: () => logger.tunables().sampleRate,
      check: (value) => {
        if (value === undefined) throw new TypeError(`${LOGGER_PKG}: option "sampleRate" must be a number`);
        return readNumber(LOGGER_PKG, 'sampleRate', value, 1, 0, 1);
      },
      apply: (value) => logger.tune({ sampleRate: value as number }),
    },
  ];
}

/**
 * Builds `stack.settings` over the layers that are on, and links it to the fleet bus.
 *
 * @param context the layers, the bus (Redis or the cluster hub), the logger, the instance id
 * @returns the settings API
 */
export function createSettings(context: SettingsContext): StackSettings {
  const { layers, bus } = context;
  const log = new OnceLogger(context.log);
  const now = context.now ?? Date.now;
  const instanceId = context.instanceId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 4)}`;
  const trail: SettingsAuditEntry[] = [];
  const listeners = new Set<(entry: SettingsAuditEntry) => void>();
  // The static tunables, made once; cache route ttls are found per call (routes appear as they are served).
  const fixed: Tunable[] = [
    ...(layers.rateLimit ? rateLimitTunables(layers.rateLimit) : []),
    ...(layers.circuitBreaker ? breakerTunables(layers.circuitBreaker) : []),
    ...(layers.logger ? loggerTunables(layers.logger) : []),
  ];
  const routeTtls = new Map<string, Tunable>();
  const cacheTtl = layers.cache ? cacheTunables(layers.cache)[0] : undefined;
  const configuredRouteTtl = new Map<string, SettingValue>();
  /** Per-route breaker settings, made on first use (their `configured` is the value then). */
  const breakerRoutes = new Map<string, Tunable>();
  /** Paths changed here or by the fleet since start: a stored value read later must not undo them. */
  const touched = new Set<string>();

  /** The tunable at `path`; a cache route not seen here yet only when `anyRoute` (a peer's change). */
  const find = (path: string, anyRoute: boolean): Tunable | undefined => {
    const known = fixed.find((t) => t.path === path);
    if (known !== undefined) return known;
    if (path === 'cache.ttl') return cacheTtl;
    const breaker = layers.circuitBreaker;
    const breakerMatch = BREAKER_ROUTE.exec(path);
    if (breaker !== undefined && breakerMatch !== null) {
      const route = breakerMatch[1] as string;
      let tunable = breakerRoutes.get(path);
      if (tunable === undefined) {
        if (!anyRoute && !breaker.tunables().routes.includes(route)) return undefined;
        tunable = breakerRouteTunable(breaker, route, breakerMatch[2] as BreakerField);
        breakerRoutes.set(path, tunable);
      }
      return tunable;
    }
    const cache = layers.cache;
    const match = ROUTE_TTL.exec(path);
    if (cache === undefined || match === null) return undefined;
    const route = match[1] as string;
    if (!anyRoute && !cache.cachedRoutes().has(route) && !configuredRouteTtl.has(route)) return undefined;
    let tunable = routeTtls.get(route);
    if (tunable === undefined) {
      const built = cacheTunables(cache).find((t) => t.path === path);
      const configured = built?.configured ?? cache.ttlOf();
      configuredRouteTtl.set(route, configured);
      tunable = {
        ...(built ?? {
          path,
          layer: 'cache',
          kind: 'duration' as const,
          description: `Freshness lifetime of ${route}'s responses stored from now on`,
          read: () => cache.ttlOf(route),
          check: duration(CACHE_PKG, 'ttl'),
          apply: (value: SettingValue) => cache.setTtl(value === null ? undefined : (value as number), route),
        }),
        configured,
      };
      routeTtls.set(route, tunable);
    }
    return tunable;
  };

  const all = (): Tunable[] => {
    const list = [...(cacheTtl ? [cacheTtl] : [])];
    if (layers.cache !== undefined) {
      const routes = new Set([...layers.cache.cachedRoutes().keys(), ...configuredRouteTtl.keys()]);
      for (const route of [...routes].sort()) list.push(find(`cache.routes.${route}.ttl`, true) as Tunable);
    }
    const breaker = layers.circuitBreaker;
    const perRoute: Tunable[] = [];
    if (breaker !== undefined) {
      const routes = new Set(breaker.tunables().routes);
      for (const path of breakerRoutes.keys()) routes.add(BREAKER_ROUTE.exec(path)?.[1] as string);
      for (const route of [...routes].sort()) {
        for (const field of BREAKER_FIELDS)
          perRoute.push(find(`circuitBreaker.routes.${route}.${field}`, true) as Tunable);
      }
    }
    return [...list, ...fixed, ...perRoute];
  };

  const info = (t: Tunable): SettingInfo => {
    const value = t.read();
    return {
      path: t.path,
      layer: t.layer,
      kind: t.kind,
      value,
      text: textOf(t.kind, value),
      configured: t.configured,
      description: t.description,
    };
  };

  /** Checks every change (unknown paths, bad values); returns them resolved, nothing applied. */
  const plan = (changes: Readonly<Record<string, unknown>>, anyRoute: boolean) => {
    if (typeof changes !== 'object' || changes === null || Array.isArray(changes)) {
      throw new SettingsError('', 'The settings must be a JSON object of dotted paths to values.');
    }
    const paths = Object.keys(changes);
    if (paths.length === 0) throw new SettingsError('', 'Name at least one setting to change.');
    if (paths.length > MAX_CHANGES) throw new SettingsError('', `At most ${MAX_CHANGES} settings at once.`);
    return paths.map((path) => {
      const tunable = find(path, anyRoute);
      if (tunable === undefined) {
        throw new SettingsError(
          path,
          `"${path.slice(0, 200)}" is not a tunable setting (GET /api/settings lists them).`,
        );
      }
      try {
        return { tunable, value: tunable.check(changes[path]) };
      } catch (error) {
        throw new SettingsError(path, `"${path.slice(0, 200)}": ${messageOf(error)}`);
      }
    });
  };

  /** Applies checked changes; on an unexpected throw, puts back what was applied and rethrows. */
  const apply = (planned: ReadonlyArray<{ tunable: Tunable; value: SettingValue }>): SettingChange[] => {
    const done: SettingChange[] = [];
    try {
      for (const { tunable, value } of planned) {
        const before = tunable.read();
        touched.add(tunable.path);
        tunable.apply(value);
        done.push({ path: tunable.path, before, after: tunable.read() });
      }
    } catch (error) {
      for (const change of done.reverse()) find(change.path, true)?.apply(change.before);
      throw new SettingsError(
        done.length < planned.length ? (planned[done.length]?.tunable.path ?? '') : '',
        messageOf(error),
      );
    }
    return done;
  };

  const record = (entry: SettingsAuditEntry): void => {
    if (trail.some((e) => e.id === entry.id)) return;
    trail.push(entry);
    if (trail.length > MAX_AUDIT) trail.splice(0, trail.length - MAX_AUDIT);
    const line = { event: 'settings', ...entry };
    const pino = layers.logger?.logger;
    if (pino !== undefined) pino.info(line, 'perfstack settings changed');
    else context.log.warn('perfstack settings changed', line);
    for (const listener of listeners) {
      try {
        listener(entry);
      } catch (error) {
        log.errorOnce('SETTINGS_LISTENER', 'a settings listener threw', { error: messageOf(error) });
      }
    }
  };

  const publish = (entry: SettingsAuditEntry): Promise<void> => {
    if (bus === undefined) return Promise.resolve();
    if (!bus.isUp) {
      log.warnOnce('SETTINGS_FLEET_DOWN', 'the fleet bus is down: a settings change stays on this instance');
      return Promise.resolve();
    }
    return bus.publish(SETTINGS_CHANNEL, JSON.stringify({ v: 1, from: instanceId, entry })).then(
      () => log.reset('SETTINGS_FLEET_PUBLISH'),
      (error: unknown) =>
        log.errorOnce('SETTINGS_FLEET_PUBLISH', 'could not publish a settings change to the fleet', {
          error: messageOf(error),
        }),
    );
  };

  /** Keeps the entry's values for instances started later: overrides stored, configured values removed. */
  const persist = (entry: SettingsAuditEntry): Promise<void> => {
    const store = context.store;
    if (store === undefined) return Promise.resolve();
    const set: Record<string, string> = {};
    const removed: string[] = [];
    for (const change of entry.changes) {
      if (change.after === find(change.path, true)?.configured) removed.push(change.path);
      else set[change.path] = JSON.stringify(change.after);
    }
    return store.save(set, removed).then(
      () => log.reset('SETTINGS_STORE_SAVE'),
      (error: unknown) =>
        log.errorOnce('SETTINGS_STORE_SAVE', 'could not store a settings change for instances started later', {
          error: messageOf(error),
        }),
    );
  };

  /** At start: the stored overrides, each checked like a change; a bad one logged and skipped. */
  const restore = (stored: Record<string, string>): void => {
    for (const [path, json] of Object.entries(stored)) {
      if (touched.has(path)) continue;
      try {
        const tunable = find(path, true);
        if (tunable === undefined) throw new Error('not a tunable setting here');
        tunable.apply(tunable.check(JSON.parse(json)));
      } catch (error) {
        context.log.error('perfstack settings: a stored setting could not be applied; skipped', {
          path: path.slice(0, 200),
          error: messageOf(error),
        });
      }
    }
  };

  const commit = async (
    changes: Readonly<Record<string, unknown>>,
    who: SettingsActor | undefined,
    undoOf: string | undefined,
  ): Promise<SettingsAuditEntry> => {
    const applied = apply(plan(changes, undoOf !== undefined));
    const entry: SettingsAuditEntry = {
      id: randomUUID(),
      at: now(),
      actor: who?.actor ?? 'code',
      instance: instanceId,
      changes: applied,
      ...(undoOf === undefined ? {} : { undoOf }),
      ...(who?.reason === undefined ? {} : { reason: who.reason }),
    };
    record(entry);
    await Promise.all([persist(entry), publish(entry)]);
    return entry;
  };

  /** A peer's change: applied here as it was there (each value checked again; a bad one skipped). */
  const receive = (message: string): void => {
    let entry: SettingsAuditEntry;
    try {
      const parsed = JSON.parse(message) as { v?: unknown; from?: unknown; entry?: SettingsAuditEntry };
      if (parsed.v !== 1 || parsed.from === instanceId || typeof parsed.entry?.id !== 'string') return;
      entry = parsed.entry;
      if (!Array.isArray(entry.changes) || entry.changes.length > MAX_CHANGES) return;
    } catch {
      return;
    }
    if (trail.some((e) => e.id === entry.id)) return;
    for (const change of entry.changes) {
      try {
        const tunable = find(String(change.path), true);
        if (tunable === undefined) continue;
        touched.add(tunable.path);
        tunable.apply(tunable.check(change.after));
      } catch (error) {
        log.errorOnce('SETTINGS_FLEET_APPLY', 'a settings change from the fleet could not be applied here', {
          path: String(change.path).slice(0, 200),
          error: messageOf(error),
        });
      }
    }
    record(entry);
  };

  let subscription: Promise<Disposable | undefined> | undefined;
  let closed = false;
  context.store?.load().then(
    (stored) => {
      if (!closed) restore(stored);
    },
    (error: unknown) =>
      log.errorOnce('SETTINGS_STORE_LOAD', 'could not read the stored settings; this instance starts on its own', {
        error: messageOf(error),
      }),
  );
  if (bus !== undefined) {
    subscription = bus.subscribe(SETTINGS_CHANNEL, receive).then(
      (d) => {
        if (closed) d.dispose();
        return d;
      },
      (error: unknown) => {
        log.errorOnce('SETTINGS_FLEET_SUBSCRIBE', 'could not subscribe to the settings channel', {
          error: messageOf(error),
        });
        return undefined;
      },
    );
  }

  return {
    instanceId,
    list: () => all().map(info),
    get: (path) => {
      const tunable = find(path, false);
      return tunable === undefined ? undefined : tunable.read();
    },
    set: (changes, who) => commit(changes, who, undefined),
    undo: async (id, who) => {
      const entry = trail.find((e) => e.id === id);
      if (entry === undefined) throw new SettingsError('id', 'No audit entry has that id.');
      const before: Record<string, SettingValue> = {};
      for (const change of entry.changes) before[change.path] = change.before;
      return commit(before, { actor: who?.actor ?? 'code', reason: who?.reason ?? `undo of ${id}` }, id);
    },
    audit: () => [...trail],
    onChange(listener) {
      listeners.add(listener);
      return { dispose: () => listeners.delete(listener) };
    },
    close() {
      closed = true;
      void subscription?.then((d) => d?.dispose());
    },
  };
}
