/**
 * Stage 2 — key/variant lookup past L1, and request collapsing: one request per key goes
 * on (to L2 and/or the origin), the others wait for it. With Redis, a short `SET NX`
 * lock makes that one request per fleet; the other instances poll L2 briefly.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { NextFunction } from '@perfstack/core';
import type { CacheEngine } from './engine.js';
import { deadAt, type Entry } from './entry.js';
import { fetch } from './record.js';
import { serve, tryServe } from './serve.js';
import type { RequestState } from './state.js';
import type { RedisStore } from './store/redis.js';

/** One request per key goes on (to L2 and/or the origin); the others wait for it. */
export function collapse(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  next: NextFunction,
  state: RequestState,
  viaL2: boolean,
  attempt: number,
): void {
  const key = state.key;
  // Fleet: one flight (and fleet lock) per variant once the key is known to vary (fleet.ts).
  const id = engine.fleet.flightId(key, req);
  state.lockName = id;
  const flight = engine.flights.get(id);
  if (flight === undefined) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    state.leader = { id, promise, resolve };
    engine.flights.set(id, state.leader);
    if (viaL2) readL2(engine, req, res, next, state);
    else fetch(engine, req, res, next, state);
    return;
  }
  if (state.stale !== undefined) {
    serve(engine, req, res, state, state.stale, 'STALE');
    return;
  }
  wait(engine, flight.promise).then(() => {
    if (res.writableEnded || res.destroyed) return;
    const entry = engine.l1.select(key, req.headers);
    if (entry !== undefined && tryServe(engine, req, res, state, entry)) return;
    if (attempt < 2 && engine.flights.has(engine.fleet.flightId(key, req)) && engine.pass?.has(key) !== true) {
      collapse(engine, req, res, next, state, false, attempt + 1);
    } else {
      fetch(engine, req, res, next, state);
    }
  });
}

function wait(engine: CacheEngine, promise: Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, engine.config.lockTimeout);
    timer.unref();
    promise.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Ends this request's leadership: waiters look again. */
export function settle(engine: CacheEngine, state: RequestState): void {
  const leader = state.leader;
  if (leader !== undefined) {
    state.leader = undefined;
    if (engine.flights.get(leader.id) === leader) engine.flights.delete(leader.id);
    leader.resolve();
  }
  if (state.lockHeld) {
    state.lockHeld = false;
    engine.l2?.unlock(state.lockName, engine.id).catch(() => {});
  }
}

/** L1 missed a key known to be cacheable: ask L2, then take the fleet lock, then the origin. */
function readL2(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  next: NextFunction,
  state: RequestState,
): void {
  const l2 = engine.l2 as RedisStore;
  const key = state.key;
  const promoted = (variants: readonly Entry[]): boolean => {
    const now = engine.config.now();
    const live = variants.filter((v) => deadAt(v) > now);
    if (live.length === 0) return false;
    engine.fleet.learnVary(key, (live[0] as Entry).varyNames);
    engine.l1.putAll(key, live);
    const entry = engine.l1.select(key, req.headers);
    if (entry === undefined) return false;
    if (tryServe(engine, req, res, state, entry)) {
      settle(engine, state);
      return true;
    }
    return false;
  };
  l2.readVariants(key).then(
    (variants) => {
      if (res.writableEnded || res.destroyed) return settle(engine, state);
      if (promoted(variants)) return;
      if (!l2.available) return fetch(engine, req, res, next, state);
      l2.lock(state.lockName, engine.id, engine.config.lockTimeout).then(
        (acquired) => {
          if (acquired) {
            state.lockHeld = true;
            fetch(engine, req, res, next, state);
          } else if (state.stale !== undefined) {
            serve(engine, req, res, state, state.stale, 'STALE');
            settle(engine, state);
          } else {
            pollL2(engine, req, res, next, state, promoted, performance.now() + engine.config.lockTimeout);
          }
        },
        (error: unknown) => {
          engine.storeError(error);
          fetch(engine, req, res, next, state);
        },
      );
    },
    (error: unknown) => {
      engine.storeError(error);
      fetch(engine, req, res, next, state);
    },
  );
}

/**
 * Another instance holds the lock: look again every 50 ms (or at once when the holder
 * announces the key stored) until the lock time runs out, or until the lock is gone with
 * nothing stored (its holder got an unstorable response). Only this request's variant is
 * read (fleet.ts).
 */
function pollL2(
  engine: CacheEngine,
  req: IncomingMessage,
  res: ServerResponse,
  next: NextFunction,
  state: RequestState,
  promoted: (variants: readonly Entry[]) => boolean,
  deadline: number,
): void {
  const l2 = engine.l2 as RedisStore;
  const key = state.key;
  const poll = () => {
    clearTimeout(timer);
    forget();
    if (res.writableEnded || res.destroyed) return settle(engine, state);
    if (!l2.available || engine.closed) return fetch(engine, req, res, next, state);
    const fields = engine.fleet.variantFields(key, req);
    const read = fields === undefined ? l2.readVariants(key) : l2.readVariantFields(key, fields);
    Promise.all([read, l2.locked(state.lockName)]).then(
      ([variants, locked]) => {
        if (promoted(variants)) return;
        if (!locked || performance.now() >= deadline) fetch(engine, req, res, next, state);
        else pollL2(engine, req, res, next, state, promoted, deadline);
      },
      (error: unknown) => {
        engine.storeError(error);
        fetch(engine, req, res, next, state);
      },
    );
  };
  const timer = setTimeout(poll, 50);
  timer.unref();
  const forget = engine.fleet.onStored(key, poll);
}
