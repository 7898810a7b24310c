import { ensureRequestId, isValidRequestId } from '@perfstack/core';
import { describe, expect, it } from 'vitest';
import { listen, request } from '../../../test/helpers/http.js';

describe('request ids', () => {
  it.each([
    ['abc-123', true],
    ['a'.repeat(128), true],
    ['a'.repeat(129), false],
    ['', false],
    ['has space', false],
    ['line\r\nbreak', false],
    ['<script>', false],
    [42, false],
  ])('isValidRequestId(%j) is %s', (value, valid) => {
    expect(isValidRequestId(value)).toBe(valid);
  });

  it('keeps a valid incoming id, replaces an invalid one, and echoes it', async () => {
    const server = await listen((req, res) => {
      const id = ensureRequestId(req, res);
      expect(ensureRequestId(req, res)).toBe(id);
      res.end(id);
    });
    try {
      const kept = await request(`${server.url}/`, { headers: { 'x-request-id': 'trace-42' } });
      expect(kept.headers['x-request-id']).toBe('trace-42');
      expect(kept.text).toBe('trace-42');
      const replaced = await request(`${server.url}/`, { headers: { 'x-request-id': 'bad id' } });
      expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(replaced.text).toBe(replaced.headers['x-request-id']);
      const generated = await request(`${server.url}/`);
      expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(generated.headers['x-request-id']).not.toBe(replaced.headers['x-request-id']);
    } finally {
      await server.close();
    }
  });
});
