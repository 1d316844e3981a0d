import { describe, expect, it } from 'vitest';
import type { Red, RedAnswer, RedSeries } from '../../src/api';
import { differenceWindows, healthOf, latencyRatio, linear, nestedWindows, niceScale } from '../../src/redchart';

const red = (calls: number, errors: number, meanMs: number | null, p90Ms: number | null = meanMs): Red => ({
  calls,
  errors,
  ratePerSecond: 0,
  errorRatio: calls ? errors / calls : 0,
  p50Ms: meanMs,
  p90Ms,
  p99Ms: p90Ms,
  meanMs,
});
const series = (operation: string, calls: number, errors: number, meanMs: number | null): RedSeries => ({
  service: 'cart',
  operation,
  spanKind: 'server',
  exemplarTraceIDs: [],
  ...red(calls, errors, meanMs),
});

describe('RED over time from nested windows', () => {
  it('asks for one window per bucket', () => {
    expect(nestedWindows(60, 10)).toEqual(['10s', '20s', '30s', '40s', '50s', '60s']);
    expect(nestedWindows(300, 30)).toHaveLength(10);
  });

  it('differences counts and latency sums into per-bucket points, oldest first', () => {
    const answers: RedAnswer[] = [
      { windowSeconds: 20, series: [series('load', 10, 1, 10)] }, // newest bucket: 10 calls, 1 error, mean 10
      { windowSeconds: 10, series: [] }, // order does not matter
      { windowSeconds: 30, series: [series('load', 30, 1, 20), series('save', 2, 2, 5)] },
    ];
    answers[1] = { windowSeconds: 10, series: [series('load', 4, 0, 5)] };
    const [load, save] = differenceWindows(answers);
    expect(load.operation).toBe('load');
    expect(load.points.map((p) => [p.fromAgo, p.toAgo])).toEqual([
      [30, 20],
      [20, 10],
      [10, 0],
    ]);
    expect(load.points.map((p) => p.calls)).toEqual([20, 6, 4]);
    expect(load.points.map((p) => p.errors)).toEqual([0, 1, 0]);
    expect(load.points.map((p) => p.rate)).toEqual([2, 0.6, 0.4]);
    // sums: 4×5=20, 10×10=100, 30×20=600 → buckets 20/4=5, 80/6, 500/20=25
    expect(load.points[2].meanMs).toBeCloseTo(5);
    expect(load.points[1].meanMs).toBeCloseTo(80 / 6);
    expect(load.points[0].meanMs).toBeCloseTo(25);
    expect(load.total.calls).toBe(30);
    // An operation only in the largest window has calls only in the oldest bucket.
    expect(save.points.map((p) => p.calls)).toEqual([2, 0, 0]);
    expect(save.points[1].errorRatio).toBeNull();
    expect(save.points[0].errorRatio).toBe(1);
  });

  it('clamps counts that shrink between windows (a slot passed between requests)', () => {
    const [op] = differenceWindows([
      { windowSeconds: 10, series: [series('x', 5, 2, 1)] },
      { windowSeconds: 20, series: [series('x', 3, 1, 1)] },
    ]);
    expect(op.points.map((p) => p.calls)).toEqual([0, 5]);
    expect(op.points.every((p) => p.errors <= p.calls)).toBe(true);
  });

  it('puts the busiest operation first', () => {
    const ops = differenceWindows([{ windowSeconds: 10, series: [series('a', 1, 0, 1), series('b', 9, 0, 1)] }]);
    expect(ops.map((o) => o.operation)).toEqual(['b', 'a']);
    expect(differenceWindows([])).toEqual([]);
  });
});

describe('chart scales', () => {
  it('rounds axis tops to nice numbers', () => {
    expect(niceScale(7.3)).toEqual({ top: 7.5, step: 2.5 });
    expect(niceScale(0.042).step).toBeCloseTo(0.02);
    expect(niceScale(0.042).top).toBeCloseTo(0.06);
    expect(niceScale(100)).toEqual({ top: 100, step: 50 });
    expect(niceScale(0)).toEqual({ top: 1, step: 1 / 3 });
    expect(niceScale(NaN).top).toBe(1);
  });

  it('maps linearly, including reversed ranges', () => {
    const y = linear(0, 10, 100, 0);
    expect(y(0)).toBe(100);
    expect(y(10)).toBe(0);
    expect(y(5)).toBe(50);
    expect(linear(3, 3, 0, 10)(3)).toBe(5);
  });
});

describe('health colouring', () => {
  it('grades by error ratio', () => {
    expect(healthOf(red(100, 0, 10)).level).toBe('ok');
    expect(healthOf(red(100, 2, 10)).level).toBe('warn');
    expect(healthOf(red(100, 10, 10))).toEqual({ level: 'bad', reasons: ['10.0% errors'] });
    expect(healthOf(red(0, 0, null)).level).toBe('idle');
    expect(healthOf(null).level).toBe('idle');
  });

  it('grades by p90 latency against the baseline', () => {
    expect(healthOf(red(10, 0, 10, 20), red(100, 0, 10, 10)).level).toBe('warn');
    expect(healthOf(red(10, 0, 10, 40), red(100, 0, 10, 10))).toEqual({ level: 'bad', reasons: ['p90 4.0× its baseline'] });
    expect(healthOf(red(10, 0, 10, 12), red(100, 0, 10, 10)).level).toBe('ok');
    expect(latencyRatio(red(10, 0, 10, 12), red(0, 0, null, null))).toBeNull();
  });
});
