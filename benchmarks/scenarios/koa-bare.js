// Baseline: bare Koa 3 with @koa/router.
import http from 'node:http';
import { koaApp } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';

listen(http.createServer((await koaApp()).callback()));
