import { describe, expect, it } from 'vitest';
import { clampRange, fitView, isFullRange, panBy, placeInRange, rangeFromDrag, zoomAround, MAX_SCALE, MIN_SCALE } from '../../src/zoom';

const full = { start: 1000, end: 2000 };

describe('timeline zoom', () => {
  it('turns a drag across the ruler into the time range under it, in either direction', () => {
    expect(rangeFromDrag(100, 300, 1000, full, full)).toEqual({ start: 1100, end: 1300 });
    expect(rangeFromDrag(300, 100, 1000, full, full)).toEqual({ start: 1100, end: 1300 });
  });

  it('zooms again inside a zoomed view', () => {
    const view = { start: 1100, end: 1300 };
    expect(rangeFromDrag(0, 500, 1000, view, full)).toEqual({ start: 1100, end: 1200 });
  });

  it('treats a short drag as a click and clips drags past the edges', () => {
    expect(rangeFromDrag(100, 102, 1000, full, full)).toBeNull();
    expect(rangeFromDrag(-50, 2000, 1000, full, full)).toEqual(full);
    expect(rangeFromDrag(0, 10, 0, full, full)).toBeNull();
  });

  it('never zooms narrower than a microsecond', () => {
    const r = rangeFromDrag(500, 505, 1000, { start: 1500, end: 1500.5 }, full)!;
    expect(r.end - r.start).toBeCloseTo(1);
  });

  it('keeps a range inside the trace', () => {
    expect(clampRange({ start: 1900, end: 2100 }, full)).toEqual({ start: 1800, end: 2000 });
    expect(clampRange({ start: 0, end: 5000 }, full)).toEqual(full);
  });

  it('places bars relative to the view and clips them', () => {
    const view = { start: 1200, end: 1400 };
    expect(placeInRange(1250, 1300, view)).toEqual({ left: 25, width: 25, visible: true });
    expect(placeInRange(1100, 1250, view)).toEqual({ left: 0, width: 25, visible: true });
    expect(placeInRange(1500, 1600, view).visible).toBe(false);
    expect(placeInRange(1000, 1100, view).visible).toBe(false);
    expect(isFullRange(full, full)).toBe(true);
    expect(isFullRange(view, full)).toBe(false);
  });
});

describe('service map pan and zoom', () => {
  it('keeps the point under the cursor fixed while zooming', () => {
    const v = zoomAround({ x: 10, y: 20, k: 1 }, 2, 110, 70);
    // Content point under (110, 70) before: ((110-10)/1, (70-20)/1) = (100, 50).
    expect((110 - v.x) / v.k).toBeCloseTo(100);
    expect((70 - v.y) / v.k).toBeCloseTo(50);
    expect(v.k).toBe(2);
  });

  it('clamps the scale', () => {
    expect(zoomAround({ x: 0, y: 0, k: 1 }, 1000, 0, 0).k).toBe(MAX_SCALE);
    expect(zoomAround({ x: 0, y: 0, k: 1 }, 0.0001, 0, 0).k).toBe(MIN_SCALE);
  });

  it('pans by screen pixels', () => {
    expect(panBy({ x: 1, y: 2, k: 3 }, 10, -5)).toEqual({ x: 11, y: -3, k: 3 });
  });

  it('fits a large map into the viewport, centred, and never enlarges a small one', () => {
    const big = fitView(2000, 1000, 1000, 600, 0);
    expect(big.k).toBeCloseTo(0.5);
    expect(big.x).toBeCloseTo(0);
    expect(big.y).toBeCloseTo(50);
    expect(fitView(100, 100, 1000, 600).k).toBe(1);
  });
});
