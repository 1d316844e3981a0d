// Pure layout logic for the trace view: which rows are visible, the critical path, in-trace
// search, per-service statistics. All functions are O(spans) or better and allocation-light so
// that a 100k-span trace stays interactive.

import type { Span, Trace } from './model';

/**
 * The rows to show, as span indices in tree order: every span whose ancestors are all expanded
 * and, when `keep` is given, that is kept by it.
 */
export function visibleRows(trace: Trace, collapsed: Uint8Array, keep?: Uint8Array): Int32Array {
  const n = trace.spans.length;
  const out = new Int32Array(n);
  let k = 0;
  let i = 0;
  while (i < n) {
    if (keep && !keep[i]) {
      i++;
      continue;
    }
    out[k++] = i;
    i = collapsed[i] ? trace.spans[i].last + 1 : i + 1;
  }
  return out.subarray(0, k);
}

/** A stretch of time during which a span was on the critical path. */
export interface Segment {
  span: number;
  start: number;
  end: number;
}

/**
 * The critical path: walking back from the end of the root, at each point the span whose
 * work the trace was waiting for. A parent is on the path except while the child that finished
 * last (before the current point) ran; then that child is, recursively. Children running
 * beyond their parent's end are clipped; children overlapping the chosen one are clipped to
 * its start. Iterative, so deep traces cannot overflow the stack.
 */
export function criticalPath(trace: Trace, root?: number): Segment[] {
  const spans = trace.spans;
  if (!spans.length) return [];
  let r = root;
  if (r === undefined) {
    // The root that ends last decides when the trace is done.
    r = trace.roots[0];
    for (const c of trace.roots) if (spans[c].end > spans[r].end) r = c;
  }
  const segs: Segment[] = [];
  interface Frame {
    s: Span;
    cursor: number;
    kids: number[];
    k: number;
  }
  const frame = (s: Span, limit: number): Frame => ({
    s,
    cursor: Math.min(s.end, limit),
    kids: s.children.length > 1 ? [...s.children].sort((a, b) => spans[b].end - spans[a].end || a - b) : s.children,
    k: 0,
  });
  const stack: Frame[] = [frame(spans[r], spans[r].end)];
  while (stack.length) {
    const f = stack[stack.length - 1];
    if (f.k < f.kids.length) {
      const c = spans[f.kids[f.k++]];
      if (c.start >= f.cursor || c.end <= f.s.start) continue;
      const ce = Math.min(c.end, f.cursor);
      if (ce < f.cursor) segs.push({ span: f.s.index, start: ce, end: f.cursor });
      f.cursor = Math.max(c.start, f.s.start);
      stack.push(frame(c, ce));
    } else {
      if (f.cursor > f.s.start) segs.push({ span: f.s.index, start: f.s.start, end: f.cursor });
      stack.pop();
    }
  }
  segs.sort((a, b) => a.start - b.start || a.span - b.span);
  return segs;
}

/** Critical segments indexed by span (undefined when off the path), for drawing. */
export function segmentsBySpan(segs: Segment[], spanCount: number): (Segment[] | undefined)[] {
  const m: (Segment[] | undefined)[] = new Array(spanCount).fill(undefined);
  for (const s of segs) {
    const l = m[s.span];
    if (l) l.push(s);
    else m[s.span] = [s];
  }
  return m;
}

/** In-trace filter. Empty fields match everything. */
export interface SpanFilter {
  text: string;
  service: string;
  errorsOnly: boolean;
  /** Minimum duration in µs, 0 for none. */
  minDuration: number;
}

export function filterActive(f: SpanFilter): boolean {
  return f.text.trim() !== '' || f.service !== '' || f.errorsOnly || f.minDuration > 0;
}

function valueText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v) ?? '';
}

/** 1 for every span the filter matches: text in name, service, span ID, tag keys or values. */
export function matchSpans(trace: Trace, f: SpanFilter): Uint8Array {
  const out = new Uint8Array(trace.spans.length);
  const needle = f.text.trim().toLowerCase();
  for (const s of trace.spans) {
    if (f.service && s.service !== f.service) continue;
    if (f.errorsOnly && !s.error) continue;
    if (f.minDuration > 0 && s.duration < f.minDuration) continue;
    if (needle) {
      let hit =
        s.operation.toLowerCase().includes(needle) ||
        s.service.toLowerCase().includes(needle) ||
        s.spanID.toLowerCase() === needle;
      if (!hit && s.raw.tags) {
        for (const t of s.raw.tags) {
          if (t.key.toLowerCase().includes(needle) || valueText(t.value).toLowerCase().includes(needle)) {
            hit = true;
            break;
          }
        }
      }
      if (!hit) continue;
    }
    out[s.index] = 1;
  }
  return out;
}

/** The matches plus all their ancestors, so the tree stays readable when filtering. */
export function withAncestors(trace: Trace, matches: Uint8Array): Uint8Array {
  const keep = new Uint8Array(matches.length);
  for (let i = 0; i < matches.length; i++) {
    if (!matches[i]) continue;
    let p = i;
    while (p >= 0 && !keep[p]) {
      keep[p] = 1;
      p = trace.spans[p].parent;
    }
  }
  return keep;
}

/** Statistics for one service/operation pair in a trace. */
export interface OpStats {
  service: string;
  operation: string;
  count: number;
  errors: number;
  total: number;
  self: number;
  max: number;
}

/** Per service/operation statistics, sorted by total self time, largest first. */
export function operationStats(trace: Trace): OpStats[] {
  const m = new Map<string, OpStats>();
  for (const s of trace.spans) {
    const key = s.service + '\u0000' + s.operation;
    let st = m.get(key);
    if (!st) {
      st = { service: s.service, operation: s.operation, count: 0, errors: 0, total: 0, self: 0, max: 0 };
      m.set(key, st);
    }
    st.count++;
    if (s.error) st.errors++;
    st.total += s.duration;
    st.self += s.selfTime;
    st.max = Math.max(st.max, s.duration);
  }
  return [...m.values()].sort((a, b) => b.self - a.self || a.service.localeCompare(b.service));
}

/** The path of ancestors from the root down to (excluding) `i`. */
export function ancestors(trace: Trace, i: number): number[] {
  const out: number[] = [];
  let p = trace.spans[i]?.parent ?? -1;
  while (p >= 0) {
    out.push(p);
    p = trace.spans[p].parent;
  }
  return out.reverse();
}
