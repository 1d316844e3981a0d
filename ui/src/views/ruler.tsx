import { useRef, useState } from 'preact/hooks';
import { fmtDuration } from '../format';
import type { Trace } from '../model';
import { rangeFromDrag, type TimeRange } from '../zoom';

/**
 * The time axis over the timeline. Dragging across it selects a time range to zoom into; the
 * ticks are offsets from the start of the trace.
 */
export function TimeRuler({ trace, view, onZoom }: { trace: Trace; view: TimeRange; onZoom: (r: TimeRange) => void }) {
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const strip = useRef<HTMLDivElement>(null);
  const [drag, setDrag] = useState<{ x0: number; x1: number } | null>(null);
  const span = view.end - view.start;
  const onMouseDown = (e: MouseEvent) => {
    if (e.button !== 0) return;
    const el = strip.current!;
    const rect = el.getBoundingClientRect();
    const x0 = e.clientX - rect.left;
    setDrag({ x0, x1: x0 });
    e.preventDefault();
    const move = (m: MouseEvent) => setDrag({ x0, x1: Math.max(0, Math.min(rect.width, m.clientX - rect.left)) });
    const up = (m: MouseEvent) => {
      removeEventListener('mousemove', move);
      removeEventListener('mouseup', up);
      setDrag(null);
      const r = rangeFromDrag(x0, m.clientX - rect.left, rect.width, view, { start: trace.start, end: trace.end });
      if (r) onZoom(r);
    };
    addEventListener('mousemove', move);
    addEventListener('mouseup', up);
  };
  const sel = drag && Math.abs(drag.x1 - drag.x0) >= 1 ? { left: Math.min(drag.x0, drag.x1), width: Math.abs(drag.x1 - drag.x0) } : null;
  return (
    <div class="ruler">
      <div class="ruler-name">Service: operation</div>
      <div class="ruler-time" ref={strip} onMouseDown={onMouseDown} title="Drag across the time axis to zoom into that range">
        {ticks.map((f) => (
          <span class="tick" aria-hidden="true" style={{ left: `${f * 100}%` }}>
            {fmtDuration(view.start - trace.start + span * f)}
          </span>
        ))}
        {sel && <div class="ruler-selection" style={{ left: `${sel.left}px`, width: `${sel.width}px` }} />}
      </div>
    </div>
  );
}
