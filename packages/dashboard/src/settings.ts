/**
 * The dashboard's runtime settings: `GET /api/settings` (every tunable with its value, the
 * audit trail, autoTune's decisions), `PATCH /api/settings` (a JSON object of dotted paths to
 * values, all or nothing) and `POST /api/settings/undo` (`{ id }`), plus the concrete change
 * each report recommendation maps to. The caller has already passed the access and CSRF checks.
 */
import type { IncomingMessage } from 'node:http';
import {
  durationText,
  HttpProblemError,
  isSettingsError,
  type SettingInfo,
  type SettingsAuditEntry,
  type SettingsSource,
} from '@perfstack/core';
import type { PerformanceReport, Recommendation } from './report.js';

/** The concrete setting change a recommendation maps to (apply it with `PATCH /api/settings`). */
export interface ProposedChange {
  readonly path: string;
  readonly from: number | string | null;
  readonly to: number | string | null;
  /** `cache.routes./products/:id.ttl: 30s → 5m` */
  readonly text: string;
}

/** A settings source with autoTune's decisions, when it runs. */
interface WithDecisions {
  autoTune?: { decisions(): readonly unknown[]; readonly enabled: boolean };
}

/** Audit entries `GET /api/settings` returns (newest first). */
const AUDIT_SHOWN = 50;
const MAX_ID = 100;
/** A ttl raise goes to at least this, or doubles (up to a day). */
const TTL_FLOOR_MS = 300_000;
const TTL_CEILING_MS = 86_400_000;
/** A limit raise triples the limit. */
const LIMIT_FACTOR = 3;

/**
 * Who made a change, for the audit: the Basic user name, `bearer token`, or the client
 * address (loopback access, or an `auth` predicate that admitted it).
 */
export function actorOf(req: IncomingMessage): string {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const space = auth.indexOf(' ');
    const scheme = auth.slice(0, space).toLowerCase();
    if (scheme === 'basic') {
      const decoded = Buffer.from(auth.slice(space + 1).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return decoded.slice(0, Math.min(colon, 100));
    }
    if (scheme === 'bearer') return 'bearer token';
  }
  return `dashboard@${req.socket?.remoteAddress ?? 'unknown'}`;
}

/** `GET /api/settings` (`enabled: false` and empty lists when the dashboard has no settings). */
export function settingsView(settings: SettingsSource | undefined): Record<string, unknown> {
  if (settings === undefined) {
    return { enabled: false, settings: [], audit: [], autoTune: { enabled: false, decisions: [] } };
  }
  const decisions = (settings as WithDecisions).autoTune;
  return {
    enabled: true,
    settings: settings.list(),
    audit: settings.audit().slice(-AUDIT_SHOWN).reverse(),
    autoTune:
      decisions === undefined
        ? { enabled: false, decisions: [] }
        : { enabled: decisions.enabled, decisions: decisions.decisions() },
  };
}

/** Turns the settings API's errors into problems: a bad path or value is a 400 naming the path. */
function problemOf(error: unknown): unknown {
  if (!isSettingsError(error)) return error;
  if (error.path === 'id') return new HttpProblemError({ code: 'NOT_FOUND', detail: error.message });
  return new HttpProblemError({
    code: 'BAD_REQUEST',
    detail: error.message,
    extensions: { path: error.path },
  });
}

/** `PATCH /api/settings`: applies the body's changes (all or nothing); answers the audit entry and the settings. */
export async function patchSettings(
  settings: SettingsSource,
  body: unknown,
  actor: string,
): Promise<Record<string, unknown>> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpProblemError({
      code: 'BAD_REQUEST',
      detail: 'The body must be a JSON object of dotted paths to values.',
      extensions: { path: '' },
    });
  }
  try {
    const entry = await settings.set(body as Record<string, unknown>, { actor });
    return { ok: true, entry, settings: settings.list() };
  } catch (error) {
    throw problemOf(error);
  }
}

/** `POST /api/settings/undo` with `{ id }`: restores the entry's `before` values. */
export async function undoSettings(
  settings: SettingsSource,
  body: unknown,
  actor: string,
): Promise<Record<string, unknown>> {
  const id = (body as { id?: unknown } | null)?.id;
  const keys = typeof body === 'object' && body !== null && !Array.isArray(body) ? Object.keys(body) : undefined;
  if (keys === undefined || keys.length !== 1 || typeof id !== 'string' || id.length === 0 || id.length > MAX_ID) {
    throw new HttpProblemError({ code: 'BAD_REQUEST', detail: 'Send { "id": "<audit entry id>" }.' });
  }
  let entry: SettingsAuditEntry;
  try {
    entry = await settings.undo(id, { actor, reason: `undo of ${id}` });
  } catch (error) {
    throw problemOf(error);
  }
  return { ok: true, entry, settings: settings.list() };
}

const valueText = (s: SettingInfo, value: number | string | null) =>
  value === null ? 'none' : s.kind === 'duration' && typeof value === 'number' ? durationText(value) : String(value);

function proposal(s: SettingInfo, to: number): ProposedChange {
  return { path: s.path, from: s.value, to, text: `${s.path}: ${s.text} → ${valueText(s, to)}` };
}

/** The change a recommendation maps to, when a tunable setting can act on it. */
function proposeFor(r: Recommendation, byPath: ReadonlyMap<string, SettingInfo>): ProposedChange | undefined {
  if (r.rule === 'cache' && r.route !== null) {
    const s = byPath.get(`cache.routes.${r.route}.ttl`);
    if (s === undefined || typeof s.value !== 'number') return undefined;
    const to = Math.min(TTL_CEILING_MS, Math.max(TTL_FLOOR_MS, s.value * 2));
    return to > s.value ? proposal(s, to) : undefined;
  }
  if (r.rule === 'rateLimit' && r.route !== null) {
    const s = byPath.get('rateLimit.limit') ?? byPath.get(`rateLimit.limits.${r.route}.limit`);
    if (s === undefined || typeof s.value !== 'number') return undefined;
    return proposal(s, s.value * LIMIT_FACTOR);
  }
  if (r.rule === 'breakers' && r.route !== null) {
    // An open breaker: a longer time budget for that route only (`GET /x` is the breaker of `/x`).
    const pattern = r.route.slice(r.route.indexOf(' ') + 1);
    const s =
      byPath.get(`circuitBreaker.routes.${r.route}.timeout`) ?? byPath.get(`circuitBreaker.routes.${pattern}.timeout`);
    if (s === undefined || typeof s.value !== 'number') return undefined;
    return proposal(s, s.value * 2);
  }
  return undefined;
}

/**
 * Attaches to each recommendation the concrete setting change it maps to (`change`), e.g.
 * `cache.routes./products/:id.ttl: 30s → 5m`, `rateLimit.limit: 100 → 300` or, for an open
 * breaker, `circuitBreaker.routes./api/orders.timeout: 2s → 4s`.
 *
 * @param report the report as `buildReport` made it
 * @param settings the runtime settings, if any
 * @returns the report, recommendations with `change` where one applies
 */
export function attachChanges(report: PerformanceReport, settings: SettingsSource | undefined): PerformanceReport {
  if (settings === undefined || report.recommendations.length === 0) return report;
  let list: readonly SettingInfo[];
  try {
    list = settings.list();
  } catch {
    return report;
  }
  const byPath = new Map(list.map((s) => [s.path, s]));
  return {
    ...report,
    recommendations: report.recommendations.map((r) => {
      const change = proposeFor(r, byPath);
      return change === undefined ? r : { ...r, change };
    }),
  };
}
