/**
 * The rate-limit response headers, in express-rate-limit's formats:
 *
 * - `draft-8` (default; draft-ietf-httpapi-ratelimit-headers-08): one list member per limit,
 *   `RateLimit-Policy: "100-in-1min"; q=100; w=60` and `RateLimit: "100-in-1min"; r=99; t=60`.
 *   The optional `pk` partition-key parameter is left out: express-rate-limit hashes the
 *   key with SHA-256 on every request for it, and the draft makes it optional.
 * - `draft-7`: `RateLimit-Policy: 100;w=60` (one member per limit) and
 *   `RateLimit: limit=100, remaining=99, reset=60` for the most restrictive limit.
 * - `draft-6`: `RateLimit-Policy`, `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
 *   for the most restrictive limit.
 * - legacy (`legacyHeaders: true`): `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
 *   `X-RateLimit-Reset` (epoch seconds).
 *
 * Everything that does not change per request (policies, quoted names) is built once.
 */
import type { ServerResponse } from 'node:http';
import type { Decision } from './store/types.js';

/** IETF draft versions of the headers. */
export type HeadersDraft = 'draft-6' | 'draft-7' | 'draft-8';

/** What a limit contributes to the headers. */
export interface HeaderLimit {
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
}

/** The precomputed header plan of one limiter. */
export interface HeaderPlan {
  readonly draft: HeadersDraft | undefined;
  readonly legacy: boolean;
  /** The `RateLimit-Policy` value. */
  readonly policy: string;
  /** draft-8: `"name"; r=` per limit. */
  readonly prefixes: readonly string[];
  readonly limits: readonly number[];
}

/** Builds the constant parts of the headers. */
export function headerPlan(
  limits: readonly HeaderLimit[],
  draft: HeadersDraft | undefined,
  legacy: boolean,
): HeaderPlan {
  const seconds = (ms: number) => Math.ceil(ms / 1000);
  const policy =
    draft === 'draft-8'
      ? limits.map((l) => `"${l.name}"; q=${l.limit}; w=${seconds(l.windowMs)}`).join(', ')
      : limits.map((l) => `${l.limit};w=${seconds(l.windowMs)}`).join(', ');
  return {
    draft,
    legacy,
    policy,
    prefixes: limits.map((l) => `"${l.name}"; r=`),
    limits: limits.map((l) => l.limit),
  };
}

/** Index of the most restrictive limit in a decision: fewest remaining, then longest reset. */
export function tightest(decision: Decision, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) {
    const r = decision[2 + 2 * i] as number;
    const b = decision[2 + 2 * best] as number;
    if (r < b || (r === b && (decision[3 + 2 * i] as number) > (decision[3 + 2 * best] as number))) best = i;
  }
  return best;
}

/**
 * Sets the headers of `plan` from a decision; nothing when the headers are already sent.
 *
 * @param now the limiter's clock (for the legacy epoch reset)
 */
export function setRateLimitHeaders(res: ServerResponse, plan: HeaderPlan, decision: Decision, now: number): void {
  // Express gives every request's `res` its own hidden class, so each property read on it
  // is a slow lookup: `headersSent` is consulted only when setting a header failed.
  try {
    writeHeaders(res, plan, decision, now);
  } catch (error) {
    if (!res.headersSent) throw error;
  }
}

/**
 * The same headers as flat `[name, value, ...]` pairs appended to `out`, for a response
 * written with `writeHead(status, rawHeaders)` (the stack's early refusals).
 */
export function pushRateLimitHeaders(out: string[], plan: HeaderPlan, decision: Decision, now: number): void {
  writeHeaders(out, plan, decision, now);
}

/** A response or a flat header list. */
type HeaderTarget = ServerResponse | string[];
type SetHeader = ServerResponse['setHeader'];

/** Appends to the list, or sets on the response with its `setHeader` read once. */
function put(target: HeaderTarget, setHeader: SetHeader | undefined, name: string, value: string): void {
  if (setHeader === undefined) (target as string[]).push(name, value);
  else setHeader.call(target as ServerResponse, name, value);
}

function writeHeaders(res: HeaderTarget, plan: HeaderPlan, decision: Decision, now: number): void {
  const n = plan.limits.length;
  const draft = plan.draft;
  // Express gives every request's `res` its own hidden class, so each property read on it is
  // a slow lookup: `setHeader` is read once.
  const setHeader = Array.isArray(res) ? undefined : res.setHeader;
  if (draft === 'draft-8') {
    let value = `${plan.prefixes[0]}${decision[2]}; t=${Math.ceil((decision[3] as number) / 1000)}`;
    for (let i = 1; i < n; i++) {
      value += `, ${plan.prefixes[i]}${decision[2 + 2 * i]}; t=${Math.ceil((decision[3 + 2 * i] as number) / 1000)}`;
    }
    put(res, setHeader, 'RateLimit-Policy', plan.policy);
    put(res, setHeader, 'RateLimit', value);
  }
  if (draft === 'draft-7' || draft === 'draft-6' || plan.legacy) {
    const t = n === 1 ? 0 : tightest(decision, n);
    const limit = plan.limits[t] as number;
    const remaining = decision[2 + 2 * t] as number;
    const resetMs = decision[3 + 2 * t] as number;
    const reset = Math.ceil(resetMs / 1000);
    if (draft === 'draft-7') {
      put(res, setHeader, 'RateLimit-Policy', plan.policy);
      put(res, setHeader, 'RateLimit', `limit=${limit}, remaining=${remaining}, reset=${reset}`);
    } else if (draft === 'draft-6') {
      put(res, setHeader, 'RateLimit-Policy', plan.policy);
      put(res, setHeader, 'RateLimit-Limit', String(limit));
      put(res, setHeader, 'RateLimit-Remaining', String(remaining));
      put(res, setHeader, 'RateLimit-Reset', String(reset));
    }
    if (plan.legacy) {
      put(res, setHeader, 'X-RateLimit-Limit', String(limit));
      put(res, setHeader, 'X-RateLimit-Remaining', String(remaining));
      put(res, setHeader, 'X-RateLimit-Reset', String(Math.ceil((now + resetMs) / 1000)));
    }
  }
}
