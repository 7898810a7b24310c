/**
 * Which keys (JSON body fields, query parameters, header names) hold secrets.
 *
 * A key is compared in a normalized form — lower case, without `-`, `_`, `.` and
 * spaces — so `api_key`, `apiKey`, `API-KEY` and `x-api-key` are one spelling. A key
 * matches when its normalized form equals an entry, or contains an entry of five or more
 * characters (`newPassword`, `client_secret`, `x-auth-token`). Short entries (`pin`,
 * `cvv`, `otp`) match exactly only, so `spinner` or `classname` stay readable.
 *
 * Keys repeat from request to request, so answers are cached in a bounded map: the
 * steady-state cost of a check is one `Map.get`.
 */

/** Keys whose values are secrets, in normalized form. */
export const DEFAULT_SENSITIVE_KEYS: readonly string[] = [
  'password',
  'passwd',
  'passphrase',
  'pwd',
  'secret',
  'token',
  'apikey',
  'accesskey',
  'privatekey',
  'authorization',
  'auth',
  'cookie',
  'session',
  'sid',
  'credentials',
  'signature',
  'sig',
  'creditcard',
  'cardnumber',
  'ccnumber',
  'cvv',
  'cvv2',
  'cvc',
  'ssn',
  'pin',
  'otp',
];

/** Entries at least this long also match as a substring of a key. */
export const FRAGMENT_MIN_LENGTH = 5;

/** Keys longer than this are judged on their first characters only (a hostile key cannot make the check slow). */
const MAX_KEY_CHECK_LENGTH = 256;

/** Keys longer than this are not cached (they would only fill the cache). */
const MAX_CACHED_KEY_LENGTH = 64;

/** Cached answers before the cache is cleared. */
const MAX_CACHE_ENTRIES = 4096;

const SEPARATORS = /[-_.\s]/g;

/** Lower case, without `-`, `_`, `.` and white space. */
export function normalizeKey(key: string): string {
  return key.toLowerCase().replace(SEPARATORS, '');
}

/** Decides whether a key names a secret. Built once per logger. */
export class SensitiveKeys {
  readonly #exact: ReadonlySet<string>;
  readonly #fragments: readonly string[];
  readonly #cache = new Map<string, boolean>();

  /** @param entries normalized entries (see {@link normalizeKey}) */
  constructor(entries: readonly string[]) {
    this.#exact = new Set(entries);
    this.#fragments = entries.filter((entry) => entry.length >= FRAGMENT_MIN_LENGTH);
  }

  /** Entries of five or more characters (they match inside longer keys). */
  get fragments(): readonly string[] {
    return this.#fragments;
  }

  /** Entries shorter than five characters (they match whole keys only). */
  get shortEntries(): readonly string[] {
    return [...this.#exact].filter((entry) => entry.length < FRAGMENT_MIN_LENGTH);
  }

  /** True when `key` names a secret. */
  matches(key: string): boolean {
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const normalized = normalizeKey(key.length > MAX_KEY_CHECK_LENGTH ? key.slice(0, MAX_KEY_CHECK_LENGTH) : key);
    let result = this.#exact.has(normalized);
    if (!result) {
      for (const fragment of this.#fragments) {
        if (normalized.includes(fragment)) {
          result = true;
          break;
        }
      }
    }
    if (key.length <= MAX_CACHED_KEY_LENGTH) {
      if (this.#cache.size >= MAX_CACHE_ENTRIES) this.#cache.clear();
      this.#cache.set(key, result);
    }
    return result;
  }
}
