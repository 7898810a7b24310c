/**
 * The leak test: every kind of secret the issue names is sent through a real Express app
 * — headers, cookies, the query string, a JSON body with nested arrays, free text, app log
 * calls, thrown and `next(err)` errors — and the raw log output must contain none of the
 * secret values, while the censor stands where each one was.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { accessLog } from '@perfstack/logger';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { Capture, type LogLine } from './capture.js';

const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJsZWFrLXRlc3QiLCJuYW1lIjoiSm9obiJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
const JWT_2 =
  'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2V4YW1wbGUuY29tIiwiZXhwIjoxOTAwMDAwMDAwfQ.c2lnbmF0dXJlLWZvci10aGUtc2Vjb25kLWp3dA';
/** Every secret value sent; none may appear in the output. */
const SECRETS = {
  bearer: 'BearerSecretValue0001',
  proxyBasic: 'cHJveHl1c2VyOnByb3h5cGFzc3dvcmQ=',
  apiKeyHeader: 'ApiKeyHeaderSecret0002',
  authTokenHeader: 'AuthTokenHeaderSecret0003',
  customHeader: 'TenantKeySecret0004',
  cookie: 'CookieSessionSecret0005',
  setCookie: 'SetCookieSecret0006',
  uaJwt: JWT,
  queryToken: 'QueryTokenSecret0007',
  queryApiKey: 'QueryApiKeySecret0008',
  queryPassword: 'QueryPasswordSecret0009',
  queryAccessToken: 'QueryAccessTokenSecret0010',
  querySignature: 'QuerySignatureSecret0011',
  queryEncodedBearer: 'QueryEncodedBearer0012',
  queryCard: '4111111111111111',
  bodyPassword: 'BodyPasswordSecret0013',
  bodyToken: 'BodyTokenSecret0014',
  bodySecret: 'BodySecretSecret0015',
  bodyApiKey: 'BodyApiKeySecret0016',
  bodyCreditCard: '5555555555554444',
  bodyNestedClientSecret: 'NestedClientSecret0017',
  bodyArrayPassword: 'ArrayPasswordSecret0018',
  bodyCustomKey: 'CustomFieldSecret0019',
  bodyTextBearer: 'FreeTextBearer0020',
  bodyTextJwt: JWT_2,
  bodyTextCard: '5500-0000-0000-0004',
  bodyNumberCard: 4012888888881881,
  bodyKeyValueText: 'KeyValueInText0021',
  stripeKey: 'sk_live_51Habcdefghijklmnopqrstu',
  logText: 'LogTextToken0022',
  logCard: '4242424242424242',
  logObjectPassword: 'LogObjectPassword0023',
  logPrintf: 'PrintfBearer0024',
  logJson: 'PrintfJsonSecret0025',
  childBinding: 'ChildBindingSecret0026',
  thrownMessage: 'ThrownErrorToken0027',
  thrownConfigAuth: 'ThrownConfigAuth0028',
  nextErrJwt: JWT_2,
  nextErrPassword: 'NextErrPassword0029',
  logErrorMessage: 'LoggedErrorSecret0030',
} as const;

let server: TestServer;
let out: Capture;
let log: ReturnType<typeof accessLog>;

beforeAll(async () => {
  out = new Capture();
  log = accessLog({
    destination: out,
    logBody: true,
    redactHeaders: ['X-Tenant-Key'],
    sensitiveKeys: ['customField'],
  });
  const app = express();
  app.use(log);
  app.use(express.json());
  app.post('/accounts/:id', (req, res) => {
    req.log.info(`charging card ${SECRETS.logCard} with token=${SECRETS.logText}`);
    req.log.info({ user: { name: 'ann', password: SECRETS.logObjectPassword } }, 'user loaded');
    req.log.info('auth header was %s', `Bearer ${SECRETS.logPrintf}`);
    req.log.info('payload %j', { nested: { secret: SECRETS.logJson } });
    req.log.child({ session: SECRETS.childBinding }).info('with a child binding');
    req.log.error(new Error(`upstream rejected api_key=${SECRETS.logErrorMessage}`));
    res.cookie('sid', SECRETS.setCookie, { httpOnly: true });
    res.status(201).json({ ok: true });
  });
  app.get('/throws', () => {
    const error = new Error(`token ${JWT} rejected: access_token=${SECRETS.thrownMessage}`) as Error & {
      config?: unknown;
    };
    error.config = { headers: { Authorization: `Bearer ${SECRETS.thrownConfigAuth}` } };
    throw error;
  });
  app.get('/next-error', (_req: IncomingMessage, _res: ServerResponse, next: (error: unknown) => void) => {
    next(new Error(`login failed for {"password":"${SECRETS.nextErrPassword}"} with ${SECRETS.nextErrJwt}`));
  });
  app.use(log.errorHandler);
  server = await listen(app);

  const query = new URLSearchParams({
    token: SECRETS.queryToken,
    api_key: SECRETS.queryApiKey,
    password: SECRETS.queryPassword,
    access_token: SECRETS.queryAccessToken,
    'X-Amz-Signature': SECRETS.querySignature,
    q: `Bearer ${SECRETS.queryEncodedBearer}`,
    cc: SECRETS.queryCard,
    page: '2',
  });
  const body = {
    password: SECRETS.bodyPassword,
    token: SECRETS.bodyToken,
    secret: SECRETS.bodySecret,
    apiKey: SECRETS.bodyApiKey,
    creditCard: SECRETS.bodyCreditCard,
    profile: { settings: { oauth: [{ client_secret: SECRETS.bodyNestedClientSecret }] } },
    users: [[{ name: 'bob', password: SECRETS.bodyArrayPassword }]],
    customField: SECRETS.bodyCustomKey,
    note: `call with Bearer ${SECRETS.bodyTextBearer} or ${SECRETS.bodyTextJwt}, card ${SECRETS.bodyTextCard}`,
    paymentRef: SECRETS.bodyNumberCard,
    comment: `config was "apiSecret": "${SECRETS.bodyKeyValueText}" and ${SECRETS.stripeKey}`,
    visible: 'plain value',
  };
  const responses = await Promise.all([
    request(`${server.url}/accounts/42?${query.toString()}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${SECRETS.bearer}`,
        'proxy-authorization': `Basic ${SECRETS.proxyBasic}`,
        'X-API-Key': SECRETS.apiKeyHeader,
        'x-auth-token': SECRETS.authTokenHeader,
        'x-tenant-key': SECRETS.customHeader,
        cookie: `session=${SECRETS.cookie}; theme=dark`,
        'user-agent': `client/1.0 (${SECRETS.uaJwt})`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    }),
    request(`${server.url}/throws`),
    request(`${server.url}/next-error`),
  ]);
  expect(responses.map((r) => r.status)).toEqual([201, 500, 500]);
  await out.waitForAccessLines(3);
});

afterAll(async () => {
  await server.close();
  await log.close();
});

function accessLine(path: string): LogLine {
  const line = out.accessLines().find((l) => l.req?.url.startsWith(path));
  if (line === undefined) throw new Error(`no access line for ${path}`);
  return line;
}

describe('no secret reaches the log', () => {
  it('every output line is one JSON object', () => {
    expect(out.lines().length).toBeGreaterThanOrEqual(9);
  });

  it.each(Object.entries(SECRETS))('%s does not appear anywhere in the raw output', (_name, secret) => {
    expect(out.raw).not.toContain(String(secret));
  });

  it('card numbers do not appear in any spacing', () => {
    const digitsOnly = out.raw.replace(/[^0-9\n]/g, '');
    for (const card of [
      '4111111111111111',
      '5555555555554444',
      '5500000000000004',
      '4012888888881881',
      '4242424242424242',
    ]) {
      expect(digitsOnly).not.toContain(card);
    }
  });
});

describe('the censor stands where each secret was', () => {
  it('request headers', () => {
    const headers = accessLine('/accounts/42').req?.headers ?? {};
    expect(headers.authorization).toBe('[REDACTED]');
    expect(headers['proxy-authorization']).toBe('[REDACTED]');
    expect(headers['x-api-key']).toBe('[REDACTED]');
    expect(headers['x-auth-token']).toBe('[REDACTED]');
    expect(headers['x-tenant-key']).toBe('[REDACTED]');
    expect(headers.cookie).toBe('[REDACTED]');
    expect(headers['user-agent']).toBe('client/1.0 ([REDACTED])');
    expect(headers['content-type']).toBe('application/json');
  });

  it('response Set-Cookie', () => {
    const line = accessLine('/accounts/42');
    expect(line.res?.headers['set-cookie']).toBe('[REDACTED]');
    expect(line.res?.statusCode).toBe(201);
  });

  it('query string values, keeping the parameter names and harmless values', () => {
    const url = accessLine('/accounts/42').req?.url;
    expect(url).toBe(
      '/accounts/42?token=[REDACTED]&api_key=[REDACTED]&password=[REDACTED]&access_token=[REDACTED]' +
        '&X-Amz-Signature=[REDACTED]&q=[REDACTED]&cc=[REDACTED]&page=2',
    );
  });

  it('body fields at any depth, nested arrays, free text and numbers', () => {
    expect(accessLine('/accounts/42').body).toEqual({
      password: '[REDACTED]',
      token: '[REDACTED]',
      secret: '[REDACTED]',
      apiKey: '[REDACTED]',
      creditCard: '[REDACTED]',
      profile: { settings: { oauth: [{ client_secret: '[REDACTED]' }] } },
      users: [[{ name: 'bob', password: '[REDACTED]' }]],
      customField: '[REDACTED]',
      note: 'call with Bearer [REDACTED] or [REDACTED], card [REDACTED]',
      paymentRef: '[REDACTED]',
      comment: 'config was "apiSecret": "[REDACTED]" and [REDACTED]',
      visible: 'plain value',
    });
  });

  it('app log lines: messages, objects, printf arguments, child bindings and errors', () => {
    const id = accessLine('/accounts/42').reqId;
    const appLines = out.lines().filter((l) => l.reqId === id && l.responseTime === undefined);
    expect(appLines.map((l) => l.msg)).toEqual([
      'charging card [REDACTED] with token=[REDACTED]',
      'user loaded',
      'auth header was Bearer [REDACTED]',
      'payload {"nested":{"secret":"[REDACTED]"}}',
      'with a child binding',
      'upstream rejected api_key=[REDACTED]',
    ]);
    expect(appLines[1]?.user).toEqual({ name: 'ann', password: '[REDACTED]' });
    expect(appLines[4]?.session).toBe('[REDACTED]');
    expect(appLines[5]?.err?.message).toBe('upstream rejected api_key=[REDACTED]');
    expect(appLines[5]?.level).toBe(50);
  });

  it('a thrown error: message, stack and properties', () => {
    const line = accessLine('/throws');
    expect(line.level).toBe(50);
    expect(line.err?.message).toBe('token [REDACTED] rejected: access_token=[REDACTED]');
    expect(line.err?.stack.startsWith('Error: token [REDACTED] rejected: access_token=[REDACTED]\n')).toBe(true);
    expect(line.err?.config).toEqual({ headers: { Authorization: '[REDACTED]' } });
  });

  it('an error passed to next()', () => {
    const line = accessLine('/next-error');
    expect(line.err?.message).toBe('login failed for {"password":"[REDACTED]"} with [REDACTED]');
  });
});
