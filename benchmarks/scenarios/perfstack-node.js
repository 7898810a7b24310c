/**
 * The full stack on plain node:http: `http.createServer(createListener(stack, handler))`
 * from perfstack/node, every layer on; the handler labels routes with `setRoute` and runs
 * GET /api/cached through the route cache (the Connect `cache({ ttl: '5m' })` called by hand
 * before the answer). BENCH_REDIS=1: Redis.
 */
import http from 'node:http';
import { nodeHandler } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';
import { requireExports } from '../lib/perfstack.js';
import { buildStack } from '../lib/stack-options.js';

const node = await requireExports('perfstack/node', ['performanceStack', 'createListener', 'setRoute', 'cache']);
// The Connect-style route cache, called by hand in front of the route's answer.
const routeCache = node.cache({ ttl: '5m' });

const cached = (req, res, send) => {
  routeCache(req, res, (error) => {
    if (error) {
      res.statusCode = 500;
      res.end();
      return;
    }
    send();
  });
};
const stack = await buildStack(node.performanceStack);
listen(http.createServer(node.createListener(stack, nodeHandler({ onRoute: node.setRoute, cached }))));
process.on('SIGTERM', () => stack.close?.());
