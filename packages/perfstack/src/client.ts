/**
 * `stack.client(name, options)`: a resilient outbound client (@perfstack/circuit-breaker's
 * `createClient`) on the stack's shared registry and logger, closed by `stack.close()`,
 * and reported in `/health` under `clients` (for the clients made before `stack.health()`
 * is first called, the `clients` check then covers every later client too).
 */
import { type Client, type ClientOptions, createClient } from '@perfstack/circuit-breaker';
import type { HealthCheck, HealthSource, OutboundSource, PerfstackLogger, Registry } from '@perfstack/core';
import { offloadPoolsOn } from './offload.js';

/** Options of `stack.client()`: those of `createClient`, without the shared registry and logger. */
export type StackClientOptions = Omit<ClientOptions, 'registry' | 'logger'>;

/**
 * The outbound view for the dashboard: every client of the stack and every offload pool on the
 * stack's registry (`stack.offload()`, or `offload()` given `registry: stack.registry`).
 */
export function outboundSource(clients: ReadonlySet<Client>, registry: Registry): OutboundSource {
  return {
    snapshot() {
      return {
        clients: [...clients].map((c) => {
          const s = c.snapshot();
          return {
            name: s.name,
            origins: s.origins.map((o) => ({
              origin: o.origin,
              healthy: o.healthy,
              pending: o.pending,
              state: o.breaker.state,
            })),
            active: s.active,
            queued: s.queued,
            retryRate: s.retryRate,
          };
        }),
        pools: offloadPoolsOn(registry).map((p) => ({
          pool: p.pool,
          threads: p.threads,
          running: p.running,
          queued: p.queued,
          maxQueue: p.maxQueue,
          utilization: p.utilization,
          waitP50Ms: finite(p.waitP50Ms),
          waitP99Ms: finite(p.waitP99Ms),
          runP50Ms: finite(p.runP50Ms),
          runP99Ms: finite(p.runP99Ms),
          completed: p.completed,
          shed: p.shed,
        })),
      };
    },
  };
}

const finite = (value: number) => (Number.isFinite(value) ? Math.round(value * 100) / 100 : 0);

/** Builds the stack's `client()` method. */
export function stackClient(
  shared: { readonly registry: Registry; readonly logger: PerfstackLogger },
  healthChecks: Record<string, HealthSource>,
  opened: Array<{ close(): Promise<void> }>,
): { readonly client: (name: string, options: StackClientOptions) => Client; readonly clients: ReadonlySet<Client> } {
  const clients = new Set<Client>();
  const source: HealthSource = {
    health(): HealthCheck {
      const checks = [...clients].map((c) => [c.name, c.health()] as const);
      const worst = checks.some(([, h]) => h.status === 'down')
        ? 'down'
        : checks.some(([, h]) => h.status === 'degraded')
          ? 'degraded'
          : 'ok';
      // A dependency that is down degrades this service; it does not make it unable to serve.
      // The detail names each client that is not ok and its origins that are out.
      const troubled = checks.filter(([, h]) => h.status !== 'ok').map(([name, h]) => `${name}: ${h.detail}`);
      return {
        status: worst === 'ok' ? 'ok' : 'degraded',
        detail: troubled.length === 0 ? `${checks.length} outbound client(s)` : troubled.join('; '),
        clients: Object.fromEntries(checks),
      };
    },
  };
  const client = function client(name: string, options: StackClientOptions): Client {
    const made = createClient(name, { ...options, registry: shared.registry, logger: shared.logger });
    clients.add(made);
    healthChecks.clients ??= source;
    opened.push({
      close: () => {
        clients.delete(made);
        return made.close();
      },
    });
    return made;
  };
  return { client, clients };
}
