import http from 'node:http';
import { handleShutdown } from '@perfstack/example-catalog';
import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const { listener, stack } = createApp();
const server = http.createServer(listener).listen(port, () => {
  console.log(`perfstack example (node:http) on http://localhost:${port}  dashboard: /dashboard`);
});
handleShutdown(server, stack);
