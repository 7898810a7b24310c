/**
 * One value in the data cache, as L1 holds it and as Redis stores it.
 *
 * L1 is the response cache's {@link MemoryStore} (one eviction policy and one size
 * accounting for both caches): a data entry carries the fields the store reads from an
 * entry (`size`, `tags`, and no `Vary`), so it is stored as one. Its value is the live
 * object, returned as is on a hit (no copy, no decoding: treat cached values as read-only).
 *
 * In Redis an entry is one string, `<meta JSON>\n<payload>`: the meta line is
 * `[storedAt, expiresAt, staleUntil, tags, binary]` and the payload the serializer's
 * output (base64 when it gave bytes).
 */
import type { Entry } from '../entry.js';
import type { Serializer } from './serializer.js';

const NO_VARY: readonly string[] = Object.freeze([]);

/** Bookkeeping bytes counted per entry besides the key and the serialised value. */
export const ENTRY_OVERHEAD = 160;

/** A value in the data cache. */
export class DataEntry {
  /** The namespaced key (`data:<namespace>:<key>`). */
  readonly key: string;
  readonly value: unknown;
  readonly storedAt: number;
  /** Fresh until then (ms since the epoch). */
  readonly expiresAt: number;
  /** Served (by `wrap`, while refreshing) until then. */
  readonly staleUntil: number;
  /** From then on, reads count towards a refresh-ahead (Infinity: never). */
  readonly refreshAt: number;
  readonly tags: readonly string[];
  /** Bytes counted against `maxBytes`. */
  readonly size: number;
  /** The serialised form, kept to write it to Redis without serialising twice. */
  readonly payload: string;
  readonly binary: boolean;
  readonly varyNames = NO_VARY;
  readonly varyValues = NO_VARY;
  /** Reads since the last flush of the read counts. */
  reads = 0;
  /** Reads after {@link refreshAt}. */
  lateReads = 0;
  /** A refresh-ahead has been started for this entry. */
  refreshing = false;

  constructor(
    key: string,
    value: unknown,
    payload: string,
    binary: boolean,
    storedAt: number,
    ttl: number,
    staleWindow: number,
    refreshAhead: number,
    tags: readonly string[],
  ) {
    this.key = key;
    this.value = value;
    this.payload = payload;
    this.binary = binary;
    this.storedAt = storedAt;
    this.expiresAt = storedAt + ttl;
    this.staleUntil = this.expiresAt + staleWindow;
    this.refreshAt = refreshAhead > 0 ? storedAt + ttl * refreshAhead : Number.POSITIVE_INFINITY;
    this.tags = tags;
    this.size = payload.length + key.length * 2 + ENTRY_OVERHEAD;
  }

  /** As the memory store takes it (it reads `size`, `tags`, `varyNames`, `varyValues` only). */
  get asStored(): Entry {
    return this as unknown as Entry;
  }

  /** The Redis string. */
  encode(): string {
    return `${JSON.stringify([this.storedAt, this.expiresAt, this.staleUntil, this.tags, this.binary ? 1 : 0])}\n${this.payload}`;
  }
}

/** Serialises a value: the payload and whether it is base64 of bytes. */
export function serialize(serializer: Serializer, value: unknown): { payload: string; binary: boolean } {
  const out = serializer.serialize(value);
  if (typeof out === 'string') return { payload: out, binary: false };
  if (Buffer.isBuffer(out)) return { payload: out.toString('base64'), binary: true };
  throw new TypeError('@perfstack/cache: serializer.serialize() must return a string or a Buffer');
}

/**
 * Reads a Redis string back into an entry, or undefined when it is not one of ours or
 * cannot be decoded (a corrupt or foreign value is a miss, never an error).
 */
export function decode(key: string, text: string, serializer: Serializer, refreshAhead: number): DataEntry | undefined {
  const nl = text.indexOf('\n');
  if (nl === -1) return undefined;
  try {
    const meta: unknown = JSON.parse(text.slice(0, nl));
    if (!Array.isArray(meta) || meta.length !== 5) return undefined;
    const [storedAt, expiresAt, staleUntil, tags, binary] = meta as [unknown, unknown, unknown, unknown, unknown];
    if (
      typeof storedAt !== 'number' ||
      typeof expiresAt !== 'number' ||
      typeof staleUntil !== 'number' ||
      !Array.isArray(tags) ||
      !tags.every((t) => typeof t === 'string')
    ) {
      return undefined;
    }
    const payload = text.slice(nl + 1);
    const value = serializer.deserialize(binary === 1 ? Buffer.from(payload, 'base64') : payload);
    return new DataEntry(
      key,
      value,
      payload,
      binary === 1,
      storedAt,
      expiresAt - storedAt,
      staleUntil - expiresAt,
      refreshAhead,
      Object.freeze(tags as string[]),
    );
  } catch {
    return undefined;
  }
}
