import { useEffect, useRef } from 'preact/hooks';
import { serviceColor } from '../format';
import type { Trace } from '../model';

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
  const { trace, rows, rowHeight, viewport } = props;
  useEffect(() => {
    const c = canvas.current!;
    const dpr = devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    c.width = Math.max(1, Math.round(w * dpr));
    c.height = Math.max(1, Math.round(h * dpr));
    const g = c.getContext('2d')!;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const n = rows.length;
    if (!n) return;
    const total = trace.duration || 1;
    const lineH = Math.max(h / n, 0.5);
    const colors = new Map<string, string>();
    for (let r = 0; r < n; r++) {
      const s = trace.spans[rows[r]];
      let col = colors.get(s.service);
      if (!col) colors.set(s.service, (col = serviceColor(s.service)));
      const dim = props.matches && !props.matches[s.index];
      g.globalAlpha = dim ? 0.2 : 1;
      g.fillStyle = s.error ? '#d32f2f' : col;
      const x = ((s.start - trace.start) / total) * w;
      g.fillRect(x, (r / n) * h, Math.max(1, (s.duration / total) * w), Math.min(lineH, 3));
    }
    g.globalAlpha = 1;
  }, [trace, rows, props.matches]);
  const totalH = rows.length * rowHeight || 1;
  const frameTop = (viewport.top / totalH) * 100;
  const frameH = Math.min(100, (viewport.height / totalH) * 100);
  const scrollFrom = (e: MouseEvent) => {
    const el = e.currentTarget as HTMLElement;
    const rect = el.getBoundingClientRect();
    const f = (e.clientY - rect.top) / rect.height;
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
