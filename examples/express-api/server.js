import { handleShutdown } from '@perfstack/example-catalog';
import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const { app, stack } = createApp();
const server = app.listen(port, () => {
  console.log(`perfstack example (Express) on http://localhost:${port}`);
  console.log(`  dashboard: http://localhost:${port}/dashboard   metrics: /metrics   health: /health`);
  console.log(`  Redis: ${stack.redis ? 'shared (REDIS_URL)' : 'none, everything in memory'}`);
});
handleShutdown(server, stack);
