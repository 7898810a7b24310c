import { BUCKET_COUNT, LatencyHistogram, RELATIVE_PRECISION } from '@perfstack/timing';
import { describe, expect, it } from 'vitest';

/** The nearest-rank percentile of sorted values. */
function truePercentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const distributions: Record<string, (r: () => number) => number> = {
  'uniform 0-500 ms': (r) => r() * 500,
  'log-normal-ish 0.05 ms - 3 s': (r) => Math.exp(r() * 11) / 20,
  'bimodal (cache hits ~0.3 ms, misses ~80 ms)': (r) => (r() < 0.8 ? 0.2 + r() * 0.2 : 60 + r() * 40),
  'sub-millisecond': (r) => r() * 0.9,
};

describe('LatencyHistogram', () => {
  it('has a fixed size whatever it records', () => {
    const h = new LatencyHistogram();
    expect(h.counts.length).toBe(BUCKET_COUNT);
    for (let i = 0; i < 10_000; i++) h.record(i * 37.3);
    expect(h.counts.length).toBe(BUCKET_COUNT);
    expect(h.counts.byteLength).toBeLessThan(4096);
  });

  for (const [name, draw] of Object.entries(distributions)) {
    it(`reports p50/p95/p99 within ${(RELATIVE_PRECISION * 100).toFixed(2)}% of the true values: ${name}`, () => {
      const r = random(42);
      const h = new LatencyHistogram();
      const values: number[] = [];
      for (let i = 0; i < 50_000; i++) {
        const v = draw(r);
        values.push(v);
        h.record(v);
      }
      values.sort((a, b) => a - b);
      const got = h.percentiles([50, 95, 99, 100]);
      [50, 95, 99, 100].forEach((p, i) => {
        const want = truePercentile(values, p);
        // Precision is relative, plus half a microsecond of rounding to whole microseconds.
        expect(Math.abs((got[i] as number) - want)).toBeLessThanOrEqual(want * RELATIVE_PRECISION + 0.0005);
      });
      expect(h.count).toBe(50_000);
      expect(h.max).toBe(values[values.length - 1]);
      expect(h.mean()).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 6);
    });
  }

  it('merges histograms exactly (the merge equals recording everything in one)', () => {
    const r = random(7);
    const all = new LatencyHistogram();
    const parts = [new LatencyHistogram(), new LatencyHistogram(), new LatencyHistogram()];
    for (let i = 0; i < 30_000; i++) {
      const v = Math.exp(r() * 9) / 10;
      all.record(v);
      (parts[i % 3] as LatencyHistogram).record(v);
    }
    const merged = new LatencyHistogram();
    for (const part of parts) merged.add(part);
    expect(Array.from(merged.counts)).toEqual(Array.from(all.counts));
    expect(merged.count).toBe(all.count);
    expect(merged.max).toBe(all.max);
    expect(merged.sum).toBeCloseTo(all.sum, 6);
  });

  it('is empty after reset and answers 0 when empty', () => {
    const h = new LatencyHistogram();
    expect(h.percentiles([50, 99])).toEqual([0, 0]);
    expect(h.mean()).toBe(0);
    h.record(12);
    h.reset();
    expect(h.count).toBe(0);
    expect(h.max).toBe(0);
    expect(h.percentile(50)).toBe(0);
    expect(h.counts.every((c) => c === 0)).toBe(true);
  });

  it('clamps negative, huge and non-finite values instead of failing', () => {
    const h = new LatencyHistogram();
    h.record(-5);
    h.record(Number.NaN);
    h.record(10 * 3600_000); // 10 hours: past the tracked range, lands in the last bucket
    expect(h.count).toBe(3);
    expect(h.counts[0]).toBe(2);
    expect(h.counts[BUCKET_COUNT - 1]).toBe(1);
    expect(h.max).toBe(10 * 3600_000);
    expect(h.percentile(100)).toBeGreaterThan(2_000_000);
  });

  it('is exact below 32 microseconds', () => {
    const h = new LatencyHistogram();
    h.record(0.001);
    h.record(0.002);
    h.record(0.031);
    expect(h.percentiles([1, 50, 100])).toEqual([0.001, 0.002, 0.031]);
  });
});
