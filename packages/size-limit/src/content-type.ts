/**
 * Per-content-type limits: `{ 'application/json': '100kb', 'multipart/*': '20mb' }`.
 *
 * Keys are media types (RFC 9110 §8.3.1) without parameters, or `type/*`. A request's
 * type is matched on its essence (lowercased, parameters dropped), exact key first.
 */
import { optionTypeError, parseBytes } from '@perfstack/core';

const TOKEN = "[!#$%&'*+.^_`|~0-9a-z-]+";
const MEDIA_RANGE_RE = new RegExp(`^${TOKEN}/(?:${TOKEN}|\\*)$`, 'i');

/** The media type of a `Content-Type` value: lowercased, without parameters; `''` when absent. */
export function mediaType(contentType: string | undefined): string {
  if (contentType === undefined) return '';
  const semicolon = contentType.indexOf(';');
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

/**
 * Validates and parses a `limits` option into a map of media range to bytes.
 *
 * @throws {TypeError} when it is not an object, a key is not a media type, or a value is not a size
 * @throws {RangeError} when a size is negative or too large
 */
export function readLimits(pkg: string, option: string, value: unknown): ReadonlyMap<string, number> {
  const limits = new Map<string, number>();
  if (value === undefined) return limits;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw optionTypeError(pkg, option, value, "an object of media type to size, like { 'application/json': '100kb' }");
  }
  for (const key of Object.keys(value)) {
    if (!MEDIA_RANGE_RE.test(key)) {
      throw optionTypeError(pkg, `${option}["${key}"]`, key, "a media type like 'application/json' or 'multipart/*'");
    }
    limits.set(key.toLowerCase(), parseBytes((value as Record<string, unknown>)[key], `${option}["${key}"]`, { pkg }));
  }
  return limits;
}

/** The limit for `type` from `limits` (exact, then `type/*`), or `undefined`. */
export function limitForType(limits: ReadonlyMap<string, number>, type: string): number | undefined {
  if (limits.size === 0 || type === '') return undefined;
  const exact = limits.get(type);
  if (exact !== undefined) return exact;
  const slash = type.indexOf('/');
  return slash === -1 ? undefined : limits.get(`${type.slice(0, slash)}/*`);
}
