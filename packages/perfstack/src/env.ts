/**
 * Environment variables for the twelve-factor case. Options given in code always win;
 * the environment only fills what the code left unset. The README has the same table.
 */

/** One documented variable. */
export interface EnvVariable {
  readonly name: string;
  readonly meaning: string;
  readonly example: string;
}

/** Every variable perfstack reads. */
export const ENV_VARIABLES: readonly EnvVariable[] = [
  {
    name: 'REDIS_URL',
    meaning: 'Shared Redis for cache L2, rate-limit counters, invalidation and the fleet view',
    example: 'redis://127.0.0.1:6379',
  },
  { name: 'PERFSTACK_DISABLE', meaning: 'Comma-separated layers to turn off', example: 'cache,logger' },
  { name: 'PERFSTACK_CACHE_TTL', meaning: 'Default cache ttl', example: '5m' },
  { name: 'PERFSTACK_BODY_LIMIT', meaning: 'Request body limit', example: '1mb' },
  { name: 'PERFSTACK_RATE_LIMIT', meaning: 'Requests per window per client', example: '100' },
  { name: 'PERFSTACK_RATE_LIMIT_WINDOW', meaning: 'Rate-limit window', example: '1m' },
  {
    name: 'PERFSTACK_TRUST_PROXY',
    meaning: 'Trust X-Forwarded-For from these hops/addresses (rate-limit keys)',
    example: 'loopback',
  },
  { name: 'PERFSTACK_TIMEOUT', meaning: 'Time budget per route (circuit breaker)', example: '10s' },
  { name: 'PERFSTACK_LOG_LEVEL', meaning: 'Access log level', example: 'info' },
  {
    name: 'PERFSTACK_CORS_ORIGINS',
    meaning: 'Comma-separated origins allowed by CORS',
    example: 'https://app.example.com',
  },
  {
    name: 'PERFSTACK_DASHBOARD_TOKEN',
    meaning: 'Bearer token for /dashboard, /metrics and /health from non-loopback clients',
    example: 'a-long-random-string',
  },
  {
    name: 'PERFSTACK_DASHBOARD_USER',
    meaning: 'Basic-auth user for the dashboard (with PERFSTACK_DASHBOARD_PASSWORD)',
    example: 'ops',
  },
  {
    name: 'PERFSTACK_DASHBOARD_PASSWORD',
    meaning: 'Basic-auth password for the dashboard',
    example: 'a-long-random-string',
  },
  {
    name: 'PERFSTACK_DASHBOARD_CSRF_SECRET',
    meaning: "Shared secret for the dashboard's CSRF token (32+ characters), so every instance accepts the others'",
    example: 'a-32-character-or-longer-secret',
  },
  {
    name: 'PERFORMANCE_CACHE_ENABLED',
    meaning: 'The response cache on or off (`false` is the same as `PERFSTACK_DISABLE=cache`)',
    example: 'false',
  },
  {
    name: 'PERFORMANCE_MONITORING_ENABLED',
    meaning: 'The timing layer (Server-Timing, latency windows, request metrics) on or off',
    example: 'true',
  },
  {
    name: 'DASHBOARD_ENABLED',
    meaning: "The dashboard on or off: `false` makes `stack.dashboard()` pass every request on (the app's 404)",
    example: 'false',
  },
  {
    name: 'MEMORY_CACHE_SIZE_MB',
    meaning: "The response cache's memory bound (`cache.maxBytes`) in MiB",
    example: '256',
  },
  {
    name: 'MONITORING_PORT',
    meaning: 'Serve the dashboard, /metrics and /health on this second port too (`monitoring.port`)',
    example: '9464',
  },
  {
    name: 'MONITORING_HOST',
    meaning: 'The address the monitoring port listens on (`monitoring.host`)',
    example: '127.0.0.1',
  },
];

/**
 * Names a team may expect from other stacks that perfstack deliberately does not read, with
 * the reason; the README lists them so nobody sets one and wonders why nothing changed.
 */
export const ENV_NOT_READ: readonly { readonly name: string; readonly why: string }[] = [
  {
    name: 'REDIS_POOL_SIZE',
    why: 'perfstack multiplexes every command on one Redis connection (plus one for subscriptions); a pool would not add throughput',
  },
];

/** The accepted spellings of a boolean variable. */
const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/**
 * A boolean variable: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (any case);
 * `undefined` when unset.
 * @throws {TypeError} on any other value, naming the variable
 */
export function envBoolean(env: Readonly<Record<string, string>>, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const value = raw.toLowerCase();
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  throw new TypeError(
    `perfstack: environment variable ${name} must be true or false (or 1/0, yes/no, on/off), got ${JSON.stringify(raw)}`,
  );
}

/**
 * A whole-number variable in [min, max]; `undefined` when unset.
 * @throws {TypeError} on anything else, naming the variable
 */
export function envInteger(
  env: Readonly<Record<string, string>>,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) {
    throw new TypeError(
      `perfstack: environment variable ${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** Reads the variables into a plain object of defined strings. */
export function readEnv(env: NodeJS.ProcessEnv): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const { name } of ENV_VARIABLES) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') out[name] = value.trim();
  }
  return out;
}
