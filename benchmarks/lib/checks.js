/**
 * Correctness checks run against every server before it is timed: status, body and the
 * headers that prove the layer under test really ran (X-Cache: HIT on a hit, RateLimit
 * headers, 413 for an oversize POST, a redacted access-log line...). A check throws
 * an Error saying what was expected and what came.
 */
import { deepStrictEqual } from 'node:assert';
import { readFileSync } from 'node:fs';
import {
  CACHED_PATH,
  created,
  OVERSIZE_BODY,
  POST_BODY,
  POST_PATH,
  PRODUCTS_PATH,
  postPayload,
  products,
} from './fixture.js';
import { request } from './http-client.js';

/** @typedef {{ url: string, logFile?: string }} CheckContext */
/** @typedef {{ name: string, run(ctx: CheckContext): Promise<void> }} Check */

function fail(what, response, header) {
  const shown = header
    ? `${header}: ${JSON.stringify(response.headers[header])}`
    : `headers ${Object.keys(response.headers).join(',')}`;
  throw new Error(`${what} (got ${response.status}, ${shown}, body ${JSON.stringify(response.text.slice(0, 120))})`);
}

function expectStatus(response, status, what) {
  if (response.status !== status) fail(`${what}: expected status ${status}`, response);
}

function expectJsonBody(response, expected, what) {
  const type = String(response.headers['content-type'] ?? '');
  if (!type.startsWith('application/json')) fail(`${what}: expected a JSON content-type`, response);
  let body;
  try {
    body = response.json();
  } catch {
    fail(`${what}: body is not JSON`, response);
  }
  try {
    deepStrictEqual(body, expected);
  } catch {
    fail(`${what}: unexpected body`, response);
  }
}

function expectHeader(response, name, matcher, what) {
  const value = response.headers[name];
  const ok =
    matcher === undefined
      ? value !== undefined
      : matcher === null
        ? value === undefined
        : matcher instanceof RegExp
          ? value !== undefined && matcher.test(String(value))
          : String(value) === matcher;
  if (!ok) {
    const wanted = matcher === undefined ? 'present' : matcher === null ? 'absent' : String(matcher);
    fail(`${what}: header ${name} expected ${wanted}`, response, name);
  }
}

/** GET /api/products answers 200 with the products JSON. */
export const getProducts = (headerExpectations = {}) => ({
  name: `GET ${PRODUCTS_PATH}`,
  async run({ url }) {
    const response = await request(`${url}${PRODUCTS_PATH}`);
    expectStatus(response, 200, this.name);
    expectJsonBody(response, products, this.name);
    for (const [name, matcher] of Object.entries(headerExpectations)) expectHeader(response, name, matcher, this.name);
  },
});

/**
 * GET /api/cached twice answers 200 with the products JSON. With `hit`, the second answer
 * must come from the cache: the origin's X-Origin-Count is the first answer's.
 */
export const getCached = ({ hit = false, headers: hitHeaders = {} } = {}) => ({
  name: `GET ${CACHED_PATH} twice${hit ? ', second a cache hit' : ''}${Object.keys(hitHeaders).length ? ` (${Object.keys(hitHeaders).join(', ')})` : ''}`,
  async run({ url }) {
    const first = await request(`${url}${CACHED_PATH}`);
    expectStatus(first, 200, `${this.name}, first`);
    expectJsonBody(first, products, `${this.name}, first`);
    const second = await request(`${url}${CACHED_PATH}`);
    expectStatus(second, 200, `${this.name}, second`);
    expectJsonBody(second, products, `${this.name}, second`);
    if (hit && second.headers['x-origin-count'] !== first.headers['x-origin-count']) {
      fail(
        `${this.name}: the second answer reached the origin (X-Origin-Count ${first.headers['x-origin-count']} then ${second.headers['x-origin-count']})`,
        second,
      );
    }
    for (const [name, matcher] of Object.entries(hitHeaders)) expectHeader(second, name, matcher, this.name);
  },
});

/** POST /api/products with the small JSON body answers 201 with the created record. */
export const postProducts = () => ({
  name: `POST ${POST_PATH} (small JSON)`,
  async run({ url }) {
    const response = await request(`${url}${POST_PATH}`, { method: 'POST', body: POST_BODY });
    expectStatus(response, 201, this.name);
    expectJsonBody(response, created(postPayload), this.name);
  },
});

/** An oversize POST is refused with 413. */
export const oversizePost = () => ({
  name: `POST ${POST_PATH} oversize → 413`,
  async run({ url }) {
    let response;
    try {
      response = await request(`${url}${POST_PATH}`, { method: 'POST', body: OVERSIZE_BODY });
    } catch (error) {
      throw new Error(`${this.name}: ${error.message}`);
    }
    expectStatus(response, 413, this.name);
  },
});

/** `path` answers 200 and its body contains `needle` (e.g. a metric name on /metrics). */
export const bodyContains = (path, needle) => ({
  name: `GET ${path} contains ${needle}`,
  async run({ url }) {
    const response = await request(`${url}${path}`);
    expectStatus(response, 200, this.name);
    if (!response.text.includes(needle)) fail(`${this.name}: body lacks ${needle}`, response);
  },
});

/**
 * A request with credentials produces an access-log line for /api/products in the
 * scenario's log file, and neither credential appears in the file.
 */
export const accessLogRedacted = () => ({
  name: 'access log line written, Authorization and Cookie redacted',
  async run({ url, logFile }) {
    const secret = 'bench-secret-token';
    const response = await request(`${url}${PRODUCTS_PATH}?logcheck=1`, {
      headers: { authorization: `Bearer ${secret}`, cookie: `sid=${secret}-cookie` },
    });
    expectStatus(response, 200, this.name);
    let text = '';
    for (let i = 0; i < 40; i++) {
      try {
        text = readFileSync(logFile, 'utf8');
      } catch {
        text = '';
      }
      if (text.includes('logcheck=1')) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const line = text.split('\n').find((l) => l.includes('logcheck=1'));
    if (!line) throw new Error(`${this.name}: no log line for the request in ${logFile}`);
    try {
      JSON.parse(line);
    } catch {
      throw new Error(`${this.name}: log line is not JSON: ${line.slice(0, 200)}`);
    }
    if (text.includes(secret)) throw new Error(`${this.name}: the credential leaked into ${logFile}`);
  },
});

/**
 * A form POST (`application/x-www-form-urlencoded`) to POST /api/products answers 201 with
 * the parsed fields: proves the real scenarios' urlencoded parser runs.
 */
export const postForm = () => ({
  name: `POST ${POST_PATH} (form)`,
  async run({ url }) {
    const response = await request(`${url}${POST_PATH}`, {
      method: 'POST',
      body: 'name=Bench+widget&price=9.99',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expectStatus(response, 201, this.name);
    expectJsonBody(response, { id: 1001, name: 'Bench widget', price: '9.99' }, this.name);
  },
});

/**
 * `request` is refused with problem+json `status`/`code` (and `headers`), within `attempts`
 * tries (a breaker opens only after some failures; a limit after some requests). Each
 * earlier answer must be 2xx or the route's own failure status (`allow`).
 */
export const refused = ({ request: timed, status, code, headers = {}, attempts = 10, allow = [] }) => ({
  name: `${timed.method} ${timed.path} refused → ${status} ${code}`,
  async run({ url }) {
    let response;
    for (let i = 0; i < attempts; i++) {
      response = await request(`${url}${timed.path}`, timed);
      if (response.status === status) break;
      if (response.status >= 300 && !allow.includes(response.status)) break;
    }
    expectStatus(response, status, this.name);
    const type = String(response.headers['content-type'] ?? '');
    if (!type.startsWith('application/problem+json')) fail(`${this.name}: expected problem+json`, response);
    if (response.json().code !== code) fail(`${this.name}: expected code ${code}`, response);
    for (const [name, matcher] of Object.entries(headers)) expectHeader(response, name, matcher, this.name);
  },
});

/** A request with an Origin gets CORS headers. */
export const corsHeaders = (allowOrigin = '*') => ({
  name: `CORS: Access-Control-Allow-Origin ${allowOrigin}`,
  async run({ url }) {
    const response = await request(`${url}${PRODUCTS_PATH}`, { headers: { origin: 'http://example.test' } });
    expectStatus(response, 200, this.name);
    expectHeader(response, 'access-control-allow-origin', allowOrigin, this.name);
  },
});

export { expectHeader, expectJsonBody, expectStatus };
