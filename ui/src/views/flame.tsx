import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { fmtDuration, serviceColor } from '../format';
import type { Segment } from '../layout';
import type { Trace } from '../model';

const ROW = 18;
const MAX_DEPTH = 1500;

/**
 * The trace as a flame graph (icicle): time across, depth down, one box per span, drawn on a
 * canvas so 100k spans cost one paint. Click a box to open that span; names are drawn with
 * fillText, never as HTML.
 */
export function FlameGraph(props: {
  trace: Trace;
  selected: number;
  matches: Uint8Array | null;
  critical: (Segment[] | undefined)[] | null;
  onSelect: (i: number) => void;
}) {
  const { trace } = props;
  const wrap = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(800);
  const [hover, setHover] = useState<number>(-1);
  // Double-click zooms into a span's time range.
  const [zoom, setZoom] = useState<[number, number] | null>(null);
  const z0 = zoom ? zoom[0] : trace.start;
  const z1 = zoom ? zoom[1] : trace.end;
  const byDepth = useMemo(() => {
    const d: number[][] = [];
    for (const s of trace.spans) {
      if (s.depth >= MAX_DEPTH) continue;
      (d[s.depth] ??= []).push(s.index);
    }
    return d;
  }, [trace]);
  useEffect(() => {
    const el = wrap.current!;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    setWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);
  const height = byDepth.length * ROW;
  useEffect(() => {
    const c = canvas.current!;
    const dpr = devicePixelRatio || 1;
    c.width = Math.round(width * dpr);
    c.height = Math.round(height * dpr);
    c.style.width = `${width}px`;
    c.style.height = `${height}px`;
    const g = c.getContext('2d')!;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const total = z1 - z0 || 1;
    const dark = document.documentElement.dataset.theme === 'dark';
    g.font = '11px system-ui, sans-serif';
    g.textBaseline = 'middle';
    for (let d = 0; d < byDepth.length; d++) {
      for (const i of byDepth[d]) {
        const s = trace.spans[i];
        if (s.end < z0 || s.start > z1) continue;
        const x = ((s.start - z0) / total) * width;
        const w = (s.duration / total) * width;
        if (w < 0.3 && i !== props.selected) continue;
        const dim = props.matches && !props.matches[i];
        g.globalAlpha = dim ? 0.25 : 1;
        g.fillStyle = s.error ? '#d32f2f' : serviceColor(s.service);
        g.fillRect(x, d * ROW, Math.max(w, 1), ROW - 1);
        const crit = props.critical?.[i];
        if (crit) {
          g.fillStyle = dark ? '#fff' : '#111';
          for (const seg of crit) {
            g.fillRect(((seg.start - z0) / total) * width, d * ROW + ROW - 4, Math.max(1, ((seg.end - seg.start) / total) * width), 3);
          }
        }
        if (i === props.selected || i === hover) {
          g.globalAlpha = 1;
          g.strokeStyle = dark ? '#fff' : '#000';
          g.lineWidth = 2;
          g.strokeRect(x + 1, d * ROW + 1, Math.max(w - 2, 1), ROW - 3);
        }
        if (w > 40) {
          g.globalAlpha = 1;
          g.fillStyle = '#fff';
          const label = `${s.operation} (${fmtDuration(s.duration)})`;
          g.save();
          g.beginPath();
          g.rect(x, d * ROW, w, ROW);
          g.clip();
          g.fillText(label, x + 3, d * ROW + ROW / 2);
          g.restore();
        }
      }
    }
    g.globalAlpha = 1;
  }, [trace, width, height, props.selected, props.matches, props.critical, hover, z0, z1]);

  const hit = (e: MouseEvent): number => {
    const rect = canvas.current!.getBoundingClientRect();
    const d = Math.floor((e.clientY - rect.top) / ROW);
    const t = z0 + ((e.clientX - rect.left) / rect.width) * (z1 - z0);
    const slack = (2 / rect.width) * (z1 - z0);
    let best = -1;
    for (const i of byDepth[d] ?? []) {
      const s = trace.spans[i];
      if (s.start - slack <= t && t <= s.end + slack && (best < 0 || s.duration < trace.spans[best].duration)) best = i;
    }
    return best;
  };
  const h = hover >= 0 ? trace.spans[hover] : null;
  return (
    <div class="flame" ref={wrap}>
      <canvas
        ref={canvas}
        role="img"
        aria-label="Flame graph"
        onClick={(e) => {
          const i = hit(e);
          if (i >= 0) props.onSelect(i);
        }}
        onDblClick={(e) => {
          const i = hit(e);
          if (i >= 0 && trace.spans[i].duration > 0) setZoom([trace.spans[i].start, trace.spans[i].end]);
        }}
        onMouseMove={(e) => setHover(hit(e))}
        onMouseLeave={() => setHover(-1)}
      />
      <div class="flame-hover" aria-live="polite">
        {zoom && (
          <button type="button" class="reset-zoom" onClick={() => setZoom(null)}>
            Reset zoom
          </button>
        )}
        {h ? `${h.service}: ${h.operation}, ${fmtDuration(h.duration)} (self ${fmtDuration(h.selfTime)})` : 'Hover a box for details, click to open the span, double-click to zoom into it.'}
      </div>
      {trace.spans.some((s) => s.depth >= MAX_DEPTH) && <p class="muted">Spans deeper than {MAX_DEPTH} levels are not drawn; use the timeline.</p>}
    </div>
  );
}
