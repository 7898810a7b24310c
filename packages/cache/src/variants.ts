/**
 * Variant selection (RFC 9111 §4.1): the stored variants of one URL, found by the
 * request's secondary key — the normalised values of the request headers their `Vary`
 * names — with one map lookup instead of a scan. The index of a variant list is built
 * once, the first time the list is read (lists are replaced, never mutated, when a
 * variant is stored), and forgotten with the list (WeakMap).
 */
import type { Entry } from './entry.js';
import { varyValue } from './http-semantics.js';

type Headers = Readonly<Record<string, string | string[] | undefined>>;

interface VariantIndex {
  /** The vary names every variant shares, or undefined when they differ (then: a scan). */
  readonly names: readonly string[] | undefined;
  readonly byKey: Map<string, Entry>;
}

const indexes = new WeakMap<readonly Entry[], VariantIndex>();

/** The secondary key of stored vary values. */
function secondaryKey(values: readonly string[]): string {
  return values.length === 1 ? (values[0] as string) : values.join('\u0000');
}

/** The secondary key these request headers select, for `names`. */
function requestSecondaryKey(names: readonly string[], headers: Headers): string {
  if (names.length === 1) return varyValue(headers, names[0] as string);
  let key = '';
  for (let i = 0; i < names.length; i++) {
    if (i > 0) key += '\u0000';
    key += varyValue(headers, names[i] as string);
  }
  return key;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function build(list: readonly Entry[]): VariantIndex {
  const first = list[0];
  let names: readonly string[] | undefined = first?.varyNames;
  const byKey = new Map<string, Entry>();
  for (const entry of list) {
    if (names !== undefined && !sameNames(names, entry.varyNames)) names = undefined;
    const key = secondaryKey(entry.varyValues);
    if (!byKey.has(key)) byKey.set(key, entry);
  }
  return { names, byKey };
}

/** True when `entry` is the variant selected by these request headers. */
function matchesVariant(entry: Entry, headers: Headers): boolean {
  const names = entry.varyNames;
  for (let i = 0; i < names.length; i++) {
    if (varyValue(headers, names[i] as string) !== entry.varyValues[i]) return false;
  }
  return true;
}

/** The variant of `list` these request headers select. */
export function selectVariant(list: readonly Entry[], headers: Headers): Entry | undefined {
  let index = indexes.get(list);
  if (index === undefined) {
    index = build(list);
    indexes.set(list, index);
  }
  const names = index.names;
  if (names !== undefined) return index.byKey.get(requestSecondaryKey(names, headers));
  for (const entry of list) if (matchesVariant(entry, headers)) return entry;
  return undefined;
}
