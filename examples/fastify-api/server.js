import { handleShutdown } from '@perfstack/example-catalog';
import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const { app, stack } = await createApp();
await app.listen({ port, host: process.env.HOST ?? 'localhost' });
console.log(`perfstack example (Fastify) on http://localhost:${port}`);
console.log(`  dashboard: http://localhost:${port}/dashboard   metrics: /metrics   health: /health`);
console.log(`  Redis: ${stack.redis ? 'shared (REDIS_URL)' : 'none, everything in memory'}`);
handleShutdown(app.server, stack);
