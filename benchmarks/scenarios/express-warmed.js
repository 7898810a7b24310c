/**
 * Baseline for attribution: bare Express 5 with nothing but core's `warmShapes` in front
 * (the part of every perfstack middleware that declares, before Express swaps their
 * prototype, the properties requests and responses gain; see packages/core/README.md).
 * A layer's cost over this scenario is the layer's own work; its gain over express-bare is
 * what the warmer saves Express itself.
 */
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';
import { requireExports } from '../lib/perfstack.js';

const { warmShapes } = await requireExports('@perfstack/core', ['warmShapes']);
const warmOnly = (req, res, next) => {
  warmShapes(req, res);
  next();
};
listen(http.createServer(await expressApp({ use: [warmOnly] })));
