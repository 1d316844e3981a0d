// Zoom maths for the timeline (a time range chosen by dragging) and the service map (scale and
// pan of an SVG). Pure and unit tested; the views only turn pointer positions into calls here.

/** A time range in µs, absolute. */
export interface TimeRange {
  start: number;
  end: number;
}

/** The narrowest range the timeline zooms to, µs: below this bars would be wider than the view. */
export const MIN_RANGE_US = 1;

/**
 * The range selected by dragging from `x0` to `x1` (pixels, in either order) across a strip
 * `width` pixels wide that shows `view`. Null when the drag is too short to mean a selection
 * (a click), so the caller can treat it as one. The result never leaves `bounds`.
 */
export function rangeFromDrag(x0: number, x1: number, width: number, view: TimeRange, bounds: TimeRange, minPx = 4): TimeRange | null {
  if (width <= 0 || Math.abs(x1 - x0) < minPx) return null;
  const f0 = Math.max(0, Math.min(1, Math.min(x0, x1) / width));
  const f1 = Math.max(0, Math.min(1, Math.max(x0, x1) / width));
  const span = view.end - view.start;
  let start = view.start + f0 * span;
  let end = view.start + f1 * span;
  if (end - start < MIN_RANGE_US) {
    const mid = (start + end) / 2;
    start = mid - MIN_RANGE_US / 2;
    end = mid + MIN_RANGE_US / 2;
  }
  return clampRange({ start, end }, bounds);
}

/** Shifts a range back inside `bounds` keeping its length (or shrinks it to `bounds`). */
export function clampRange(r: TimeRange, bounds: TimeRange): TimeRange {
  const len = Math.min(r.end - r.start, bounds.end - bounds.start);
  const start = Math.max(bounds.start, Math.min(r.start, bounds.end - len));
  return { start, end: start + len };
}

/** Where an interval lies in the view, as left/width percentages (clipped to 0..100). */
export function placeInRange(start: number, end: number, view: TimeRange): { left: number; width: number; visible: boolean } {
  const span = view.end - view.start || 1;
  const l = ((start - view.start) / span) * 100;
  const r = ((end - view.start) / span) * 100;
  const left = Math.max(0, l);
  const right = Math.min(100, r);
  return { left, width: Math.max(0, right - left), visible: r >= 0 && l <= 100 };
}

/** True when `view` is all of `bounds` (nothing to reset). */
export function isFullRange(view: TimeRange, bounds: TimeRange): boolean {
  return view.start <= bounds.start && view.end >= bounds.end;
}

/** A 2-D view of an SVG: content point p shows at p·k + (x, y). */
export interface PanZoom {
  x: number;
  y: number;
  k: number;
}

export const IDENTITY: PanZoom = { x: 0, y: 0, k: 1 };
export const MIN_SCALE = 0.2;
export const MAX_SCALE = 8;

/** Scales by `factor` around the screen point (px, py), which stays over the same content point. */
export function zoomAround(v: PanZoom, factor: number, px: number, py: number): PanZoom {
  const k = Math.max(MIN_SCALE, Math.min(MAX_SCALE, v.k * factor));
  const f = k / v.k;
  return { k, x: px - (px - v.x) * f, y: py - (py - v.y) * f };
}

/** Moves the view by (dx, dy) screen pixels. */
export function panBy(v: PanZoom, dx: number, dy: number): PanZoom {
  return { ...v, x: v.x + dx, y: v.y + dy };
}

/** The view that fits a `w`×`h` content box into a `vw`×`vh` viewport, never enlarging past 1. */
export function fitView(w: number, h: number, vw: number, vh: number, pad = 16): PanZoom {
  if (w <= 0 || h <= 0 || vw <= 0 || vh <= 0) return IDENTITY;
  const k = Math.max(MIN_SCALE, Math.min(1, (vw - 2 * pad) / w, (vh - 2 * pad) / h));
  return { k, x: (vw - w * k) / 2, y: (vh - h * k) / 2 };
}
