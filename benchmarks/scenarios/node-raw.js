// Baseline: raw node:http, no framework, no middleware.
import http from 'node:http';
import { nodeHandler } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';

listen(http.createServer(nodeHandler()));
