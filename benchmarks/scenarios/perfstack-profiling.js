/**
 * The full stack on Express 5 with its dashboard mounted (as a real deployment has it), with
 * continuous profiling off or on: BENCH_PROFILING = 'off' | '<duration>/<every>' (e.g.
 * '10s/30s': a 10-second CPU profile every 30 seconds, a one-third duty cycle). The scenario
 * records one profile at start-up (the dashboard's own first one comes one period after
 * start-up), then the schedule records one every period (`every` counts from the start of one
 * recording to the start of the next). Compare stack-express-profiling-on with
 * stack-express-profiling-off: the same server, the same routes, only the profiler differs.
 */
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';
import { requireExports } from '../lib/perfstack.js';
import { buildStack } from '../lib/stack-options.js';

const { performanceStack, cache } = await requireExports('perfstack', ['performanceStack', 'cache']);
const stack = await buildStack(performanceStack);
const setting = process.env.BENCH_PROFILING ?? 'off';
const [duration, every] = setting === 'off' ? [] : setting.split('/');
// `basePath`: the dashboard answers under /dashboard and hands every other request on.
const dashboard = { basePath: '/dashboard' };
const board = stack.dashboard(
  setting === 'off' ? dashboard : { ...dashboard, profiling: { continuous: { every, duration, keep: 12 } } },
);
const server = http.createServer(await expressApp({ use: [stack, board], cacheRoute: [cache({ ttl: '5m' })] }));
// The first recording now rather than one period after start-up, so that short runs see the
// duty cycle from their first round (the schedule then goes on as configured).
board.profiles?.runOnce();
listen(server);
process.on('SIGTERM', () => stack.close?.());
