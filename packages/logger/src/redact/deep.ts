/**
 * A bounded deep redactor for logged values (a parsed JSON body, an error's own
 * properties, the objects an app passes to `req.log`).
 *
 * pino's `redact` takes fixed paths; it cannot say "a `password` field at any depth".
 * This walker copies what it logs and redacts as it copies: a field whose key names a
 * secret becomes the censor (never dropped, so a reader sees it was there), every string
 * goes through the value patterns, and a number that looks like a card number is censored.
 *
 * Limits keep a hostile body cheap: depth, keys per object, items per array and a total
 * node budget. What is cut is marked (`[Object]`, `[Array]`, `…`), not silently dropped.
 */
import { stdSerializers } from 'pino';
import type { SensitiveKeys } from './keys.js';
import { passesLuhn } from './luhn.js';
import type { StringRedactor } from './strings.js';

/** Bounds of one walk. */
export interface DeepLimits {
  /** Objects nested deeper are logged as `[Object]` / `[Array]`. */
  readonly maxDepth: number;
  /** Keys logged per object; the rest are counted under `…`. */
  readonly maxKeys: number;
  /** Items logged per array; the rest are counted in a last item. */
  readonly maxItems: number;
  /** Objects and arrays visited in one walk; past it, values are logged as `[Truncated]`. */
  readonly maxNodes: number;
}

/** The limits used by default. */
export const DEFAULT_DEEP_LIMITS: DeepLimits = { maxDepth: 8, maxKeys: 100, maxItems: 100, maxNodes: 1000 };

const MORE_KEY = '…';

/** Copies and redacts logged values. Built once per logger. */
export class DeepRedactor {
  readonly #keys: SensitiveKeys;
  readonly #string: StringRedactor;
  readonly #censor: string;
  readonly #limits: DeepLimits;

  constructor(keys: SensitiveKeys, string: StringRedactor, censor: string, limits: DeepLimits = DEFAULT_DEEP_LIMITS) {
    this.#keys = keys;
    this.#string = string;
    this.#censor = censor;
    this.#limits = limits;
  }

  /** True when `key` names a secret. */
  isSensitiveKey(key: string): boolean {
    return this.#keys.matches(key);
  }

  /** Returns a redacted copy of `value` (strings, numbers and `null` as themselves when clean). */
  value(value: unknown): unknown {
    return this.#walk(value, 0, { nodes: this.#limits.maxNodes });
  }

  /**
   * Redacts the fields of a log call's object, leaving the keys in `skip` (those with their
   * own serializer) untouched. Returns `fields` itself when nothing needed a change.
   */
  fields(fields: Record<string, unknown>, skip: ReadonlySet<string>): Record<string, unknown> {
    let out: Record<string, unknown> | undefined;
    const budget = { nodes: this.#limits.maxNodes };
    for (const key of Object.keys(fields)) {
      if (skip.has(key)) continue;
      const value = fields[key];
      const redacted = this.#field(key, value, 0, budget);
      if (redacted !== value) {
        out ??= { ...fields };
        setOwn(out, key, redacted);
      }
    }
    return out ?? fields;
  }

  #field(key: string, value: unknown, depth: number, budget: { nodes: number }): unknown {
    if (value === undefined) return undefined;
    if (this.#keys.matches(key)) return this.#censor;
    return this.#walk(value, depth, budget);
  }

  #walk(value: unknown, depth: number, budget: { nodes: number }): unknown {
    switch (typeof value) {
      case 'string':
        return this.#string(value);
      case 'number':
        // A card number sent as a JSON number: 13 to 19 digits that pass Luhn.
        return value >= 1e12 && Number.isSafeInteger(value) && passesLuhn(String(value)) ? this.#censor : value;
      case 'bigint':
        return this.#string(value.toString());
      case 'object':
        break;
      default:
        return value === undefined || typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
    }
    if (value === null) return null;
    if (--budget.nodes < 0) return '[Truncated]';
    if (depth >= this.#limits.maxDepth) return Array.isArray(value) ? '[Array]' : '[Object]';
    try {
      if (Array.isArray(value)) return this.#array(value, depth, budget);
      if (value instanceof Error) return this.#walk(stdSerializers.err(value), depth, budget);
      if (ArrayBuffer.isView(value)) return `[${value.constructor.name} ${value.byteLength} bytes]`;
      if (value instanceof Date) return value;
      if (value instanceof Map || value instanceof Set) return `[${value.constructor.name} ${value.size}]`;
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') return this.#walk(toJSON.call(value), depth + 1, budget);
      return this.#object(value as Record<string, unknown>, depth, budget);
    } catch {
      return '[Unserializable]';
    }
  }

  #array(value: readonly unknown[], depth: number, budget: { nodes: number }): unknown[] {
    const length = Math.min(value.length, this.#limits.maxItems);
    const out = new Array<unknown>(length);
    for (let i = 0; i < length; i++) {
      const item = this.#walk(value[i], depth + 1, budget);
      out[i] = item === undefined ? null : item;
    }
    if (value.length > length) out.push(`… ${value.length - length} more items`);
    return out;
  }

  #object(value: Record<string, unknown>, depth: number, budget: { nodes: number }): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const keys = Object.keys(value);
    const length = Math.min(keys.length, this.#limits.maxKeys);
    for (let i = 0; i < length; i++) {
      const key = keys[i] as string;
      const item = this.#field(key, value[key], depth + 1, budget);
      if (item !== undefined) setOwn(out, key, item);
    }
    if (keys.length > length) out[MORE_KEY] = `${keys.length - length} more keys`;
    return out;
  }
}

/** Sets an own property, `__proto__` included (a parsed JSON body may carry one). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}
