import { pathOf, pathPrefixMatcher } from '@perfstack/core';
import { describe, expect, it } from 'vitest';

describe('pathPrefixMatcher', () => {
  const match = pathPrefixMatcher(['/health', '/dashboard/', '/metrics']);

  it.each([
    ['/health', true],
    ['/health/live', true],
    ['/healthz', false],
    ['/dashboard', true],
    ['/dashboard/api/stream', true],
    ['/dashboards', false],
    ['/metrics', true],
    ['/', false],
    ['/api/health', false],
  ])('%s → %s', (path, expected) => {
    expect(match(path)).toBe(expected);
  });

  it("matches nothing without prefixes, everything with '/'", () => {
    expect(pathPrefixMatcher([])('/health')).toBe(false);
    expect(pathPrefixMatcher(['/'])('/anything/at/all')).toBe(true);
  });

  it('is used on paths without the query string', () => {
    expect(match(pathOf('/health?verbose=1'))).toBe(true);
    expect(pathOf('/a/b?c=d')).toBe('/a/b');
    expect(pathOf(undefined)).toBe('/');
  });
});
