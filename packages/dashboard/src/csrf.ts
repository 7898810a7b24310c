/**
 * CSRF defence for the dashboard's actions (cache invalidation, rate-limit and breaker
 * resets). Three independent checks, all required for a POST to run:
 *
 * 1. **Fetch metadata and origin.** `Sec-Fetch-Site`, when sent, must be `same-origin`;
 *    `Origin`, when sent, must name this very host (compared with the `Host` header).
 *    Browsers send at least one of them on every cross-site POST, so a forged form or
 *    `fetch` from another site fails here. Clients that send neither (curl, scripts) are
 *    not browsers and cannot be driven by another site; they still need the token.
 * 2. **A per-process token** (32 random bytes) served in the page's
 *    `<meta name="csrf-token">` and sent back in `X-CSRF-Token`. Another site can neither
 *    read the page nor set that header on a cross-site request without a CORS preflight.
 * 3. **JSON only.** The three content types an HTML form can send
 *    (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`) are refused.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpProblemError } from '@perfstack/core';

/** The header the page sends the token in. */
export const CSRF_HEADER = 'x-csrf-token';

const FORM_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']);

/** Makes a fresh token: 32 random bytes, base64url. */
export function createCsrfToken(): string {
  return randomBytes(32).toString('base64url');
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
 * @param expected the token as a buffer
 * @throws {HttpProblemError} 403 `FORBIDDEN` with `reason: 'csrf'` naming the rule that failed,
 *   or 415 `UNSUPPORTED_MEDIA_TYPE` when the body is neither JSON nor a form type
 */
export function checkCsrf(req: IncomingMessage, expected: Buffer): void {
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
  if (received.length !== expected.length || !timingSafeEqual(received, expected)) {
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
