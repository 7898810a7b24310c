/**
 * The monitoring port (`monitoring: { port }` or `MONITORING_PORT`): the dashboard,
 * `/metrics` and `/health` on a second server, so they can stay off the public port
 * (mount nothing on the app) and be reached by Prometheus, load balancers and operators on
 * an internal address. The endpoints keep their own protections (auth from non-loopback
 * clients, CSRF on actions) and pass the stack's size limit, helmet and CORS as on the app;
 * any other path is a 404 problem+json that touches no other layer (no cache, no rate limit,
 * no breaker, no access-log line).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendProblem, withMiddleware } from '@perfstack/core';
import { endpointsHandler } from './endpoint-listener.js';
import type { PerformanceStack } from './stack.js';

/** `monitoring` options of the preset. */
export interface MonitoringOptions {
  /** The port (0 picks a free one; see `stack.monitoring.address()`). */
  readonly port: number;
  /** The address to listen on. @default '127.0.0.1' */
  readonly host?: string;
}

/** The running monitoring server. */
export interface Monitoring {
  /** Resolves once listening, with the bound address; rejects when it cannot listen. */
  readonly ready: Promise<AddressInfo>;
  /** The bound address once listening, else `undefined`. */
  address(): AddressInfo | undefined;
  /** Stops listening and ends idle connections. */
  close(): Promise<void>;
}

const NOT_FOUND_DETAIL = 'The monitoring port serves only the dashboard, /metrics and /health.';

/** Starts the monitoring server for `stack`. */
export function startMonitoring(stack: PerformanceStack, options: Required<MonitoringOptions>): Monitoring {
  const notFound = (req: http.IncomingMessage, res: http.ServerResponse) =>
    sendProblem(res, { code: 'NOT_FOUND', detail: NOT_FOUND_DETAIL }, req.method);
  const endpoints = withMiddleware(stack, endpointsHandler(stack, notFound));
  const server = http.createServer((req, res) => {
    if (stack.endpointOf(req) !== undefined) endpoints(req, res);
    else notFound(req, res);
  });
  const ready = new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
  // An unhandled rejection would crash the app; the failure is reported through `ready`.
  ready.catch(() => {});
  let closed: Promise<void> | undefined;
  return {
    ready,
    address: () => (server.listening ? (server.address() as AddressInfo) : undefined),
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}
