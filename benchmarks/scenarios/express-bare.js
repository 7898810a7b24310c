// Baseline: bare Express 5 (express.json only on the POST route, as any app has).
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';

listen(http.createServer(await expressApp()));
