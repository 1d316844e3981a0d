// Small shared components. Everything renders data as text nodes (JSX escapes it); nothing
// here uses innerHTML.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

/** An error with what to do about it. */
export function ErrorState({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const e = error as Error;
  const title =
    e instanceof ApiError
      ? e.kind === 'unreachable'
        ? 'The Faultline server is not reachable'
        : e.kind === 'notfound'
          ? 'Not found'
          : e.kind === 'badrequest'
            ? 'The server rejected the request'
            : 'The server failed'
      : 'Something went wrong';
  return (
    <div class="state error" role="alert">
      <h2>{title}</h2>
      <p>{e?.message ?? String(error)}</p>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="state empty">
      <h2>{title}</h2>
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <div class="state loading" aria-busy="true">
      Loading {what}…
    </div>
  );
}

/** Copies text to the clipboard; falls back to a hidden textarea off secure contexts. */
export async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'offscreen';
    document.body.appendChild(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="copy"
      title={`Copy ${label === 'Copy' ? '' : label}`.trim()}
      onClick={(e) => {
        e.stopPropagation();
        void copyText(text).then(() => {
          setDone(true);
          setTimeout(() => setDone(false), 1200);
        });
      }}
    >
      {done ? 'Copied' : label}
    </button>
  );
}

/**
 * A virtualised list of fixed-height rows: only the rows in view (plus a margin) exist in the
 * DOM, so 100k rows cost what 50 do. `scrollTo` is exposed through `onApi`.
 */
export function VirtualList(props: {
  count: number;
  rowHeight: number;
  renderRow: (i: number) => preact.JSX.Element;
  class?: string;
  onScroll?: (top: number, height: number) => void;
  scrollRequest?: { top: number; seq: number } | null;
  label?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  const frame = useRef(0);
  useEffect(() => {
    const el = ref.current!;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    return () => ro.disconnect();
  }, []);
  useEffect(() => {
    if (props.scrollRequest && ref.current) ref.current.scrollTop = props.scrollRequest.top;
  }, [props.scrollRequest?.seq]);
  const onScroll = () => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      const el = ref.current;
      if (!el) return;
      setTop(el.scrollTop);
      props.onScroll?.(el.scrollTop, el.clientHeight);
    });
  };
  const { count, rowHeight } = props;
  const overscan = 8;
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const lastRow = Math.min(count, Math.ceil((top + height) / rowHeight) + overscan);
  const rows = [];
  for (let i = first; i < lastRow; i++) rows.push(props.renderRow(i));
  return (
    <div ref={ref} class={`vlist ${props.class ?? ''}`} onScroll={onScroll} role="list" aria-label={props.label}>
      <div class="vlist-inner" style={{ height: `${count * rowHeight}px` }}>
        <div class="vlist-window" style={{ transform: `translateY(${first * rowHeight}px)` }}>
          {rows}
        </div>
      </div>
    </div>
  );
}
