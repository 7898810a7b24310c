/**
 * One prom-client `Registry` shared by every layer of a stack. Layers register their
 * metrics through the get-or-create helpers here, so two layers (or two stacks in one
 * process, as in tests) never collide on a name.
 */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';

export { AggregatorRegistry, Counter, Gauge, Histogram, Registry };

/** Makes a fresh registry for one stack. */
export function createRegistry(): Registry {
  return new Registry();
}

type MetricConfig<L extends string> = {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
  /** Runs before each scrape (prom-client's `collect`): fold in figures tallied off prom-client. */
  readonly collect?: () => void;
};

/** Returns the counter registered under `config.name`, creating it if absent. */
export function counter<L extends string>(registry: Registry, config: MetricConfig<L>): Counter<L> {
  const existing = registry.getSingleMetric(config.name);
  if (existing) return existing as Counter<L>;
  return new Counter<L>({ ...config, labelNames: config.labelNames ?? [], registers: [registry] });
}

/** Returns the gauge registered under `config.name`, creating it if absent. */
export function gauge<L extends string>(
  registry: Registry,
  config: MetricConfig<L> & { readonly collect?: (this: Gauge<L>) => void | Promise<void> },
): Gauge<L> {
  const existing = registry.getSingleMetric(config.name);
  if (existing) return existing as Gauge<L>;
  return new Gauge<L>({ ...config, labelNames: config.labelNames ?? [], registers: [registry] });
}

/** Returns the histogram registered under `config.name`, creating it if absent. */
export function histogram<L extends string>(
  registry: Registry,
  config: MetricConfig<L> & { readonly buckets?: readonly number[] },
): Histogram<L> {
  const existing = registry.getSingleMetric(config.name);
  if (existing) return existing as Histogram<L>;
  return new Histogram<L>({
    ...config,
    labelNames: config.labelNames ?? [],
    buckets: config.buckets ? [...config.buckets] : undefined,
    registers: [registry],
  } as ConstructorParameters<typeof Histogram<L>>[0]);
}
