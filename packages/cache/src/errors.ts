/**
 * Error classes of @perfstack/cache (ARCHITECTURE.md rule 5). Store errors never reach a
 * client: the cache logs them once and serves from L1 or the origin.
 */

/** An L2 (Redis) call failed or took longer than `redisTimeout`. */
export class CacheStoreError extends Error {
  override readonly name = 'CacheStoreError';
  /** Stable code for logs. */
  readonly code = 'CACHE_STORE_UNAVAILABLE';
  /** Not an HTTP error: the cache degrades instead of failing the request. */
  readonly status = 503;

  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** Type guard for {@link CacheStoreError} (works across package copies). */
export function isCacheStoreError(error: unknown): error is CacheStoreError {
  return (
    error instanceof CacheStoreError ||
    (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'CacheStoreError')
  );
}
