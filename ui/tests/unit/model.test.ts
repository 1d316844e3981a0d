import { describe, expect, it } from 'vitest';
import { buildTrace, isError } from '../../src/model';
import { mk } from './helpers';

describe('buildTrace', () => {
  it('orders spans depth-first with siblings by start time', () => {
    const t = buildTrace(
      mk([
        ['c', 'a', 's2', 'late', 50, 10],
        ['a', '', 's1', 'root', 0, 100],
        ['b', 'a', 's2', 'early', 10, 20],
        ['d', 'b', 's3', 'leaf', 12, 5],
      ]),
    );
    expect(t.spans.map((s) => s.spanID)).toEqual(['a', 'b', 'd', 'c']);
    expect(t.spans.map((s) => s.depth)).toEqual([0, 1, 2, 1]);
    expect(t.spans.map((s) => s.parent)).toEqual([-1, 0, 1, 0]);
    expect(t.spans.map((s) => s.last)).toEqual([3, 2, 2, 3]);
    expect(t.roots).toEqual([0]);
    expect(t.services).toEqual(['s1', 's2', 's3']);
    expect(t.duration).toBe(100);
  });

  it('makes spans with a missing parent roots and never loses a span', () => {
    const t = buildTrace(
      mk([
        ['a', '', 's', 'root', 0, 10],
        ['x', 'gone', 's', 'orphan', 5, 1],
      ]),
    );
    expect(t.roots.length).toBe(2);
    expect(t.spans.length).toBe(2);
  });

  it('breaks reference cycles instead of dropping or looping', () => {
    const t = buildTrace(
      mk([
        ['a', 'b', 's', 'one', 0, 10],
        ['b', 'a', 's', 'two', 1, 5],
      ]),
    );
    expect(t.spans.length).toBe(2);
    expect(t.spans[0].spanID).toBe('a');
    expect(t.spans[1].parent).toBe(0);
  });

  it('handles very deep traces without recursion', () => {
    const rows: [string, string, string, string, number, number][] = [];
    for (let i = 0; i < 50_000; i++) rows.push([`s${i}`, i ? `s${i - 1}` : '', 'svc', 'op', i, 100_000 - i]);
    const t = buildTrace(mk(rows));
    expect(t.spans[49_999].depth).toBe(49_999);
    expect(t.spans[0].last).toBe(49_999);
  });

  it('computes self time as duration minus the union of child intervals', () => {
    const t = buildTrace(
      mk([
        ['a', '', 's', 'root', 0, 100],
        ['b', 'a', 's', 'x', 10, 30], // 10..40
        ['c', 'a', 's', 'y', 20, 40], // 20..60, overlaps b
        ['d', 'a', 's', 'z', 90, 30], // 90..120, clipped to 100
      ]),
    );
    expect(t.spans[0].selfTime).toBe(100 - 50 - 10);
    expect(t.spans[1].selfTime).toBe(30);
  });

  it('recognises errors from error=true and otel.status_code', () => {
    expect(isError([{ key: 'error', value: true }])).toBe(true);
    expect(isError([{ key: 'otel.status_code', value: 'ERROR' }])).toBe(true);
    expect(isError([{ key: 'otel.status_code', value: 'OK' }])).toBe(false);
    expect(isError(null)).toBe(false);
  });
});
