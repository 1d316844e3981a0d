// One-line summaries of search results, computed without building the whole tree.

import { isError, type JaegerTrace } from './model';

export interface TraceSummary {
  traceID: string;
  rootService: string;
  rootOperation: string;
  spanCount: number;
  errorCount: number;
  /** µs */
  start: number;
  /** µs */
  duration: number;
  /** Span count per service, sorted by name. */
  services: [string, number][];
}

export function summarize(t: JaegerTrace): TraceSummary {
  const spans = t.spans ?? [];
  const ids = new Set(spans.map((s) => s.spanID));
  let start = Infinity;
  let end = -Infinity;
  let errors = 0;
  let root: (typeof spans)[number] | undefined;
  const perService = new Map<string, number>();
  for (const s of spans) {
    start = Math.min(start, s.startTime);
    end = Math.max(end, s.startTime + s.duration);
    if (isError(s.tags)) errors++;
    const svc = t.processes?.[s.processID]?.serviceName ?? s.processID;
    perService.set(svc, (perService.get(svc) ?? 0) + 1);
    const isRoot = !(s.references ?? []).some((r) => ids.has(r.spanID));
    if (isRoot && (!root || s.startTime < root.startTime)) root = s;
  }
  root ??= spans[0];
  return {
    traceID: t.traceID,
    rootService: root ? (t.processes?.[root.processID]?.serviceName ?? root.processID) : '',
    rootOperation: root?.operationName ?? '',
    spanCount: spans.length,
    errorCount: errors,
    start: spans.length ? start : 0,
    duration: spans.length ? end - start : 0,
    services: [...perService.entries()].sort((a, b) => a[0].localeCompare(b[0])),
  };
}
