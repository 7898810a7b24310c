import { HttpProblemError, isHttpProblemError, PROBLEM_CODES, sendProblem } from '@perfstack/core';
import { describe, expect, it } from 'vitest';
import { listen, request } from '../../../test/helpers/http.js';

describe('problem+json', () => {
  it('has the codes table of ARCHITECTURE.md', () => {
    expect(PROBLEM_CODES.PAYLOAD_TOO_LARGE.status).toBe(413);
    expect(PROBLEM_CODES.URI_TOO_LONG.status).toBe(414);
    expect(PROBLEM_CODES.HEADERS_TOO_LARGE.status).toBe(431);
    expect(PROBLEM_CODES.RATE_LIMITED.status).toBe(429);
    expect(PROBLEM_CODES.CIRCUIT_OPEN.status).toBe(503);
    expect(PROBLEM_CODES.OVERLOADED.status).toBe(503);
    expect(PROBLEM_CODES.TIMEOUT.status).toBe(504);
  });

  it('writes an RFC 9457 body with status, title, detail, code, extensions and headers', async () => {
    const server = await listen((req, res) => {
      res.setHeader('X-Request-Id', 'keep-me');
      res.setHeader('ETag', '"drop-me"');
      res.setHeader('Set-Cookie', 'session=1');
      sendProblem(
        res,
        {
          code: 'RATE_LIMITED',
          detail: 'Too many requests; retry in 30 s.',
          extensions: { limit: 10 },
          headers: { 'Retry-After': 30 },
        },
        req.method,
      );
    });
    try {
      const res = await request(`${server.url}/x`);
      expect(res.status).toBe(429);
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['retry-after']).toBe('30');
      expect(res.headers['x-request-id']).toBe('keep-me');
      expect(res.headers.etag).toBeUndefined();
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(res.json()).toEqual({
        type: 'urn:perfstack:problem:rate-limited',
        title: 'Too Many Requests',
        status: 429,
        detail: 'Too many requests; retry in 30 s.',
        code: 'RATE_LIMITED',
        limit: 10,
      });
      const head = await request(`${server.url}/x`, { method: 'HEAD' });
      expect(head.status).toBe(429);
      expect(head.body.length).toBe(0);
      expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });

  it('HttpProblemError carries code and status and is recognised by the guard', () => {
    const error = new HttpProblemError({ code: 'TIMEOUT', detail: 'slow' });
    expect(error.status).toBe(504);
    expect(error.title).toBe('Gateway Timeout');
    expect(isHttpProblemError(error)).toBe(true);
    expect(isHttpProblemError(new Error('x'))).toBe(false);
    expect(isHttpProblemError({ name: 'HttpProblemError', code: 'TIMEOUT', status: 504 })).toBe(true);
  });
});
