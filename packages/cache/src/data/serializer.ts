/**
 * How the data cache turns values into text for Redis (and for its size bound): JSON by
 * default, with Buffers (and Uint8Arrays) kept as Buffers, or any {@link Serializer} the
 * caller plugs in (e.g. superjson, msgpack).
 *
 * The default encoding is plain JSON in which a Buffer becomes `{"\u0000buf":"<base64>"}`.
 * Keys of the caller's objects that start with NUL get one more NUL on the way in and lose
 * it on the way out, so no value of the caller's is ever read back as a Buffer. `JSON.parse` makes `__proto__` an own property, never a
 * prototype, so a value read from a shared Redis cannot pollute prototypes.
 */

/** Turns values into text and back. Both directions may throw (the call then fails). */
export interface Serializer {
  /** The value as a string, or as bytes (stored base64 in Redis). */
  serialize(value: unknown): string | Buffer;
  /** The value back from what {@link Serializer.serialize} made. */
  deserialize(data: string | Buffer): unknown;
}

const BUF = '\u0000buf';
const ESC = '\u0000';

/** A copy of `value` with every key that starts with NUL given one more NUL (undone on read). */
function escapeKeys(value: Record<string, unknown>): Record<string, unknown> | undefined {
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    if (key.startsWith(ESC)) {
      copy ??= {};
      break;
    }
  }
  if (copy === undefined) return undefined;
  for (const key of Object.keys(value)) copy[key.startsWith(ESC) ? ESC + key : key] = value[key];
  return copy;
}

/** The default: JSON, Buffers kept. */
export const jsonSerializer: Serializer = Object.freeze({
  serialize(value: unknown): string {
    const text = JSON.stringify(value, function replacer(this: Record<string, unknown>, key: string, current: unknown) {
      // `this[key]` is the value before its toJSON (Buffer.toJSON gives { type, data }).
      const raw = this[key];
      if (raw instanceof Uint8Array) {
        return { [BUF]: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
      }
      if (typeof current === 'object' && current !== null && !Array.isArray(current)) {
        return escapeKeys(current as Record<string, unknown>) ?? current;
      }
      return current;
    });
    if (text === undefined) {
      throw new TypeError('@perfstack/cache: this value cannot be stored as JSON (undefined, a function or a symbol)');
    }
    return text;
  },
  deserialize(data: string | Buffer): unknown {
    return JSON.parse(typeof data === 'string' ? data : data.toString('utf8'), (_key, value: unknown) => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
      const object = value as Record<string, unknown>;
      const keys = Object.keys(object);
      if (keys.length === 1 && keys[0] === BUF && typeof object[BUF] === 'string') {
        return Buffer.from(object[BUF], 'base64');
      }
      let escaped = false;
      for (const key of keys) if (key.startsWith(ESC)) escaped = true;
      if (!escaped) return value;
      const out: Record<string, unknown> = {};
      for (const key of keys) out[key.startsWith(ESC) ? key.slice(1) : key] = object[key];
      return out;
    });
  },
});

/** True for an object with `serialize` and `deserialize` functions. */
export function isSerializer(value: unknown): value is Serializer {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Serializer).serialize === 'function' &&
    typeof (value as Serializer).deserialize === 'function'
  );
}
