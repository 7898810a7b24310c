/**
 * OpenTelemetry, when the app has it: each layer records what it decided (cache outcome,
 * rate-limit decision, breaker refusal, size-limit refusal) as an event on the request's
 * active span, and the access log adds `trace_id`/`span_id` to its line.
 *
 * Only `@opentelemetry/api` is used — the SDK, exporters and the HTTP instrumentation that
 * creates the request span are the app's choice. Without a registered context manager the
 * API's active context is the empty root context, so `requestSpan` finds no span and every
 * call here is one property read per request: nothing is recorded, nothing is allocated.
 *
 * The span is looked up once per request (the first layer that asks) and kept on the
 * request under a symbol, so a span found in the request's async context is still used by
 * code that runs outside it (a `finish` listener, a timer).
 */
import type { IncomingMessage } from 'node:http';
import { type Attributes, type Span, trace } from '@opentelemetry/api';

const SPAN = Symbol('perfstack.span');
type WithSpan = IncomingMessage & { [SPAN]?: Span | null };

/** The request's active span (recording), looked up once per request; `undefined` without one. */
export function requestSpan(req: IncomingMessage): Span | undefined {
  const r = req as WithSpan;
  let span = r[SPAN];
  if (span === undefined) {
    const active = trace.getActiveSpan();
    span = active?.isRecording() ? active : null;
    r[SPAN] = span;
  }
  return span ?? undefined;
}

/**
 * Adds `perfstack.<name>` with `attributes` to the request's span, when it has one.
 * @example spanEvent(req, 'cache', { 'perfstack.cache.outcome': 'hit' })
 */
export function spanEvent(req: IncomingMessage, name: string, attributes: Attributes): void {
  requestSpan(req)?.addEvent(`perfstack.${name}`, attributes);
}

/** `{ trace_id, span_id }` of the request's span for a log line, or `undefined`. */
export function traceFields(req: IncomingMessage): { trace_id: string; span_id: string } | undefined {
  const span = requestSpan(req);
  if (span === undefined) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
