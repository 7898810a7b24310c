/**
 * pino serializers for `req`, `res` and `err` that copy only the fields logged and
 * redact as they copy — no deep clone of the request, no path-based redaction pass after
 * the fact. Anything that is not a live request/response/error (an app logging a
 * pre-serialized object under `req`) goes through the deep redactor instead.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { stdSerializers } from 'pino';
import type { DeepRedactor } from './redact/deep.js';
import type { HeaderRedactor } from './redact/headers.js';
import type { UrlRedactor } from './redact/url.js';

/** The request as logged. */
export interface LoggedRequest {
  readonly method: string | undefined;
  readonly url: string;
  readonly headers: Record<string, unknown>;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
}

/** The response as logged. */
export interface LoggedResponse {
  readonly statusCode: number;
  readonly headers: Record<string, unknown>;
}

type ExpressRequest = IncomingMessage & { originalUrl?: unknown };

function isRequest(value: unknown): value is IncomingMessage {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as IncomingMessage).headers === 'object' &&
    typeof (value as IncomingMessage).method === 'string' &&
    'socket' in value
  );
}

function isResponse(value: unknown): value is ServerResponse {
  return typeof value === 'object' && value !== null && typeof (value as ServerResponse).getHeaders === 'function';
}

/** Builds the three serializers over the logger's redactors. */
export function createSerializers(
  deep: DeepRedactor,
  headers: HeaderRedactor,
  url: UrlRedactor,
  requestIdHeader: string,
): { req(value: unknown): unknown; res(value: unknown): unknown; err(value: unknown): unknown } {
  return {
    req(value: unknown): unknown {
      if (!isRequest(value)) return deep.value(value);
      const original = (value as ExpressRequest).originalUrl;
      const raw = typeof original === 'string' ? original : (value.url ?? '/');
      const logged: LoggedRequest = {
        method: value.method,
        url: url.redact(raw),
        headers: headers.redact(value.headers),
        remoteAddress: value.socket?.remoteAddress,
        remotePort: value.socket?.remotePort,
      };
      return logged;
    },
    res(value: unknown): unknown {
      if (!isResponse(value)) return deep.value(value);
      // The request id this layer generated (not the client's) needs no scan.
      const generatedId = value.req?.headers[requestIdHeader] === undefined ? requestIdHeader : undefined;
      const logged: LoggedResponse = {
        statusCode: value.statusCode,
        headers: headers.redactResponse(value, generatedId),
      };
      return logged;
    },
    err(value: unknown): unknown {
      return deep.value(value instanceof Error ? stdSerializers.err(value) : value);
    },
  };
}
