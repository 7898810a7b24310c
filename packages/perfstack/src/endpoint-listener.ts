/**
 * The stack's endpoints (dashboard, `/metrics`, `/health`) as one `node:http` handler,
 * routed by the same matcher that exempts them, so "exempt" and "served" are always the
 * same requests. Used by `createListener` (perfstack/node) and the monitoring port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PerformanceStack } from './stack.js';

/** Answers the stack's endpoints; hands any other request to `fallback`. */
export function endpointsHandler(
  stack: PerformanceStack,
  fallback: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  const dashboard = stack.dashboard({ basePath: stack.paths.dashboard });
  const metrics = stack.metrics();
  const health = stack.health();
  const notFound = (_req: IncomingMessage, res: ServerResponse) => {
    res.statusCode = 404;
    res.end();
  };
  return function perfstackEndpoints(req, res) {
    const endpoint = stack.endpointOf(req);
    if (endpoint === 'metrics') return metrics(req, res, () => notFound(req, res));
    if (endpoint === 'health') return health(req, res, () => notFound(req, res));
    if (endpoint === 'dashboard') return dashboard(req, res, () => notFound(req, res));
    return fallback(req, res);
  };
}
