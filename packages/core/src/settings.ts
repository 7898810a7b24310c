/**
 * The runtime-settings contract: what perfstack's `stack.settings` offers and the dashboard's
 * `GET`/`PATCH /api/settings` read and write. A setting is named by a dotted path
 * (`rateLimit.limit`, `cache.routes./products/:id.ttl`); its value is JSON (durations in ms).
 */

/** How a setting's value is written and checked. */
export type SettingKind = 'integer' | 'duration' | 'ratio' | 'level';

/** One tunable setting as `list()` returns it. */
export interface SettingInfo {
  /** Its dotted path, e.g. `cache.routes./products/:id.ttl`. */
  readonly path: string;
  /** The layer it belongs to: `cache`, `rateLimit`, `circuitBreaker`, `logger`. */
  readonly layer: string;
  readonly kind: SettingKind;
  /** The value in force (ms for a duration; `null`: none, e.g. no time budget). */
  readonly value: number | string | null;
  /** The value as a person writes it (`5m`, `300`, `info`, `none`). */
  readonly text: string;
  /** The value the stack was built with. */
  readonly configured: number | string | null;
  /** What it does, in one line. */
  readonly description: string;
}

/** One path's change in an audit entry. */
export interface SettingChange {
  readonly path: string;
  readonly before: number | string | null;
  readonly after: number | string | null;
}

/** One applied change (a `set`, an undo, an autoTune step or its rollback). */
export interface SettingsAuditEntry {
  /** Unique across the fleet. */
  readonly id: string;
  /** When it was made (ms since the epoch). */
  readonly at: number;
  /** Who made it: the dashboard user, `autoTune`, or what the code passed. */
  readonly actor: string;
  /** The instance where it was made. */
  readonly instance: string;
  readonly changes: readonly SettingChange[];
  /** The entry this one undid, if it is an undo. */
  readonly undoOf?: string;
  /** Why (autoTune's reason, an undo's). */
  readonly reason?: string;
}

/** Who and why, for the audit. */
export interface SettingsActor {
  /** @default 'code' */
  readonly actor?: string;
  readonly reason?: string;
}

/** The runtime-settings API (`stack.settings`, the dashboard's `settings` option). */
export interface SettingsSource {
  /** Every tunable setting with its value in force. */
  list(): readonly SettingInfo[];
  /** One setting's value in force, or `undefined` for an unknown path. */
  get(path: string): number | string | null | undefined;
  /**
   * Changes settings, all or nothing: every path and value is validated as the construction
   * options are before anything is applied. Applied here, then on every instance (Redis) or
   * worker (`perfstack/cluster`); audited.
   *
   * @throws {SettingsError} naming the first bad path
   */
  set(changes: Readonly<Record<string, unknown>>, actor?: SettingsActor): Promise<SettingsAuditEntry>;
  /**
   * Restores the `before` values of an audit entry (fleet-wide), as a new entry with `undoOf`.
   *
   * @throws {SettingsError} when no entry has that id
   */
  undo(id: string, actor?: SettingsActor): Promise<SettingsAuditEntry>;
  /** The audit trail, oldest first (bounded). */
  audit(): readonly SettingsAuditEntry[];
}

/** A setting that cannot be set: an unknown path or a bad value. `path` names it. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  readonly code = 'BAD_SETTING';
  readonly status = 400;
  /** The dotted path at fault (`''` for the body as a whole). */
  readonly path: string;

  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

/** Type guard for {@link SettingsError} (works across package copies). */
export function isSettingsError(error: unknown): error is SettingsError {
  return (
    error instanceof SettingsError ||
    (typeof error === 'object' &&
      error !== null &&
      (error as { name?: unknown }).name === 'SettingsError' &&
      typeof (error as { path?: unknown }).path === 'string')
  );
}

/**
 * A duration in ms as a person writes it: `5m`, `30s`, `1500ms`, `2h`.
 *
 * @param ms a whole number of milliseconds
 * @returns the shortest exact form
 * @example durationText(300_000) // '5m'
 */
export function durationText(ms: number): string {
  if (ms > 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms > 0 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
