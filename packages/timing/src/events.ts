/**
 * Typed, disposable event listeners (ARCHITECTURE.md rule 10). A listener that throws is
 * logged once and does not stop the others.
 */
import type { Alert, Disposable, OnceLogger } from '@perfstack/core';
import type { ResolvedAlert } from './alerts/engine.js';

/** The events timing emits. */
export interface TimingEvents {
  /** A rule's condition has held for its `for` duration. */
  alert: (alert: Alert) => void;
  /** A firing rule's condition stopped holding. */
  resolved: (alert: ResolvedAlert) => void;
}

/** The event names. */
export type TimingEventName = keyof TimingEvents;

/** Listener sets per event. */
export class TimingEmitter {
  readonly #listeners: { [E in TimingEventName]: Set<TimingEvents[E]> } = { alert: new Set(), resolved: new Set() };
  readonly #log: OnceLogger;

  constructor(log: OnceLogger) {
    this.#log = log;
  }

  on<E extends TimingEventName>(event: E, listener: TimingEvents[E]): Disposable {
    const set = this.#listeners[event] as Set<TimingEvents[E]> | undefined;
    if (set === undefined) {
      throw new TypeError(`@perfstack/timing: unknown event ${JSON.stringify(event)}; events: alert, resolved`);
    }
    if (typeof listener !== 'function') {
      throw new TypeError(`@perfstack/timing: the listener for "${event}" must be a function`);
    }
    set.add(listener);
    return { dispose: () => set.delete(listener) };
  }

  emit<E extends TimingEventName>(event: E, payload: Parameters<TimingEvents[E]>[0]): void {
    for (const listener of this.#listeners[event]) {
      try {
        (listener as (p: typeof payload) => void)(payload);
      } catch (error) {
        this.#log.errorOnce(`TIMING_LISTENER_FAILED:${event}`, `a "${event}" listener threw`, { error: String(error) });
      }
    }
  }

  clear(): void {
    this.#listeners.alert.clear();
    this.#listeners.resolved.clear();
  }
}
