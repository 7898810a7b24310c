/**
 * The one interface both cache stores implement: the in-process L1 ({@link MemoryStore})
 * and the shared L2 ({@link RedisStore}). `test/store-contract.test.ts` runs one suite
 * against both, so a behaviour the engine relies on holds on either.
 *
 * A store keeps, per key (a URL), its variants (RFC 9111 §4.1): entries that differ by
 * the values of the request headers their response's `Vary` names. Writing a variant
 * replaces the variant with the same vary values and nothing else; writing an entry
 * that does not vary replaces every variant of the key. Methods may answer synchronously
 * (memory) or with a promise (Redis), like express-rate-limit's `Store`.
 */
import type { Entry } from '../entry.js';
import { varyValue } from '../http-semantics.js';

/** A value or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/** What the engine asks of a cache store. */
export interface CacheStore {
  /** Every stored variant of `key` (none: an empty array). */
  readVariants(key: string): Awaitable<Entry[]>;
  /**
   * Stores one variant of `key`, replacing the one with the same vary values (or all of
   * them when `entry` does not vary), and indexes `key` under the entry's tags. `ttl` is
   * how long, in ms, the store must keep it at least (stores may drop it later).
   */
  writeVariant(key: string, entry: Entry, ttl: number): Awaitable<void>;
  /** Deletes keys with all their variants; returns how many of them existed. */
  deleteKeys(keys: readonly string[]): Awaitable<number>;
  /**
   * The keys stored under any of `tags`; the tags' key lists are forgotten (the caller
   * deletes those keys next).
   */
  takeTagged(tags: readonly string[]): Awaitable<string[]>;
  /** Keys starting with `prefix`. */
  keysWithPrefix(prefix: string): Awaitable<string[]>;
}

/**
 * The identity of a variant inside its key: the vary names and values, as one string.
 * Entries with equal ids replace each other.
 */
export function variantId(varyNames: readonly string[], varyValues: readonly string[]): string {
  if (varyNames.length === 0) return '';
  return JSON.stringify([varyNames, varyValues]);
}

/** The variant id these request headers select, given the vary names a key's responses use. */
export function requestVariantId(
  varyNames: readonly string[],
  headers: Readonly<Record<string, string | string[] | undefined>>,
): string {
  if (varyNames.length === 0) return '';
  const values: string[] = [];
  for (const name of varyNames) values.push(varyValue(headers, name));
  return variantId(varyNames, values);
}
