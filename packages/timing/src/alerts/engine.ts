/**
 * The alert state machine. Per rule: `ok` -> `pending` when the condition first holds ->
 * `firing` once it has held for the rule's `for` duration (an `alert` event) -> `ok` as
 * soon as it stops holding (a `resolved` event). A rule that throws is logged once and
 * counts as not holding, so a buggy custom rule cannot stop the others.
 */
import type { Alert, OnceLogger } from '@perfstack/core';
import type { DetailedTimingSnapshot } from '../snapshot.js';
import type { CompiledRule } from './rules.js';

/** An alert that stopped holding. */
export interface ResolvedAlert extends Alert {
  /** ms (on timing's clock) when the condition stopped holding. */
  readonly resolvedAt: number;
}

type RuleState =
  | { readonly kind: 'ok' }
  | { readonly kind: 'pending'; readonly since: number }
  | { readonly kind: 'firing'; readonly since: number; readonly alert: Alert };

const OK: RuleState = { kind: 'ok' };

/** What one evaluation changed. */
export interface AlertChanges {
  readonly fired: readonly Alert[];
  readonly resolved: readonly ResolvedAlert[];
}

/** Evaluates the rules and remembers which are pending or firing. */
export class AlertEngine {
  readonly #rules: readonly CompiledRule[];
  readonly #states = new Map<string, RuleState>();
  readonly #log: OnceLogger;

  constructor(rules: readonly CompiledRule[], log: OnceLogger) {
    this.#rules = rules;
    this.#log = log;
    for (const rule of rules) this.#states.set(rule.name, OK);
  }

  /** The alerts firing now, in rule order. */
  active(): Alert[] {
    const out: Alert[] = [];
    for (const state of this.#states.values()) if (state.kind === 'firing') out.push(state.alert);
    return out;
  }

  /** Evaluates every rule against `snapshot` at time `now`. */
  evaluate(snapshot: DetailedTimingSnapshot, now: number): AlertChanges {
    const fired: Alert[] = [];
    const resolved: ResolvedAlert[] = [];
    for (const rule of this.#rules) {
      const state = this.#states.get(rule.name) ?? OK;
      const value = this.#measure(rule, snapshot);
      const holds = value !== undefined && (rule.when === 'above' ? value > rule.threshold : value < rule.threshold);
      if (!holds) {
        if (state.kind === 'firing') resolved.push({ ...state.alert, resolvedAt: now });
        this.#states.set(rule.name, OK);
        continue;
      }
      const since = state.kind === 'ok' ? now : state.since;
      if (now - since < rule.forMs) {
        this.#states.set(rule.name, { kind: 'pending', since });
        continue;
      }
      const alert = this.#describe(rule, value as number, since, snapshot);
      if (state.kind !== 'firing') fired.push(alert);
      this.#states.set(rule.name, { kind: 'firing', since, alert });
    }
    return { fired, resolved };
  }

  #measure(rule: CompiledRule, snapshot: DetailedTimingSnapshot): number | undefined {
    try {
      const value = rule.value(snapshot);
      return typeof value === 'number' && !Number.isNaN(value) ? value : undefined;
    } catch (error) {
      this.#log.errorOnce(
        `TIMING_RULE_FAILED:${rule.name}`,
        `alert rule "${rule.name}" threw; it counts as not holding`,
        {
          error: String(error),
        },
      );
      return undefined;
    }
  }

  #describe(rule: CompiledRule, value: number, since: number, snapshot: DetailedTimingSnapshot): Alert {
    let words: ReturnType<CompiledRule['describe']>;
    try {
      words = rule.describe(value, snapshot);
    } catch (error) {
      this.#log.errorOnce(
        `TIMING_RULE_FAILED:${rule.name}`,
        `alert rule "${rule.name}" threw while describing itself`,
        {
          error: String(error),
        },
      );
      words = { message: `${rule.name} is ${value}`, recommendation: 'The rule failed to describe itself.' };
    }
    const layer = words.layer ?? rule.layer;
    return {
      id: `${rule.name}@${since}`,
      rule: rule.name,
      severity: rule.severity,
      since,
      value,
      threshold: rule.threshold,
      message: words.message,
      recommendation: words.recommendation,
      ...(layer === undefined ? {} : { layer }),
      ...(words.route === undefined ? {} : { route: words.route }),
    };
  }
}
