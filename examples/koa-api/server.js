import http from 'node:http';
import { handleShutdown } from '@perfstack/example-catalog';
import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const { app, stack } = createApp();
const server = http.createServer(app.callback()).listen(port, () => {
  console.log(`perfstack example (Koa) on http://localhost:${port}  dashboard: /dashboard`);
});
handleShutdown(server, stack);
