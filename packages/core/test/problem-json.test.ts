/**
 * The prebuilt problem bodies (`problemJson`, what `sendProblem` writes) are byte for byte
 * `JSON.stringify(problemBody(problem))`, for any code, title, status, detail and extensions.
 */
import { PROBLEM_CODES, type ProblemCode, problemBody } from '@perfstack/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HttpProblemError, problemJson } from '../src/problem.js';

const codes = Object.keys(PROBLEM_CODES) as ProblemCode[];
const problem = fc.record(
  {
    code: fc.constantFrom(...codes),
    detail: fc.string(),
    status: fc.integer({ min: 400, max: 599 }),
    title: fc.string(),
    extensions: fc.dictionary(
      fc.oneof(fc.string(), fc.constantFrom('status', 'code', 'type', 'title', 'detail', '0', '12', 'toJSON', 'limit')),
      fc.oneof(fc.jsonValue(), fc.constant(undefined)),
    ),
  },
  { requiredKeys: ['code', 'detail'] },
);

describe('problemJson', () => {
  it('is JSON.stringify(problemBody(problem)) for any problem', () => {
    fc.assert(
      fc.property(problem, (p) => {
        expect(problemJson(p)).toBe(JSON.stringify(problemBody(p)));
        // Twice: the second call is served from the prefix cache.
        expect(problemJson(p)).toBe(JSON.stringify(problemBody(p)));
        const error = new HttpProblemError(p);
        expect(problemJson(error)).toBe(JSON.stringify(problemBody(error)));
      }),
      { numRuns: 500 },
    );
  });

  it('writes the rate limiter’s 429 exactly', () => {
    const body = problemJson({
      code: 'RATE_LIMITED',
      detail: 'Too many requests, please try again later.',
      extensions: { limit: 'default', retryAfter: 900 },
    });
    expect(JSON.parse(body)).toEqual({
      type: 'urn:perfstack:problem:rate-limited',
      title: 'Too Many Requests',
      status: 429,
      detail: 'Too many requests, please try again later.',
      code: 'RATE_LIMITED',
      limit: 'default',
      retryAfter: 900,
    });
    expect(body).toBe(
      '{"type":"urn:perfstack:problem:rate-limited","title":"Too Many Requests","status":429,"detail":"Too many requests, please try again later.","code":"RATE_LIMITED","limit":"default","retryAfter":900}',
    );
  });
});
