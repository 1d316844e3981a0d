import { describe, expect, it } from 'vitest';
import { criticalPath, matchSpans, operationStats, visibleRows, withAncestors } from '../../src/layout';
import { buildTrace } from '../../src/model';
import { mk } from './helpers';

// root 0..100 calls a (10..40) then b (50..90); a calls a1 (15..35); b has a short child b1.
const t = buildTrace(
  mk([
    ['r', '', 'front', 'GET /', 0, 100],
    ['a', 'r', 'auth', 'check', 10, 30],
    ['a1', 'a', 'db', 'select', 15, 20],
    ['b', 'r', 'cart', 'load', 50, 40, true],
    ['b1', 'b', 'db', 'select', 55, 10],
  ]),
);
const idx = (id: string) => t.spans.findIndex((s) => s.spanID === id);

describe('visibleRows', () => {
  it('shows everything when nothing is collapsed', () => {
    expect([...visibleRows(t, new Uint8Array(5))]).toEqual([0, 1, 2, 3, 4]);
  });
  it('hides the subtree of a collapsed span but keeps the span', () => {
    const c = new Uint8Array(5);
    c[idx('a')] = 1;
    expect([...visibleRows(t, c)].map((i) => t.spans[i].spanID)).toEqual(['r', 'a', 'b', 'b1']);
    c[idx('r')] = 1;
    expect([...visibleRows(t, c)]).toEqual([0]);
  });
  it('applies a keep mask', () => {
    const keep = withAncestors(t, matchSpans(t, { text: '', service: '', errorsOnly: true, minDuration: 0 }));
    expect([...visibleRows(t, new Uint8Array(5), keep)].map((i) => t.spans[i].spanID)).toEqual(['r', 'b']);
  });
});

describe('criticalPath', () => {
  it('walks back from the end through the last-finishing children', () => {
    const segs = criticalPath(t).map((s) => [t.spans[s.span].spanID, s.start, s.end]);
    expect(segs).toEqual([
      ['r', 0, 10],
      ['a', 10, 15],
      ['a1', 15, 35],
      ['a', 35, 40],
      ['r', 40, 50],
      ['b', 50, 55],
      ['b1', 55, 65],
      ['b', 65, 90],
      ['r', 90, 100],
    ]);
  });

  it('covers the root exactly once, without gaps or overlaps', () => {
    const segs = criticalPath(t);
    let cursor = 0;
    for (const s of segs) {
      expect(s.start).toBe(cursor);
      cursor = s.end;
    }
    expect(cursor).toBe(100);
  });

  it('picks the later of two parallel children and clips the overlap', () => {
    const p = buildTrace(
      mk([
        ['r', '', 's', 'root', 0, 100],
        ['x', 'r', 's', 'fast', 10, 30], // 10..40
        ['y', 'r', 's', 'slow', 20, 70], // 20..90
      ]),
    );
    const segs = criticalPath(p).map((s) => [p.spans[s.span].spanID, s.start, s.end]);
    expect(segs).toEqual([
      ['r', 0, 10],
      ['x', 10, 20],
      ['y', 20, 90],
      ['r', 90, 100],
    ]);
  });

  it('clips children that outlive their parent', () => {
    const p = buildTrace(
      mk([
        ['r', '', 's', 'root', 0, 50],
        ['x', 'r', 's', 'async', 40, 100],
      ]),
    );
    const segs = criticalPath(p).map((s) => [p.spans[s.span].spanID, s.start, s.end]);
    expect(segs).toEqual([
      ['r', 0, 40],
      ['x', 40, 50],
    ]);
  });

  it('handles a 100k-span chain without overflowing the stack', () => {
    const rows: [string, string, string, string, number, number][] = [];
    for (let i = 0; i < 100_000; i++) rows.push([`s${i}`, i ? `s${i - 1}` : '', 'svc', 'op', i, 200_000 - 2 * i]);
    const deep = buildTrace(mk(rows));
    const segs = criticalPath(deep);
    expect(new Set(segs.map((s) => s.span)).size).toBe(100_000);
  });
});

describe('matchSpans', () => {
  it('matches text in names, services and attribute values, case-insensitively', () => {
    const m = matchSpans(t, { text: 'SELECT', service: '', errorsOnly: false, minDuration: 0 });
    expect([...m]).toEqual([0, 0, 1, 0, 1]);
    const bySvc = matchSpans(t, { text: '', service: 'cart', errorsOnly: false, minDuration: 0 });
    expect([...bySvc]).toEqual([0, 0, 0, 1, 0]);
    const byDur = matchSpans(t, { text: '', service: '', errorsOnly: false, minDuration: 35 });
    expect([...byDur]).toEqual([1, 0, 0, 1, 0]);
    const byTag = matchSpans(t, { text: 'true', service: '', errorsOnly: false, minDuration: 0 });
    expect([...byTag]).toEqual([0, 0, 0, 1, 0]);
  });
});

describe('operationStats', () => {
  it('sums counts, errors, total and self time per service and operation', () => {
    const s = operationStats(t);
    const db = s.find((x) => x.service === 'db')!;
    expect(db).toMatchObject({ operation: 'select', count: 2, errors: 0, total: 30, self: 30, max: 20 });
    const cart = s.find((x) => x.service === 'cart')!;
    expect(cart).toMatchObject({ count: 1, errors: 1, total: 40, self: 30 });
    expect(s[0].self).toBeGreaterThanOrEqual(s[s.length - 1].self);
  });
});
