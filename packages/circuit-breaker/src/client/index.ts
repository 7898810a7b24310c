export {
  type Client,
  type ClientResponse,
  type ClientSnapshot,
  createClient,
  type OriginSnapshot,
  parseRetryAfter,
} from './client.js';
export {
  ClientDeadlineError,
  isClientDeadlineError,
  isNoOriginAvailableError,
  NoOriginAvailableError,
} from './errors.js';
export {
  CLIENT_PRESETS,
  type ClientOptions,
  type ClientPresetName,
  type ClientRequest,
  type ClientRetryOptions,
  type HealthCheckOptions,
  type HedgeOptions,
  type RetryBudgetOptions,
  type TraceContext,
} from './options.js';
