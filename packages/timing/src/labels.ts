/**
 * Bounded label values. Every request is filed under a (method, route, status) kind whose
 * label object is built once and reused, so the hot path never builds label strings or
 * objects. Routes come from `@perfstack/core`'s `routeLabel` (a pattern such as
 * `/users/:id`, never the raw URL); past `maxRoutes` distinct patterns, new ones share
 * {@link OTHER_ROUTE}, which keeps Prometheus series and the per-route table bounded
 * however many routes or URLs arrive.
 */
import { UNMATCHED_ROUTE } from '@perfstack/core';
import type { HttpSeries } from './metrics.js';
import { RouteSeries } from './windows.js';

/** The route label shared by patterns past the `maxRoutes` cap. */
export const OTHER_ROUTE = 'other';

/** The method the shared overflow series of the per-route table is filed under. */
export const ANY_METHOD = '*';

/** Prometheus labels of one request kind. */
export interface KindLabels {
  readonly method: string;
  readonly route: string;
  readonly status_code: string;
}

/** One (method, route, status) combination, with everything precomputed for it. */
export interface RequestKind {
  readonly method: string;
  readonly route: string;
  readonly status: number;
  readonly labels: KindLabels;
  readonly series: RouteSeries;
  /** Its Prometheus series, cached by `HttpMetrics` on first use. */
  httpSeries: HttpSeries | undefined;
}

/** Interns request kinds, caps route values and owns the per-route series. */
export class LabelTable {
  readonly #maxRoutes: number;
  readonly #routes = new Set<string>();
  readonly #kinds = new Map<string, Map<string, Map<number, RequestKind>>>();
  readonly #series = new Map<string, RouteSeries>();
  #overflowSeries: RouteSeries | undefined;

  constructor(maxRoutes: number) {
    this.#maxRoutes = maxRoutes;
  }

  /** The route value to label `route` with: itself while under the cap, else {@link OTHER_ROUTE}. */
  cap(route: string): string {
    if (this.#routes.has(route) || route === UNMATCHED_ROUTE || route === OTHER_ROUTE) return route;
    if (this.#routes.size >= this.#maxRoutes) return OTHER_ROUTE;
    this.#routes.add(route);
    return route;
  }

  /** The interned kind of a request. O(1): three map lookups once the kind is known. */
  kind(method: string, rawRoute: string, status: number): RequestKind {
    const route = this.cap(rawRoute);
    let byRoute = this.#kinds.get(method);
    if (byRoute === undefined) {
      byRoute = new Map();
      this.#kinds.set(method, byRoute);
    }
    let byStatus = byRoute.get(route);
    if (byStatus === undefined) {
      byStatus = new Map();
      byRoute.set(route, byStatus);
    }
    let kind = byStatus.get(status);
    if (kind === undefined) {
      kind = {
        method,
        route,
        status,
        labels: Object.freeze({ method, route, status_code: String(status) }),
        series: this.#seriesFor(method, route),
        httpSeries: undefined,
      };
      byStatus.set(status, kind);
    }
    return kind;
  }

  /** The per-route series of (method, route); past `maxRoutes` series, one shared overflow series. */
  #seriesFor(method: string, route: string): RouteSeries {
    const key = `${method} ${route}`;
    let series = this.#series.get(key);
    if (series !== undefined) return series;
    if (this.#series.size >= this.#maxRoutes) {
      this.#overflowSeries ??= new RouteSeries(ANY_METHOD, OTHER_ROUTE);
      return this.#overflowSeries;
    }
    series = new RouteSeries(method, route);
    this.#series.set(key, series);
    return series;
  }

  /** Every per-route series (the overflow one last). */
  *series(): IterableIterator<RouteSeries> {
    yield* this.#series.values();
    if (this.#overflowSeries !== undefined) yield this.#overflowSeries;
  }

  /** Distinct route values admitted under the cap (not counting the shared ones). */
  get routeCount(): number {
    return this.#routes.size;
  }
}
