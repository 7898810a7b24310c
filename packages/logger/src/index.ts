/**
 * @perfstack/logger — access logs on pino-http: one JSON line per request, a request id
 * on every line, levels by status, and secrets redacted by default (headers, cookies,
 * query values, body fields at any depth, token-shaped strings anywhere).
 */
export { type AccessLogger, accessLog, MAX_STRING_LENGTH, MAX_URL_LENGTH } from './access-log.js';
export {
  type AccessLogLevel,
  type AccessLogOptions,
  DEFAULT_IGNORE,
  LOG_LEVELS,
  type LogStream,
} from './options.js';
export {
  DEFAULT_REDACTED_HEADERS,
  DEFAULT_REDACTED_RESPONSE_HEADERS,
  type HeaderSelection,
  MINIMAL_HEADERS,
} from './redact/headers.js';
export { DEFAULT_SENSITIVE_KEYS } from './redact/keys.js';
