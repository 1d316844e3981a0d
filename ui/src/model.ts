// The trace model the views work on, built from the Jaeger JSON the query API returns.
// Everything here is plain data and pure functions so it can be unit tested without a DOM.

/** A key/value as the Jaeger API returns it (tags, process tags, log fields). */
export interface KeyValue {
  key: string;
  type?: string;
  value: unknown;
}

/** A Jaeger span reference. */
export interface JaegerRef {
  refType: string;
  traceID: string;
  spanID: string;
}

/** A span as `/api/traces/{id}` returns it. */
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references?: JaegerRef[] | null;
  startTime: number;
  duration: number;
  tags?: KeyValue[] | null;
  logs?: { timestamp: number; fields: KeyValue[] }[] | null;
  processID: string;
  warnings?: string[] | null;
  flags?: number;
}

/** A trace as `/api/traces/{id}` returns it. */
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags?: KeyValue[] | null }>;
  warnings?: string[] | null;
}

/** One span in the model, in tree (pre-)order. */
export interface Span {
  /** Position in `Trace.spans` (tree pre-order). */
  index: number;
  spanID: string;
  operation: string;
  service: string;
  /** Absolute start, µs since the epoch. */
  start: number;
  duration: number;
  end: number;
  /** Index of the parent, or -1 for a root. */
  parent: number;
  children: number[];
  depth: number;
  /** Index of the last span of this span's subtree (pre-order), itself when it is a leaf. */
  last: number;
  error: boolean;
  kind: string;
  /** Time not covered by any child, µs. */
  selfTime: number;
  raw: JaegerSpan;
  processTags: KeyValue[];
}

/** A trace ready for display. */
export interface Trace {
  traceID: string;
  spans: Span[];
  roots: number[];
  start: number;
  end: number;
  duration: number;
  /** Service names, sorted. */
  services: string[];
  warnings: string[];
  raw: JaegerTrace;
}

/** Shared by every leaf; never mutated. */
const NO_CHILDREN: number[] = Object.freeze([]) as unknown as number[];

/** True when the span's tags mark it as failed (`error=true` or `otel.status_code=ERROR`). */
export function isError(tags: KeyValue[] | null | undefined): boolean {
  return readTags(tags).error;
}

/** Error flag and span kind in one pass over the tags (the model reads both for every span). */
function readTags(tags: KeyValue[] | null | undefined): { error: boolean; kind: string } {
  let error = false;
  let kind = '';
  if (tags)
    for (let i = 0; i < tags.length; i++) {
      const t = tags[i];
      const k = t.key;
      if (k === 'error') error ||= t.value === true || t.value === 'true';
      else if (k === 'otel.status_code') error ||= typeof t.value === 'string' && t.value.toUpperCase() === 'ERROR';
      else if (k === 'span.kind' && !kind && typeof t.value === 'string') kind = t.value;
    }
  return { error, kind };
}

/**
 * Builds the tree: a span's parent is its first CHILD_OF reference to a span of this trace
 * (else its first such FOLLOWS_FROM); spans whose parent is missing are roots. Siblings are
 * ordered by start time. Cycles in hostile data are broken, every span appears exactly once.
 */
export function buildTrace(raw: JaegerTrace): Trace {
  const input = raw.spans ?? [];
  const n = input.length;
  const byId = new Map<string, number>();
  for (let i = 0; i < n; i++) if (!byId.has(input[i].spanID)) byId.set(input[i].spanID, i);
  const parentOf = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const refs = input[i].references;
    if (!refs) continue;
    let follows = -1;
    for (const r of refs) {
      const p = byId.get(r.spanID);
      if (p === undefined || p === i) continue;
      if (r.refType === 'CHILD_OF' || r.refType === undefined) {
        parentOf[i] = p;
        follows = -2;
        break;
      }
      if (follows === -1) follows = p;
    }
    if (follows >= 0) parentOf[i] = follows;
  }
  // Child lists only for spans that have children: leaves share one empty array, which keeps
  // allocation (and garbage collection) down on 100k-span traces.
  const kids: (number[] | undefined)[] = new Array(n);
  const rootCandidates: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = parentOf[i];
    if (p >= 0) (kids[p] ??= []).push(i);
    else rootCandidates.push(i);
  }
  const byStart = (a: number, b: number) => input[a].startTime - input[b].startTime || a - b;
  for (const k of kids) if (k && k.length > 1) k.sort(byStart);
  rootCandidates.sort(byStart);

  const order: number[] = [];
  const depthOf = new Int32Array(n);
  const visited = new Uint8Array(n);
  const newParent = new Int32Array(n).fill(-1);
  const roots: number[] = [];
  const visit = (root: number) => {
    const stack = [root];
    visited[root] = 1;
    newParent[root] = -1;
    depthOf[root] = 0;
    roots.push(root);
    while (stack.length) {
      const s = stack.pop()!;
      order.push(s);
      const k = kids[s];
      if (!k) continue;
      for (let j = k.length - 1; j >= 0; j--) {
        const c = k[j];
        if (visited[c]) continue;
        visited[c] = 1;
        newParent[c] = s;
        depthOf[c] = depthOf[s] + 1;
        stack.push(c);
      }
    }
  };
  for (const r of rootCandidates) visit(r);
  // Spans only reachable through a cycle: cut the cycle at the earliest span.
  if (order.length < n) {
    const rest = [];
    for (let i = 0; i < n; i++) if (!visited[i]) rest.push(i);
    rest.sort(byStart);
    for (const r of rest) if (!visited[r]) visit(r);
  }

  const pos = new Int32Array(n);
  order.forEach((orig, p) => (pos[orig] = p));
  const serviceSet = new Set<string>();
  const spans: Span[] = new Array(n);
  let start = Infinity;
  let end = -Infinity;
  for (let p = 0; p < n; p++) {
    const s = input[order[p]];
    const proc = raw.processes?.[s.processID];
    const service = proc?.serviceName ?? s.processID ?? 'unknown';
    serviceSet.add(service);
    const st = Number(s.startTime) || 0;
    const du = Math.max(0, Number(s.duration) || 0);
    start = Math.min(start, st);
    end = Math.max(end, st + du);
    const tags = readTags(s.tags);
    spans[p] = {
      index: p,
      spanID: String(s.spanID),
      operation: String(s.operationName ?? ''),
      service: String(service),
      start: st,
      duration: du,
      end: st + du,
      parent: newParent[order[p]] >= 0 ? pos[newParent[order[p]]] : -1,
      children: NO_CHILDREN,
      depth: depthOf[order[p]],
      last: p,
      error: tags.error,
      kind: tags.kind,
      selfTime: du,
      raw: s,
      processTags: proc?.tags ?? [],
    };
  }
  for (let p = 0; p < n; p++) {
    const orig = order[p];
    let k = kids[orig];
    if (!k) continue;
    // A child reached first through a broken cycle has another parent in the tree.
    if (k.some((c) => newParent[c] !== orig)) k = k.filter((c) => newParent[c] === orig);
    for (let j = 0; j < k.length; j++) k[j] = pos[k[j]];
    spans[p].children = k;
  }
  // Pre-order: a subtree ends where the next span at the same or lower depth begins.
  for (let p = n - 1; p >= 0; p--) {
    const k = spans[p].children;
    spans[p].last = k.length ? spans[k[k.length - 1]].last : p;
  }
  for (const s of spans) s.selfTime = selfTime(spans, s);
  if (n === 0) {
    start = 0;
    end = 0;
  }
  return {
    traceID: raw.traceID,
    spans,
    roots: roots.map((r) => pos[r]),
    start,
    end,
    duration: end - start,
    services: [...serviceSet].sort(),
    warnings: raw.warnings ?? [],
    raw,
  };
}

/** The part of a span's duration during which none of its children ran, µs. */
export function selfTime(spans: Span[], s: Span): number {
  let covered = 0;
  let curStart = -1;
  let curEnd = -1;
  // Children are sorted by start.
  for (const c of s.children) {
    const cs = Math.max(spans[c].start, s.start);
    const ce = Math.min(spans[c].end, s.end);
    if (ce <= cs) continue;
    if (cs > curEnd) {
      if (curEnd > curStart) covered += curEnd - curStart;
      curStart = cs;
      curEnd = ce;
    } else if (ce > curEnd) curEnd = ce;
  }
  if (curEnd > curStart) covered += curEnd - curStart;
  return Math.max(0, s.duration - covered);
}
