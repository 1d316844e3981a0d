import { describe, expect, it } from 'vitest';
import { fmtDuration, parseDuration, parseTags } from '../../src/format';
import { summarize } from '../../src/summary';
import { mk } from './helpers';

describe('format', () => {
  it('formats durations', () => {
    expect(fmtDuration(850)).toBe('850µs');
    expect(fmtDuration(12_345)).toBe('12.3ms');
    expect(fmtDuration(4_560_000)).toBe('4.56s');
    expect(fmtDuration(125_000_000)).toBe('2m 5s');
  });
  it('parses Go durations into µs', () => {
    expect(parseDuration('1.5s')).toBe(1_500_000);
    expect(parseDuration('100ms')).toBe(100_000);
    expect(parseDuration('1m30s')).toBe(90_000_000);
    expect(parseDuration('250us')).toBe(250);
    expect(parseDuration('fast')).toBeNull();
    expect(parseDuration('10')).toBeNull();
  });
  it('parses logfmt tags', () => {
    expect(parseTags('a=1 b="x y" c=')).toEqual({ a: '1', b: 'x y', c: '' });
    expect(parseTags('  ')).toEqual({});
    expect(typeof parseTags('novalue')).toBe('string');
  });
});

describe('summarize', () => {
  it('finds the root, counts spans and errors, and measures the trace', () => {
    const s = summarize(
      mk([
        ['c', 'r', 'db', 'q', 20, 5, true],
        ['r', '', 'front', 'GET /', 10, 100],
      ]),
    );
    expect(s).toMatchObject({ rootService: 'front', rootOperation: 'GET /', spanCount: 2, errorCount: 1, start: 10, duration: 100 });
    expect(s.services).toEqual([
      ['db', 1],
      ['front', 1],
    ]);
  });
});

describe('minimap colours', async () => {
  const { rgba } = await import('../../src/views/minimap');
  it('converts hsl() to little-endian RGBA words', () => {
    expect(rgba('hsl(0 100% 50%)')).toBe(0xff0000ff); // red: A=ff B=00 G=00 R=ff
    expect(rgba('hsl(120 100% 50%)')).toBe(0xff00ff00);
    expect(rgba('hsl(240 100% 50%)')).toBe(0xffff0000);
    expect(rgba('hsl(0 0% 100%)')).toBe(0xffffffff);
  });
});
