/**
 * CSRF defence for the dashboard's actions (cache invalidation, rate-limit and breaker
 * resets). Three independent checks, all required for a POST to run:
 *
 * 1. **Fetch metadata and origin.** `Sec-Fetch-Site`, when sent, must be `same-origin`;
 *    `Origin`, when sent, must name this very host (compared with the `Host` header).
 *    Browsers send at least one of them on every cross-site POST, so a forged form or
 *    `fetch` from another site fails here. Clients that send neither (curl, scripts) are
 *    not browsers and cannot be driven by another site; they still need the token.
 * 2. **A token** served in the page's `<meta name="csrf-token">` and sent back in
 *    `X-CSRF-Token`. Another site can neither read the page nor set that header on a
 *    cross-site request without a CORS preflight. The token is one of (see {@link CsrfTokens}):
 *    - derived from `csrfSecret` (HMAC-SHA256), the same on every instance sharing the secret;
 *    - else, with a shared Redis, one token the instances agree on through `SET NX` on
 *      `<keyPrefix>dashboard:csrf`, so a page from instance A works on instance B behind a
 *      load balancer;
 *    - else (and until that agreement) 32 random bytes made by this process.
 * 3. **JSON only.** The three content types an HTML form can send
 *    (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`) are refused.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type Disposable, HttpProblemError, type OnceLogger, type SharedRedis } from '@perfstack/core';

/** The header the page sends the token in. */
export const CSRF_HEADER = 'x-csrf-token';

const FORM_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']);

/** Makes a fresh token: 32 random bytes, base64url. */
export function createCsrfToken(): string {
  return randomBytes(32).toString('base64url');
}

/** What the secret is HMACed over; the version lets a future scheme change the token. */
export const CSRF_DERIVATION_LABEL = 'perfstack-dashboard-csrf-v1';

/**
 * The token every instance sharing `secret` serves and accepts:
 * HMAC-SHA256(secret, {@link CSRF_DERIVATION_LABEL}), base64url (43 characters).
 */
export function deriveCsrfToken(secret: string): string {
  return createHmac('sha256', secret).update(CSRF_DERIVATION_LABEL).digest('base64url');
}

/** The key the fleet agrees on its token under, after the shared connection's key prefix. */
export const CSRF_KEY = 'dashboard:csrf';

/** A token as this module makes them: 32 bytes in base64url. Anything else read from Redis is refused. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/**
 * Most tokens accepted at once: this process's own, plus the fleet tokens it has served.
 * More than one fleet token only happens when the Redis key was lost (a Redis restart
 * without persistence) and a new instance set another before the others reconnected.
 */
const MAX_ACCEPTED = 4;

/** Settings for {@link CsrfTokens}. */
export interface CsrfTokenSettings {
  /** `csrfSecret`: the token is derived from it and Redis is not used. */
  readonly secret: string | undefined;
  /** The shared connection to agree through, when there is no secret. */
  readonly redis: SharedRedis | undefined;
  readonly log: OnceLogger;
}

/**
 * The token(s) of one dashboard.
 *
 * Agreement through Redis, when there is no secret: the process starts with its own random
 * token, then runs `SET <prefix>dashboard:csrf <current> NX` and adopts whatever the key
 * holds (its own value if it set it first, else the value another instance set). It runs at
 * construction, whenever the connection comes (back) up, and — while not yet agreed — in the
 * background on each page load and action. The key has no expiry: a token that expired would
 * split a running fleet again (each instance keeps the value it adopted), and the token is no
 * credential (the access check runs first). Every instance offers the value it adopted, so
 * after a Redis restart that lost the key, the first to reconnect puts the same value back.
 * To rotate the token, delete the key and restart the instances.
 *
 * Redis is never waited on: `current` and `accepted` answer at once from memory, every
 * command goes through `SharedRedis.run` (bounded by its command timeout), and every failure
 * is caught (logged once unless Redis is merely down, which the connection already reports).
 */
export class CsrfTokens {
  readonly #redis: SharedRedis | undefined;
  readonly #log: OnceLogger;
  #current: string;
  /** This process's own token first (never dropped: its pages stay valid), then fleet tokens. */
  readonly #accepted: Buffer[];
  #agreed: boolean;
  #agreeing: Promise<void> | undefined;
  /** The connection came (back) up during an attempt: run one more after it. */
  #again = false;
  #statusListener: Disposable | undefined;
  #closed = false;

  constructor(settings: CsrfTokenSettings) {
    this.#log = settings.log;
    if (settings.secret !== undefined) {
      this.#current = deriveCsrfToken(settings.secret);
      this.#agreed = true;
      this.#redis = undefined;
    } else {
      this.#current = createCsrfToken();
      this.#agreed = false;
      this.#redis = settings.redis;
    }
    this.#accepted = [Buffer.from(this.#current, 'utf8')];
    const redis = this.#redis;
    if (redis === undefined) return;
    if (typeof redis.onStatusChange === 'function') {
      this.#statusListener = redis.onStatusChange((status) => {
        if (status !== 'up') return;
        if (this.#agreeing !== undefined) this.#again = true;
        else void this.agree();
      });
    }
    void this.agree();
  }

  /** The token new pages are rendered with. */
  get current(): string {
    return this.#current;
  }

  /** Every token an action may carry. */
  get accepted(): readonly Buffer[] {
    return this.#accepted;
  }

  /** Called on page loads and actions: retries the agreement in the background while there is none. */
  touch(): void {
    if (!this.#agreed && this.#redis !== undefined) void this.agree();
  }

  /**
   * Agrees on the fleet token through Redis (one attempt at a time). Never rejects; resolves
   * at once while the connection is down.
   */
  agree(): Promise<void> {
    const redis = this.#redis;
    if (redis === undefined || this.#closed) return Promise.resolve();
    this.#agreeing ??= this.#exchange(redis)
      .catch((error: unknown) => {
        this.#log.warnOnce(
          'DASHBOARD_CSRF_AGREE',
          'could not agree on the CSRF token through Redis (retried later); meanwhile pages served by other instances may be refused here',
          { error: error instanceof Error ? error.message : String(error) },
        );
      })
      .finally(() => {
        this.#agreeing = undefined;
        if (this.#again) {
          this.#again = false;
          void this.agree();
        }
      });
    return this.#agreeing;
  }

  async #exchange(redis: SharedRedis): Promise<void> {
    // While down, `run()` would refuse at once anyway; the connection itself reports the outage.
    if (!redis.isUp) return;
    const key = `${redis.keyPrefix}${CSRF_KEY}`;
    const candidate = this.#current;
    const set = await redis.run((c) => c.set(key, candidate, { condition: 'NX' }));
    const value = set === 'OK' ? candidate : await redis.run((c) => c.get(key));
    this.#log.reset('DASHBOARD_CSRF_AGREE');
    // null: the key vanished between SET and GET; the next attempt sets it again.
    if (value === null || value === undefined) return;
    if (typeof value !== 'string' || !TOKEN_SHAPE.test(value)) {
      this.#log.warnOnce(
        'DASHBOARD_CSRF_VALUE',
        `the Redis key ${key} does not hold a dashboard CSRF token; this instance keeps its own token`,
      );
      return;
    }
    this.#adopt(value);
  }

  #adopt(token: string): void {
    if (this.#closed) return;
    this.#agreed = true;
    if (token === this.#current) return;
    const buffer = Buffer.from(token, 'utf8');
    if (!this.#accepted.some((b) => b.equals(buffer))) {
      this.#accepted.push(buffer);
      // Keep the own token (index 0); drop the oldest fleet token beyond the cap.
      if (this.#accepted.length > MAX_ACCEPTED) this.#accepted.splice(1, 1);
    }
    this.#current = token;
  }

  /** Stops listening to the connection. */
  close(): void {
    this.#closed = true;
    this.#statusListener?.dispose();
    this.#statusListener = undefined;
  }
}

/** True when `received` equals one of `accepted`, compared in constant time. */
function matchesOne(received: Buffer, accepted: readonly Buffer[]): boolean {
  let match = false;
  for (const token of accepted) {
    if (token.length === received.length && timingSafeEqual(token, received)) match = true;
  }
  return match;
}

function forbidden(detail: string): HttpProblemError {
  return new HttpProblemError({ code: 'FORBIDDEN', detail, extensions: { reason: 'csrf' } });
}

/** The `host[:port]` an origin or Host header names, normalised (lower case, default port dropped). */
function hostOf(value: string, scheme: string): string | undefined {
  try {
    return new URL(`${scheme}//${value}`).host;
  } catch {
    return undefined;
  }
}

/** True when `Origin` names the host this request was sent to. */
export function isSameOrigin(origin: string, hostHeader: string | undefined): boolean {
  if (hostHeader === undefined || origin === 'null') return false;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return false;
  if (parsed.origin !== origin.toLowerCase().replace(/\/$/, '')) return false;
  // The scheme is not known behind a TLS-terminating proxy; the host and port must match.
  return parsed.host === hostOf(hostHeader, parsed.protocol);
}

/**
 * Checks a POST against the three rules above.
 *
 * @param req the request
 * @param accepted the tokens accepted (see {@link CsrfTokens.accepted})
 * @throws {HttpProblemError} 403 `FORBIDDEN` with `reason: 'csrf'` naming the rule that failed,
 *   or 415 `UNSUPPORTED_MEDIA_TYPE` when the body is neither JSON nor a form type
 */
export function checkCsrf(req: IncomingMessage, accepted: readonly Buffer[]): void {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') {
    throw forbidden(`Cross-site request refused (Sec-Fetch-Site: ${String(site).slice(0, 40)}).`);
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !isSameOrigin(origin, req.headers.host)) {
    throw forbidden('Cross-origin request refused (Origin does not match Host).');
  }
  const token = req.headers[CSRF_HEADER];
  if (typeof token !== 'string' || token.length === 0) throw forbidden('The X-CSRF-Token header is missing.');
  const received = Buffer.from(token, 'utf8');
  if (!matchesOne(received, accepted)) {
    throw forbidden('The X-CSRF-Token header is not valid.');
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (FORM_TYPES.has(type)) throw forbidden(`Form submissions (${type}) are refused; send application/json.`);
  if (type !== 'application/json') {
    throw new HttpProblemError({
      code: 'UNSUPPORTED_MEDIA_TYPE',
      detail: 'Actions take an application/json body.',
    });
  }
}
