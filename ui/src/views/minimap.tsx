import { useEffect, useRef, useState } from 'preact/hooks';
import { serviceColor } from '../format';
import type { Trace } from '../model';

const MAX_ROW_PX = 4;
const ERROR_RGBA = 0xff2f2fd3; // #d32f2f as little-endian RGBA

/** `hsl(H S% L%)` (what serviceColor returns) as a little-endian RGBA word. */
export function rgba(hsl: string): number {
  const m = /hsl\((\d+(?:\.\d+)?) (\d+(?:\.\d+)?)% (\d+(?:\.\d+)?)%\)/.exec(hsl);
  if (!m) return 0xff888888;
  const h = +m[1] / 360;
  const s = +m[2] / 100;
  const l = +m[3] / 100;
  const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
  const p = 2 * l - q;
  const ch = (t: number) => {
    t = (t + 1) % 1;
    const v = t < 1 / 6 ? p + (q - p) * 6 * t : t < 1 / 2 ? q : t < 2 / 3 ? p + (q - p) * (2 / 3 - t) * 6 : p;
    return Math.round(v * 255);
  };
  return ((0xff << 24) | (ch(h - 1 / 3) << 16) | (ch(h) << 8) | ch(h + 1 / 3)) >>> 0;
}

/**
 * The whole timeline in a narrow canvas: one line per visible row (rows share pixels when
 * there are more rows than pixels), the viewport as a frame; click or drag to scroll there.
 */
export function Minimap(props: {
  trace: Trace;
  rows: Int32Array;
  rowHeight: number;
  viewport: { top: number; height: number };
  matches: Uint8Array | null;
  onScrollTo: (top: number) => void;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [cssHeight, setCssHeight] = useState(600);
  const { trace, rows, rowHeight, viewport } = props;
  useEffect(() => {
    const c = canvas.current!;
    const ro = new ResizeObserver(() => setCssHeight(c.clientHeight));
    ro.observe(c);
    return () => ro.disconnect();
  }, []);
  // Up to 4 px per row: a short trace fills the top of the map instead of spreading out.
  const frac = rows.length ? Math.min(1, (rows.length * MAX_ROW_PX) / Math.max(1, cssHeight)) : 1;
  useEffect(() => {
    const c = canvas.current!;
    const dpr = devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    c.width = Math.max(1, Math.round(w * dpr));
    c.height = Math.max(1, Math.round(h * dpr));
    const g = c.getContext('2d')!;
    const n = rows.length;
    const W = c.width;
    const H = c.height;
    if (!n) return g.clearRect(0, 0, W, H);
    // Straight into a pixel buffer: one pass over the rows, no canvas call per span.
    const img = g.createImageData(W, H);
    const px = new Uint32Array(img.data.buffer);
    const total = trace.duration || 1;
    const colors = new Map<string, number>();
    const lineH = Math.max(1, Math.min(3 * dpr, Math.floor((H * frac) / n)));
    for (let r = 0; r < n; r++) {
      const s = trace.spans[rows[r]];
      let col = s.error ? ERROR_RGBA : colors.get(s.service);
      if (col === undefined) colors.set(s.service, (col = rgba(serviceColor(s.service))));
      if (props.matches && !props.matches[s.index]) col = (col & 0x00ffffff) | (0x40 << 24);
      const y0 = Math.floor((r / n) * H * frac);
      const x0 = Math.floor(((s.start - trace.start) / total) * W);
      const x1 = Math.min(W, Math.max(x0 + 1, Math.ceil(((s.end - trace.start) / total) * W)));
      for (let y = y0; y < Math.min(H, y0 + lineH); y++) px.fill(col, y * W + Math.max(0, x0), y * W + x1);
    }
    g.putImageData(img, 0, 0);
  }, [trace, rows, props.matches, frac, cssHeight]);
  const totalH = rows.length * rowHeight || 1;
  const frameTop = (viewport.top / totalH) * 100 * frac;
  const frameH = Math.min(100, (viewport.height / totalH) * 100) * frac;
  const scrollFrom = (e: MouseEvent) => {
    const el = e.currentTarget as HTMLElement;
    const rect = el.getBoundingClientRect();
    const f = (e.clientY - rect.top) / (rect.height * frac);
    props.onScrollTo(Math.max(0, f * totalH - viewport.height / 2));
  };
  return (
    <div
      class="minimap"
      title="Minimap: click or drag to scroll"
      onMouseDown={(e) => {
        scrollFrom(e);
        const el = e.currentTarget as HTMLElement;
        const move = (m: MouseEvent) => scrollFrom({ currentTarget: el, clientY: m.clientY } as unknown as MouseEvent);
        const up = () => {
          removeEventListener('mousemove', move);
          removeEventListener('mouseup', up);
        };
        addEventListener('mousemove', move);
        addEventListener('mouseup', up);
      }}
    >
      <canvas ref={canvas} />
      <div class="minimap-frame" style={{ top: `${frameTop}%`, height: `max(${frameH}%, 4px)` }} />
    </div>
  );
}
