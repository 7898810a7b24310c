/**
 * Who may see the dashboard, `/metrics` and `/health` (ARCHITECTURE.md: "not public by default").
 *
 * - No `auth`: loopback clients only, judged on the TCP peer (`req.socket.remoteAddress`).
 *   `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are never read: any client can send them.
 * - `auth: { username, password }`: HTTP Basic (RFC 7617), for every client, loopback included.
 * - `auth: { token }`: `Authorization: Bearer <token>` (RFC 6750), for every client.
 * - `auth: (req) => boolean | Promise<boolean>`: the app decides (a session, an mTLS peer...).
 * - `public: true` (`/metrics` and `/health` only): anyone.
 *
 * Secrets are compared through SHA-256 digests with `timingSafeEqual`, so neither their
 * content nor their length leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpProblemError, optionTypeError } from '@perfstack/core';

/** Basic-auth credentials. */
export interface BasicAuth {
  readonly username: string;
  readonly password: string;
}

/** A bearer token. */
export interface TokenAuth {
  readonly token: string;
}

/** Decides per request; a rejection or a throw counts as "no". */
export type AuthPredicate = (req: IncomingMessage) => boolean | Promise<boolean>;

/** The `auth` option of the dashboard, `metricsHandler` and `healthHandler`. */
export type DashboardAuth = BasicAuth | TokenAuth | AuthPredicate;

/** What {@link createAccessCheck} returns: resolves when the request may pass, rejects with a problem otherwise. */
export type AccessCheck = (req: IncomingMessage) => Promise<void> | undefined;

const REALM = 'perfstack';

/**
 * True when `address` is a loopback address: `127.0.0.0/8`, `::1`, or an IPv4-mapped
 * `::ffff:127.x.y.z`. Anything else, `undefined` included (a destroyed socket), is not.
 *
 * @param address a socket's `remoteAddress`
 * @returns whether the peer is on this host's loopback interface
 * @example isLoopbackAddress('::ffff:127.0.0.1') // true
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (typeof address !== 'string' || address.length === 0) return false;
  let v4 = address;
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:')) v4 = address.slice(7);
  else if (address.includes(':')) return isIpv6Loopback(lower);
  const parts = v4.split('.');
  if (parts.length !== 4) return false;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return false;
  }
  return parts[0] === '127';
}

/** `::1` in any of its spellings (`0:0:0:0:0:0:0:1`, `::0:1`...), nothing else. */
function isIpv6Loopback(address: string): boolean {
  if (address === '::1') return true;
  if (!/^[0-9a-f:]+$/.test(address)) return false;
  const halves = address.split('::');
  if (halves.length > 2) return false;
  const head = halves[0] === '' ? [] : (halves[0] ?? '').split(':');
  const tail = halves.length === 2 ? (halves[1] === '' ? [] : (halves[1] ?? '').split(':')) : [];
  const groups =
    halves.length === 2 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head;
  if (groups.length !== 8) return false;
  return groups.every((g, i) => g.length > 0 && g.length <= 4 && Number.parseInt(g, 16) === (i === 7 ? 1 : 0));
}

/**
 * Validates an `auth` option at construction.
 *
 * @throws {TypeError} naming the option when it is not one of the accepted forms
 */
export function readAuth(pkg: string, option: string, value: unknown): DashboardAuth | undefined {
  if (value === undefined) return undefined;
  const accepted =
    '{ username, password } (non-empty strings), { token } (a non-empty string), or a function (req) => boolean';
  if (typeof value === 'function') return value as AuthPredicate;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw optionTypeError(pkg, option, value, accepted);
  }
  const keys = Object.keys(value).sort().join(',');
  const record = value as Record<string, unknown>;
  if (keys === 'password,username') {
    const { username, password } = record;
    if (typeof username !== 'string' || username === '' || username.includes(':')) {
      throw optionTypeError(pkg, `${option}.username`, username, 'a non-empty string without ":" (RFC 7617)');
    }
    if (typeof password !== 'string' || password === '') {
      throw optionTypeError(pkg, `${option}.password`, password, 'a non-empty string');
    }
    return { username, password };
  }
  if (keys === 'token') {
    const { token } = record;
    if (typeof token !== 'string' || token === '' || !/^[\x21-\x7e]+$/.test(token)) {
      throw optionTypeError(pkg, `${option}.token`, token, 'a non-empty string of visible ASCII characters');
    }
    return { token };
  }
  throw optionTypeError(pkg, option, value, accepted);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

function sameSecret(expected: Buffer, received: string): boolean {
  return timingSafeEqual(expected, digest(received));
}

function unauthorized(scheme: 'Basic' | 'Bearer', detail: string): HttpProblemError {
  const challenge =
    scheme === 'Basic' ? `Basic realm="${REALM}", charset="UTF-8"` : `Bearer realm="${REALM}", error="invalid_token"`;
  return new HttpProblemError({ code: 'UNAUTHORIZED', detail, headers: { 'WWW-Authenticate': challenge } });
}

/** Reads the credentials part of `Authorization: <scheme> <credentials>` (scheme is case-insensitive, RFC 9110 §11.1). */
function credentialsFor(req: IncomingMessage, scheme: string): string | undefined {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const space = header.indexOf(' ');
  if (space === -1 || header.slice(0, space).toLowerCase() !== scheme) return undefined;
  return header.slice(space + 1).trim();
}

/**
 * Builds the access check run before every protected route. Work (digests, challenge
 * strings) happens here, once; the returned function does a few comparisons.
 *
 * @param auth the validated `auth` option, or `undefined` for loopback-only
 * @param isPublic open to anyone (`/metrics`, `/health` with `public: true`)
 * @param onPredicateError called when a predicate throws or rejects (the request is refused)
 * @returns `undefined` when the request may pass at once, a promise for predicates, or throws a problem
 * @throws {HttpProblemError} 401 (wrong or missing credentials, with `WWW-Authenticate`) or 403
 */
export function createAccessCheck(
  auth: DashboardAuth | undefined,
  isPublic: boolean,
  onPredicateError: (error: unknown) => void,
): AccessCheck {
  if (isPublic) return () => undefined;
  if (auth === undefined) {
    return function loopbackOnly(req) {
      if (isLoopbackAddress(req.socket.remoteAddress)) return undefined;
      throw new HttpProblemError({
        code: 'FORBIDDEN',
        detail: 'Only loopback clients may use this endpoint; configure auth to open it to others.',
      });
    };
  }
  if (typeof auth === 'function') {
    const forbidden = () => new HttpProblemError({ code: 'FORBIDDEN', detail: 'Access denied.' });
    return async function predicateAccess(req) {
      let allowed: boolean;
      try {
        allowed = (await auth(req)) === true;
      } catch (error) {
        onPredicateError(error);
        allowed = false;
      }
      if (!allowed) throw forbidden();
    };
  }
  if ('token' in auth) {
    const expected = digest(auth.token);
    return function bearerAccess(req) {
      const token = credentialsFor(req, 'bearer');
      if (token === undefined) throw unauthorized('Bearer', 'A bearer token is required.');
      if (!sameSecret(expected, token)) throw unauthorized('Bearer', 'The bearer token is not valid.');
      return undefined;
    };
  }
  const expectedUser = digest(auth.username);
  const expectedPassword = digest(auth.password);
  return function basicAccess(req) {
    const encoded = credentialsFor(req, 'basic');
    if (encoded === undefined) throw unauthorized('Basic', 'Credentials are required.');
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    // Both comparisons always run, so a right username does not answer faster than a wrong one.
    const userOk = sameSecret(expectedUser, colon === -1 ? '' : decoded.slice(0, colon));
    const passwordOk = sameSecret(expectedPassword, colon === -1 ? '' : decoded.slice(colon + 1));
    if (!(userOk && passwordOk)) throw unauthorized('Basic', 'The credentials are not valid.');
    return undefined;
  };
}
