/**
 * @perfstack/size-limit — request body, URL and header size limits that reject oversized
 * requests before they cost anything, and stay invisible below the limit.
 */
export type { SizeLimitStats } from './enforcer.js';
export { isSizeLimitError, SIZE_LIMIT_CODES, type SizeLimitCode, SizeLimitError } from './errors.js';
export type { RejectHandler, RouteSizeLimitOptions, SizeLimitOptions } from './options.js';
export {
  decideBodyLimit,
  EARLY_SIZE_CHECK,
  EARLY_TOO_LARGE,
  type EarlySizeCheck,
  type EarlyTooLarge,
  type RouteSizeLimiter,
  routeSizeLimit,
  type SizeLimiter,
  sizeLimit,
} from './size-limit.js';
