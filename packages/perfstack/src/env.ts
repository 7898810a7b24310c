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
];

/** Reads the variables into a plain object of defined strings. */
export function readEnv(env: NodeJS.ProcessEnv): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const { name } of ENV_VARIABLES) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') out[name] = value.trim();
  }
  return out;
}
