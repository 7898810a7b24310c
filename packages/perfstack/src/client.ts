/**
 * `stack.client(name, options)`: a resilient outbound client (@perfstack/circuit-breaker's
 * `createClient`) on the stack's shared registry and logger, closed by `stack.close()`,
 * and reported in `/health` under `clients` (for the clients made before `stack.health()`
 * is first called, the `clients` check then covers every later client too).
 */
import { type Client, type ClientOptions, createClient } from '@perfstack/circuit-breaker';
import type { HealthCheck, HealthSource, PerfstackLogger, Registry } from '@perfstack/core';

/** Options of `stack.client()`: those of `createClient`, without the shared registry and logger. */
export type StackClientOptions = Omit<ClientOptions, 'registry' | 'logger'>;

/** Builds the stack's `client()` method. */
export function stackClient(
  shared: { readonly registry: Registry; readonly logger: PerfstackLogger },
  healthChecks: Record<string, HealthSource>,
  opened: Array<{ close(): Promise<void> }>,
): (name: string, options: StackClientOptions) => Client {
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
      return {
        status: worst === 'ok' ? 'ok' : 'degraded',
        detail: `${checks.length} outbound client(s)`,
        clients: Object.fromEntries(checks),
      };
    },
  };
  return function client(name: string, options: StackClientOptions): Client {
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
}
