/**
 * The logged URL: the path through the value patterns, and each query parameter whose
 * name names a secret (`?token=`, `?api_key=`, `?password=`, `?X-Amz-Signature=`) with
 * its value replaced by the censor. A value that hides a secret only once decoded
 * (`?q=Bearer%20abc…`, `4111+1111+…`) is caught too.
 */
import type { DeepRedactor } from './deep.js';
import type { StringRedactor } from './strings.js';
import { truncate } from './strings.js';

/** `decodeURIComponent` that never throws (`+` as space, as in forms). */
function safeDecode(value: string): string {
  const spaced = value.includes('+') ? value.replace(/\+/g, ' ') : value;
  if (!spaced.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

/** Redacts URLs. Built once per logger. */
export class UrlRedactor {
  readonly #string: StringRedactor;
  readonly #deep: DeepRedactor;
  readonly #censor: string;
  readonly #maxLength: number;

  constructor(string: StringRedactor, deep: DeepRedactor, censor: string, maxLength: number) {
    this.#string = string;
    this.#deep = deep;
    this.#censor = censor;
    this.#maxLength = maxLength;
  }

  /** Returns `url` with secrets censored (the same string when there are none). */
  redact(url: string): string {
    const cut = url.length > this.#maxLength ? truncate(url, this.#maxLength) : url;
    const q = cut.indexOf('?');
    if (q === -1) return this.#string(cut);
    const path = this.#string(cut.slice(0, q));
    const query = cut.slice(q + 1);
    if (query === '') return `${path}?`;
    const parts = query.split('&');
    for (let i = 0; i < parts.length; i++) parts[i] = this.#parameter(parts[i] as string);
    return `${path}?${parts.join('&')}`;
  }

  #parameter(part: string): string {
    const eq = part.indexOf('=');
    if (eq === -1) return this.#string(part);
    const name = part.slice(0, eq);
    if (this.#deep.isSensitiveKey(safeDecode(name))) return `${name}=${this.#censor}`;
    const value = part.slice(eq + 1);
    if (value.length < 8) return part;
    const redacted = this.#string(value);
    if (redacted !== value) return `${name}=${redacted}`;
    if (value.includes('%') || value.includes('+')) {
      const decoded = safeDecode(value);
      if (this.#string(decoded) !== decoded) return `${name}=${this.#censor}`;
    }
    return part;
  }
}
