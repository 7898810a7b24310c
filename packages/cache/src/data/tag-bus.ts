/**
 * One tag bus for the response cache and the data cache. With Redis it is the shared
 * invalidation stream (`<prefix>cache-inv`) and the shared tag sets: both caches read the
 * stream and index their Redis records under the same `cache-tag:<tag>` sets, so nothing
 * needs linking. Without Redis, {@link linkTagBus} links the two caches of one process
 * (the preset does it): an invalidation by tags on either clears both.
 */
import { invalidateLocal } from '../invalidate.js';
import { ENGINE, type ResponseCache } from '../response-cache.js';
import type { DataCache } from './data-cache.js';

/**
 * Links a response cache and a data cache of this process so that `invalidate({ tags })`
 * on either clears both (without Redis; with Redis the stream already does, and this does
 * nothing). Returns the unlink.
 */
export function linkTagBus(responses: ResponseCache, data: DataCache): () => void {
  const engine = data.engine;
  if (engine.config.redis !== undefined && engine.config.redis === responses[ENGINE].config.redis) return () => {};
  const toResponses = (tags: readonly string[]) => {
    invalidateLocal(responses[ENGINE], [], tags, undefined);
  };
  engine.tagListeners.add(toResponses);
  const original = responses.invalidate;
  const linked: ResponseCache['invalidate'] = async (selector) => {
    const removed = await original(selector);
    const tags = (selector as { tags?: unknown } | null)?.tags;
    if (Array.isArray(tags) && tags.length > 0) {
      return removed + engine.applyLocal([], tags as string[], undefined);
    }
    return removed;
  };
  (responses as { invalidate: ResponseCache['invalidate'] }).invalidate = linked;
  return () => {
    engine.tagListeners.delete(toResponses);
    if (responses.invalidate === linked)
      (responses as { invalidate: ResponseCache['invalidate'] }).invalidate = original;
  };
}
